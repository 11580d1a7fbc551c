"""Universal commerce rules (one hand-written example per category and language) and the rules + head combination."""

from __future__ import annotations

import textwrap

import pytest

from filters.commerce import CommerceFilter, CommerceRules
from filters.prefilter import Decision
from filters.spec import SpecError

NEWS = (
    "The regional water board said on Monday that the new treatment plant had reduced nitrate levels in the river "
    "by a third over the past year, according to measurements published by the provincial laboratory."
)


@pytest.fixture(scope="module")
def rules() -> CommerceRules:
    return CommerceRules.default()


def art(title: str, text: str = NEWS, url: str = "") -> dict:
    return {"id": "c1", "title": title, "content": text, "url": url}


@pytest.mark.parametrize(
    ("title", "text", "category"),
    [
        # coupons
        ("Save on headphones", "Use code SPRING25 at checkout for an extra discount.", "coupon"),
        ("Cupom de desconto para notebooks", NEWS, "coupon"),
        ("Gutscheincode für Kopfhörer", NEWS, "coupon"),
        ("Les meilleurs codes promo du mois", NEWS, "coupon"),
        ("Kortingscode voor de webwinkel", NEWS, "coupon"),
        # affiliate disclosures
        ("Our favourite kettles", "We may earn a commission when you buy through links on our site.", "affiliate"),
        ("Migliori frullatori", "Questo articolo contiene link di affiliazione.", "affiliate"),
        ("Los mejores routers", "Este artículo incluye enlaces de afiliados.", "affiliate"),
        ("Die besten Router", "Dieser Artikel enthält Affiliate-Links.", "affiliate"),
        # sponsored content
        ("A smarter way to bank", "This article is sponsored by a payments company.", "sponsored"),
        ("Anzeige: Neue Tarife im Überblick", NEWS, "sponsored"),
        ("Conheça o novo plano", "Conteúdo patrocinado. " + NEWS, "sponsored"),
        # price cuts
        ("Robot vacuum drops again", "The robot vacuum is now down to $199 at most retailers.", "price_cut"),
        ("Smartwatch in promo", "Lo smartwatch è disponibile a soli 89,99 euro invece di 149 euro.", "price_cut"),
        ("Robot aspirapolvere", "Il prezzo scende al minimo storico su Amazon.", "price_cut"),
        ("Smartphone barato", "O aparelho sai de R$ 1.999 por R$ 1.499 em até 10x sem juros.", "price_cut"),
        ("Casque audio", "Le casque est à 79 € au lieu de 129 €.", "price_cut"),
        ("Staubsauger", "Der Staubsauger kostet jetzt 199 Euro statt 299 Euro.", "price_cut"),
        ("Auriculares", "Los auriculares tienen un 30 % de descuento hoy.", "price_cut"),
        ("Koptelefoon", "De koptelefoon gaat van €199 voor €129 de deur uit.", "price_cut"),
        ("Our verdict on the X200 headphones", "Sound is warm and detailed. $299 at Amazon", "price_cut"),
        # deal headlines
        ("Deals: laptops, tablets and more", NEWS, "deal_title"),
        ("Offerte del giorno: TV e soundbar", NEWS, "deal_title"),
        ("Chollo: la freidora de aire más vendida", NEWS, "deal_title"),
        ("Schnäppchen des Tages bei Technik", NEWS, "deal_title"),
        ("Nunca esteve tão barato: fone sem fio", NEWS, "deal_title"),
        # shopping roundups and buying guides
        ("The best robot vacuums for 2026", NEWS, "shopping_roundup"),
        ("Gift guide: presents for coffee lovers", NEWS, "shopping_roundup"),
        ("Black Friday deals on e-bikes you can still get", NEWS, "shopping_roundup"),
        ("Idées cadeaux pour les fans de jeux vidéo", NEWS, "shopping_roundup"),
        # event ticket sales
        ("Two days until the summit, and ticket rates rise at midnight", NEWS, "event_promo"),
        ("Summit countdown", "Ticket prices go up on Friday. " + NEWS, "event_promo"),
    ],
)
def test_each_category_fires_in_several_languages(rules, title, text, category):
    assert rules.check(art(title, text)) == Decision(False, f"commerce:{category}")


def test_url_and_weak_signal_categories(rules):
    assert rules.check(art("Kitchen picks", url="https://shop.example.com/deals/kitchen")).reason == "commerce:deal_url"
    assert rules.check(art("Pick", url="https://e.com/p/x?tag=abc-20")).reason == "commerce:deal_url"
    weak = "Grab one now at Amazon with free shipping; the bargain will not last, say the editors."
    assert rules.check(art("Kitchen scale", weak)).reason == "commerce:shopping_signals"
    # one or two weak signals are not enough
    assert rules.check(art("Kitchen scale", "Amazon reported higher cloud revenue.")).passed


@pytest.mark.parametrize(
    ("title", "text", "url"),
    [
        ("EU leaders strike trade deal with Mercosur", "The deal lowers tariffs on cars and beef.", ""),
        ("European Green Deal targets revised", NEWS, "https://news.example.eu/green-deal-targets"),
        ("Bond market: coupon payments rise as yields climb", "The coupon on the ten-year bond was 4%.", ""),
        ("Retail workers strike on Black Friday over wages", "Union members walked out at warehouses.", ""),
        ("Shares fell 30% after the profit warning", "The stock dropped to $12 in early trading.", ""),
        ("DeAL: decoding-time alignment for language models", "We propose a method for alignment.", ""),
        ("Solar firm signs deal for 5 GW of capacity", NEWS, "https://news.example.com/solar-firm-deal-for-5-gw"),
        ("Startup raises $50 million to expand", "The round values the company at $1.2 billion.", ""),
        ("Analysts lift price target", "Analysts set a $150 price target on the shares.", ""),
        ("AI assistants in the IDE", "Many teams now use code that models generate, and review it by hand.", ""),
        ("City could save $1 billion with new transit plan", "Officials said $2bn is off the table.", ""),
        ("Is now the best time to buy a home?", "Mortgage rates fell for a third week.", ""),
        ("Disoccupazione al minimo storico", "Il tasso di disoccupazione scende al minimo storico.", ""),
        ("El paro marca un mínimo histórico", "El desempleo cae a su mínimo histórico en octubre.", ""),
        ("Oferta pública de ações da empresa", "A oferta pública inicial foi adiada.", ""),
        ("Aanbieding van het rapport aan de minister", "De commissie bood het rapport aan.", ""),
        ("La curva de oferta y demanda", "Los economistas explican la curva de oferta.", ""),
        ("Promoção da saúde nas escolas", "O programa de promoção da saúde chegou a mil escolas.", ""),
        ("Das Angebot an Wohnungen sinkt", "Das Angebot an Mietwohnungen ist im Jahr gesunken.", ""),
        ("Rail operator: ticket prices to rise 4% in January", "Commuters face higher fares, the regulator said.", ""),
        ("Train ticket prices rise 5% in January", "Passengers will pay more from next month, the operator said.", ""),
    ],
)
def test_journalism_about_deals_prices_and_sales_passes(rules, title, text, url):
    assert rules.check(art(title, text, url)) == Decision(True, "passed")


def test_html_and_invisible_characters_do_not_hide_rules(rules):
    assert not rules.check(art("Pro\u200bmo code inside", "<p>Use&nbsp;code <b>SAVE20NOW</b></p>")).passed


def test_missing_text_passes_quietly(rules):
    assert rules.check({"title": "", "text": None}).passed
    assert rules.check({}).passed


def test_categories_are_listed_in_order(rules):
    assert rules.categories[:3] == ["coupon", "affiliate", "sponsored"]
    assert rules.categories[-1] == "shopping_signals"


def test_bad_rules_file_names_file_and_regex(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text(
        textwrap.dedent(
            """
            version: 1
            categories:
              - category: deals
                patterns: ['ok', '(broken']
            """
        )
    )
    with pytest.raises(SpecError) as err:
        CommerceRules.load(path)
    assert str(path) in str(err.value) and "categories[0] (deals).patterns[1]" in str(err.value)
    path.write_text("version: 1\ncategories:\n  - category: x\n    patterns: ['<<NOPE>>']\n")
    with pytest.raises(SpecError, match="undefined <<NOPE>>"):
        CommerceRules.load(path)
    with pytest.raises(SpecError, match="no commerce rules file"):
        CommerceRules.load(tmp_path / "missing.yaml")


def test_definitions_expand(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text(
        "version: 1\ndefinitions:\n  P: '\\$\\d+'\ncategories:\n  - category: two_prices\n"
        "    patterns: ['<<P>> then <<P>>']\n"
    )
    rules = CommerceRules.load(path)
    assert rules.check(art("x", "$5 then $4")).reason == "commerce:two_prices"
    assert rules.check(art("x", "$5 then four")).passed


class FakeHead:
    threshold = 0.8


def test_commerce_filter_combines_rules_and_head(rules):
    gate = CommerceFilter(rules, head=FakeHead())
    assert gate.threshold == 0.8  # taken from the head when not given
    news = art("Water board reports cleaner river")
    assert gate.decide(news, None) == Decision(True, "passed")
    assert gate.decide(news, 0.79).passed
    assert gate.decide(news, 0.8) == Decision(False, "commerce_head:0.80")
    # a rule wins over a low probability and names its category
    assert gate.decide(art("Deals: laptops"), 0.1) == Decision(False, "commerce:deal_title")
    assert gate.decide(art("Deals: laptops"), 0.1, rules=False).passed  # caller already ran the rules
    assert CommerceFilter(rules).threshold == 0.5
    assert CommerceFilter(rules, threshold=0.95).decide(news, 0.9).passed
    with pytest.raises(ValueError, match="between 0 and 1"):
        CommerceFilter(rules, threshold=1.5)
