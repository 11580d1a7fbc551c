"""Active learning: bucketed selection from scored results, joining articles, and seed screening."""

from __future__ import annotations

import json

import pytest
import typer
from typer.testing import CliRunner

from models.active import ActiveError, SelectConfig, parse_split, screen, select, with_articles
from models.embedding import Encoder, hashing_encoder
from models.oracle.labeling import input_problem


def _result(i: int, wa: float, tier: str, stage: str = "stage1", probe: float | None = None,
            filter: str = "tiny") -> dict:
    """A Result.as_dict()-like row; uniform dimension scores make WA == the score."""
    probe = wa if probe is None else probe
    return {"article_id": f"a{i}", "filter": filter, "filter_version": 1, "stage": stage, "tier": tier,
            "weighted_average": wa, "scores": {d: wa for d in ("impact", "evidence", "reach")},
            "probe_scores": {d: probe for d in ("impact", "evidence", "reach")}}


@pytest.fixture
def results() -> list[dict]:
    rows = [_result(i, 1.0 + 0.01 * i, "low") for i in range(40)]  # plain low
    rows += [_result(100 + i, 6.0 + 0.1 * i, "medium", "stage2", probe=5.9) for i in range(10)]  # high WA
    rows += [_result(200 + i, 3.5 + 0.1 * i, "low", probe=3.6 + 0.1 * i) for i in range(5)]  # near edge 4.0
    rows += [_result(300 + i, 6.5, "medium", "stage2", probe=2.0) for i in range(4)]  # student ≫ probe
    rows += [_result(400, 7.5, "high", "stage2", probe=7.0)]  # the only high: the needle
    rows += [_result(500, 9.0, "high", "prefilter"), _result(501, 9.0, "high", filter="other")]  # ignored
    return rows


def test_buckets_and_budget_split(tiny_spec, results):
    config = SelectConfig(split={"high": 0.4, "uncertain": 0.2, "disagreement": 0.2, "needle": 0.2})
    chosen = select(tiny_spec, results, 10, config)
    assert len(chosen) == 10 and len({c.article_id for c in chosen}) == 10
    by = {}
    for c in chosen:
        by.setdefault(c.bucket, []).append(c.article_id)
    assert by["needle"][0] == "a400"  # the rarest protected tier first
    assert set(by["disagreement"]) <= {"a300", "a301", "a302", "a303"} and len(by["disagreement"]) == 2
    assert all(c.weighted_average >= 5.5 for c in chosen if c.bucket == "high")
    assert all(abs(c.probe_weighted_average - 4.0) <= 1.0 for c in chosen if c.bucket == "uncertain")
    assert not {"a500", "a501"} & {c.article_id for c in chosen}
    uncertain = [c for c in chosen if c.bucket == "uncertain"]
    assert uncertain[0].reason.startswith("probe WA 4.00 within 1.0 of edge 4.0")


def test_short_buckets_leave_budget_to_the_others(tiny_spec, results):
    config = SelectConfig(split={"disagreement": 0.5, "high": 0.5})
    chosen = select(tiny_spec, results, 12, config)
    assert len(chosen) == 12
    assert sum(c.bucket == "disagreement" for c in chosen) == 4  # only 4 disagreements exist
    assert sum(c.bucket == "high" for c in chosen) == 8


def test_already_labelled_ids_are_excluded_and_selection_is_seeded(tiny_spec, results):
    a = select(tiny_spec, results, 8, exclude={"a400"})
    assert "a400" not in {c.article_id for c in a}
    assert [c.article_id for c in a] == [c.article_id for c in select(tiny_spec, results, 8, exclude={"a400"})]


def test_parse_split_normalises_and_rejects_unknown():
    assert parse_split("high=3,needle=1") == {"high": 0.75, "needle": 0.25}
    with pytest.raises(ActiveError, match="unknown bucket 'top'"):
        parse_split("top=1")
    with pytest.raises(ActiveError, match="at least one positive share"):
        parse_split("high=0")


def test_selected_rows_feed_oracle_label(tiny_spec, results):
    chosen = select(tiny_spec, results, 3)
    articles = [{"id": c.article_id, "title": f"T {c.article_id}", "content": "Body text."} for c in chosen[:2]]
    rows, missing = with_articles(chosen, articles)
    assert missing == 1 and len(rows) == 2
    assert rows[0]["text"] == "Body text." and rows[0]["active"]["bucket"] == chosen[0].bucket
    assert all(input_problem(r) is None for r in rows)


def _doc(i: int, words: str) -> dict:
    return {"id": f"d{i}", "title": f"Doc {i}", "text": words}


def test_screen_ranks_by_cosine_to_seed_centroid():
    enc = hashing_encoder(64, model_id="hashing-screen")
    seeds = [_doc(0, "solar grid storage battery"), _doc(1, "solar battery storage heat")]
    corpus = [_doc(0, "solar grid storage battery"), _doc(2, "football music concert"),
              _doc(3, "solar storage battery grid heat"), _doc(4, "police museum garden"),
              _doc(5, "battery solar market")]
    ranked = screen(seeds, corpus, 2, encoder=enc, chunk=2, progress=False)
    assert [a["id"] for a, _ in ranked] == ["d3", "d5"]  # seeds themselves are left out
    assert ranked[0][1] > ranked[1][1] > 0
    assert [a["id"] for a, _ in screen(seeds, corpus, 5, encoder=enc, progress=False, exclude={"d3"})][0] == "d5"
    with pytest.raises(ActiveError, match="at least one seed"):
        screen([], corpus, 2, encoder=enc)


def _app() -> typer.Typer:
    from distillery.cli import app

    return app


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_select_and_screen_commands(tiny_spec_data, tmp_path, results):
    import yaml

    spec_path = tmp_path / "tiny" / "v1" / "filter.yaml"
    spec_path.parent.mkdir(parents=True)
    spec_path.write_text(yaml.safe_dump(tiny_spec_data))
    scores = _write(tmp_path / "scores.jsonl", results)
    corpus = _write(tmp_path / "corpus.jsonl", [{"id": r["article_id"], "title": "T", "text": "solar grid body"}
                                                for r in results])
    labelled = _write(tmp_path / "labels.jsonl", [{"id": "a400"}])
    out = tmp_path / "picked.jsonl"
    res = CliRunner().invoke(_app(), ["active", "select", "--filter", str(spec_path), "--scores", str(scores),
                                      "--articles", str(corpus), "--budget", "6", "--out", str(out),
                                      "--exclude", str(labelled)])
    assert res.exit_code == 0, res.output
    picked = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(picked) == 6 and "a400" not in {p["id"] for p in picked}
    assert "selected 6 of" in res.output
    both = CliRunner().invoke(_app(), ["active", "select", "--filter", str(spec_path), "--articles", str(corpus),
                                       "--budget", "6", "--out", str(out)])
    assert both.exit_code == 2 and "exactly one of --scores" in both.output

    Encoder.install(hashing_encoder(32, model_id="hashing-cli"))
    seeds = _write(tmp_path / "seeds.jsonl", [{"id": "s", "title": "S", "text": "solar grid"}])
    res = CliRunner().invoke(_app(), ["active", "screen", "--seeds", str(seeds), "--corpus", str(corpus),
                                      "--top-k", "3", "--out", str(tmp_path / "top.jsonl"), "--model",
                                      "hashing-cli", "--no-progress"])
    assert res.exit_code == 0, res.output
    top = [json.loads(x) for x in (tmp_path / "top.jsonl").read_text().splitlines()]
    assert [t["screen"]["rank"] for t in top] == [1, 2, 3]
