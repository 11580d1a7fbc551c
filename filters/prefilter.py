"""The declarative prefilter engine: interprets a spec's `PrefilterRules` into a pass/block decision with a reason."""

from __future__ import annotations

import re
import re._constants as sre_constants
import re._parser as sre_parser
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from filters.spec import ExclusionCategory, FilterSpec, PrefilterRules, SpecError
from filters.text import clean_text

# Upper bound on the title length scanned by regexes (unbounded titles would let a crafted title stall the regexes).
MAX_TITLE_CHARS = 500
_REPEATS = (sre_constants.MAX_REPEAT, sre_constants.MIN_REPEAT)
SHORT_CONTENT = "short_content"  # result flag: content shorter than the filter's `short_content_chars`


@dataclass(frozen=True)
class Decision:
    """A prefilter verdict. `reason` is a stable string (`"passed"` when passed) safe to count in metrics;
    `matched` names the pattern or keyword that decided it, for debugging only (ignored in comparisons)."""

    passed: bool
    reason: str
    matched: str = field(default="", compare=False)


PASSED = Decision(True, "passed")


def _nodes(value: Any) -> Iterable[tuple[Any, Any]]:
    """Every (opcode, argument) pair inside a parsed regex fragment, at any depth."""
    if isinstance(value, sre_parser.SubPattern):
        for op, av in value.data:
            yield op, av
            yield from _nodes(av)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _nodes(item)


def _unbounded(op: Any, av: Any) -> bool:
    return op in _REPEATS and av[1] == sre_constants.MAXREPEAT


def nested_quantifier(pattern: str) -> bool:
    """Whether an unbounded repeat contains another unbounded repeat, as in `(a+)+` or `(\\w+\\s?)*`.

    Such patterns backtrack exponentially on near-misses; Python's `re` has no timeout, so they are refused.
    """
    for op, av in _nodes(sre_parser.parse(pattern)):
        if _unbounded(op, av) and any(_unbounded(o, a) for o, a in _nodes(av[2])):
            return True
    return False


def compile_patterns(patterns: Iterable[str], where: str, owner: str) -> tuple[re.Pattern[str], ...]:
    """Compile regexes once with IGNORECASE; a bad one raises SpecError naming the owner, the field and the regex."""
    compiled = []
    for i, pattern in enumerate(patterns):
        try:
            compiled.append(re.compile(pattern, re.IGNORECASE))
        except re.error as err:
            raise SpecError(
                f"{owner}: {where}[{i}] {pattern!r} is not a valid regular expression ({err}); "
                "fix the pattern (YAML single quotes keep backslashes, escape literal . + ( ) [ ] ?)"
            ) from None
        if nested_quantifier(pattern):
            raise SpecError(
                f"{owner}: {where}[{i}] {pattern!r} nests an unbounded repeat inside another (like `(a+)+`), "
                "which can take exponential time; bound the outer repeat (e.g. `{0,5}`) or drop the inner one"
            )
    return tuple(compiled)


def first_match(patterns: Sequence[re.Pattern[str]], text: str) -> str | None:
    """The source of the first pattern found in `text`, or None."""
    for p in patterns:
        if p.search(text):
            return p.pattern
    return None


def count_matches(patterns: Sequence[re.Pattern[str]], text: str) -> int:
    """How many distinct patterns occur in `text`."""
    return sum(1 for p in patterns if p.search(text))


@dataclass(frozen=True)
class CompiledCategory:
    """An exclusion category with its regexes compiled."""

    name: str
    patterns: tuple[re.Pattern[str], ...]
    exceptions: tuple[re.Pattern[str], ...]
    min_matches: int
    positive_patterns: tuple[re.Pattern[str], ...]
    positive_threshold: int
    unless_patterns: tuple[re.Pattern[str], ...]
    scope: str = "text"

    @classmethod
    def build(cls, category: ExclusionCategory, where: str, owner: str) -> CompiledCategory:
        return cls(
            name=category.category,
            patterns=compile_patterns(category.patterns, f"{where}.patterns", owner),
            exceptions=compile_patterns(category.exceptions, f"{where}.exceptions", owner),
            min_matches=category.min_matches,
            positive_patterns=compile_patterns(category.positive_patterns, f"{where}.positive_patterns", owner),
            positive_threshold=category.positive_threshold,
            unless_patterns=compile_patterns(category.unless_patterns, f"{where}.unless_patterns", owner),
            scope=category.scope,
        )

    def fires(self, text: str, context: str | None = None) -> str | None:
        """The first matching pattern if this category blocks `text` (before global overrides), else None.

        Exceptions, positive and unless patterns look at `context` (default: `text`), so a category whose
        patterns only see the title or the URL can still be cancelled by the article body.
        """
        context = text if context is None else context
        if self.min_matches == 1:
            hit = first_match(self.patterns, text)
            if hit is None:
                return None
        else:
            hits = [p.pattern for p in self.patterns if p.search(text)]
            if len(hits) < self.min_matches:
                return None
            hit = hits[0]
        if first_match(self.exceptions, context) is not None:
            return None
        if self.positive_patterns and count_matches(self.positive_patterns, context) >= self.positive_threshold:
            return None
        if first_match(self.unless_patterns, context) is not None:
            return None
        return hit


def _text_field(article: Mapping[str, Any], *keys: str) -> Any:
    for key in keys:
        value = article.get(key)
        if value not in (None, ""):
            return value
    return article.get(keys[0])


def url_host_path(url: str) -> tuple[str, str]:
    """(host without `www.`, path) of a URL, both lower-case; ("", "") when there is none."""
    if not url:
        return "", ""
    parts = urlsplit(url.strip().lower() if "://" in url else "http://" + url.strip().lower())
    host = (parts.hostname or "").removeprefix("www.")
    return host, parts.path or "/"


def domain_matches(entry: str, host: str, path: str) -> bool:
    """Whether a domain-exclusion entry covers a URL.

    `example.com` covers the host and its subdomains (not `notexample.com`); a bare label such as `espn`
    covers any host with that label (`espn.com`, `espn.co.uk`); `medium.com/tag/programming` also needs
    the path to start with `/tag/programming`.
    """
    entry = entry.strip().lower().removeprefix("www.")
    if not entry or not host:
        return False
    entry_host, _, entry_path = entry.partition("/")
    if "." in entry_host:
        host_ok = host == entry_host or host.endswith("." + entry_host)
    else:
        host_ok = entry_host in host.split(".")
    if not host_ok:
        return False
    return not entry_path or path.startswith("/" + entry_path.rstrip("/"))


class Prefilter:
    """One filter's prefilter, built once from its declarative `PrefilterRules`.

    `check(article)` runs these steps in order; the first one that decides returns its `Decision`:

    1. validate: no title → `missing_title`; no content (`content` or `text`) → `empty_content`.
       Title and content are cleaned with `filters.text.clean_text` first (idempotent on clean text).
    2. `excluded_source_types` (exact, case-insensitive `source_type`) → `excluded_source_type:<type>`.
    3. `min_content_length`, a hard serving minimum (null, the default = no check; skipped with
       `ignore_length=True`) → `content_too_short_<n>chars`, where `<n>` is the configured minimum (stable, so
       metrics do not explode into one reason per length). Short articles are normally scored and flagged instead
       (`flags`); the length rule that matters — no labels on snippets — is the oracle's (`Oracle.min_content_length`).
    4. `domain_exclusions` {reason: [domains]} on the URL host/path (see `domain_matches`) → `excluded_domain_<reason>`.
    5. `source_allowlist` [substrings] on `source source_type id` (lower-case) → passes at once with
       `allowed_source:<substring>`.
    6. `pass_keywords` [regexes] on the scan text (below) → passes at once with `<pass_keyword_reason>:<matched text>`
       (the anchor's investment_risk passes on an investment keyword before it checks blocked sources); then
       `source_exclusions` {group: [substrings]} on the same fields as 5 → `blocked_source:<substring>`.
    7. `exclusions` categories, in order, on `title[:500] + "\\n" + content[:scan_chars]` (on the title alone for a
       category with `scope: title`): a category blocks when at
       least `min_matches` of its patterns match, none of its `exceptions` match, fewer than `positive_threshold`
       of its `positive_patterns` match, none of its `unless_patterns` match, and no global `override_keywords`
       regex occurs in the text → `<reason_prefix><category>`.
    8. `required_topics`, in order: each needs at least one keyword in the same text (or at least
       `secondary_min_matches` distinct `secondary_keywords`), else → its `reason`.
    9. → `passed`.

    Every pattern (exclusions, exceptions, overrides, keywords) is a regex compiled once with IGNORECASE; the
    text is not lower-cased, so `(?-i:RIP)` works for a case-sensitive part. Authors add `\\b` themselves
    (multilingual stems often must not be word-bounded at the end). Regexes only ever see bounded text.
    """

    def __init__(self, rules: PrefilterRules, name: str = "prefilter", *, ignore_length: bool = False) -> None:
        self.rules = rules
        self.name = name
        self.ignore_length = ignore_length
        owner = f"filter {name} prefilter"
        self._excluded_types = {t.strip().lower() for t in rules.excluded_source_types}
        self._domains = [
            (reason, [d for d in domains if d.strip()]) for reason, domains in rules.domain_exclusions.items()
        ]
        self._source_blocks = [p.lower() for group in rules.source_exclusions.values() for p in group if p.strip()]
        self._source_allow = [p.lower() for p in rules.source_allowlist if p.strip()]
        self._overrides = compile_patterns(rules.override_keywords, "override_keywords", owner)
        self._pass_keywords = compile_patterns(rules.pass_keywords, "pass_keywords", owner)
        self._categories = [
            CompiledCategory.build(c, f"exclusions[{i}] ({c.category})", owner) for i, c in enumerate(rules.exclusions)
        ]
        self._topics = [
            (t.reason, compile_patterns(t.keywords, f"required_topics[{i}] ({t.reason}).keywords", owner),
             compile_patterns(t.secondary_keywords, f"required_topics[{i}] ({t.reason}).secondary_keywords", owner),
             t.secondary_min_matches)
            for i, t in enumerate(rules.required_topics)
        ]

    @classmethod
    def for_spec(cls, spec: FilterSpec, *, ignore_length: bool = False) -> Prefilter:
        """The prefilter declared in a filter spec."""
        return cls(spec.prefilter, spec.key, ignore_length=ignore_length)

    def scan_text(self, title: str, content: str) -> str:
        """The bounded text every regex sees."""
        return f"{title[:MAX_TITLE_CHARS]}\n{content[: self.rules.scan_chars]}"

    def check(self, article: Mapping[str, Any]) -> Decision:
        """Decide one article (an `Article.as_dict()`-style mapping); see the class docstring for the order."""
        title_raw = article.get("title")
        title = clean_text(title_raw) if isinstance(title_raw, str) else ""
        if not title:
            return Decision(False, "missing_title")
        content_raw = _text_field(article, "content", "text")
        content = clean_text(content_raw) if isinstance(content_raw, str) else ""
        if not content:
            return Decision(False, "empty_content")

        source_type = str(article.get("source_type") or "").strip().lower()
        if source_type and source_type in self._excluded_types:
            return Decision(False, f"excluded_source_type:{source_type}", source_type)

        minimum = self.rules.min_content_length
        if minimum and not self.ignore_length and len(content) < minimum:
            return Decision(False, f"content_too_short_{minimum}chars", str(len(content)))

        host, path = url_host_path(str(article.get("url") or ""))
        if host:
            for reason, domains in self._domains:
                for domain in domains:
                    if domain_matches(domain, host, path):
                        return Decision(False, f"excluded_domain_{reason}", domain)

        haystack = " ".join(str(article.get(k) or "") for k in ("source", "source_type", "id")).lower()
        for p in self._source_allow:
            if p in haystack:
                return Decision(True, f"allowed_source:{p}", p)
        text = self.scan_text(title, content)
        for kw in self._pass_keywords:
            found = kw.search(text)
            if found:
                return Decision(True, f"{self.rules.pass_keyword_reason}:{found.group(0).lower()}", kw.pattern)
        for p in self._source_blocks:
            if p in haystack:
                return Decision(False, f"blocked_source:{p}", p)

        if self._categories:
            override: str | None | bool = False  # computed lazily: only when a category fires
            for category in self._categories:
                scanned = title[:MAX_TITLE_CHARS] if category.scope == "title" else text
                hit = category.fires(scanned, text)
                if hit is None:
                    continue
                if override is False:
                    override = first_match(self._overrides, text)
                if override is None:
                    return Decision(False, f"{self.rules.reason_prefix}{category.name}", hit)

        for reason, keywords, secondary, min_secondary in self._topics:
            if first_match(keywords, text) is None and not (secondary and
                                                            count_matches(secondary, text) >= min_secondary):
                return Decision(False, reason)
        return PASSED

    def flags(self, article: Mapping[str, Any]) -> list[str]:
        """Quality flags a served result carries: `short_content` when the cleaned content is shorter than
        `short_content_chars` (the models score it, with the larger error measured in docs/filters.md)."""
        limit = self.rules.short_content_chars
        if not limit:
            return []
        content_raw = _text_field(article, "content", "text")
        content = clean_text(content_raw) if isinstance(content_raw, str) else ""
        return [SHORT_CONTENT] if len(content) < limit else []

    def __call__(self, article: Mapping[str, Any]) -> Decision:
        return self.check(article)
