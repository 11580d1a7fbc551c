"""The universal commerce prefilter: declarative multilingual rules (rules.yaml) plus an optional embedding head."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import Field, ValidationError, model_validator

from filters.prefilter import MAX_TITLE_CHARS, PASSED, CompiledCategory, Decision, url_host_path
from filters.spec import ExclusionCategory, SpecError, _Model, read_yaml_mapping
from filters.text import clean_text

RULES_PATH = Path(__file__).resolve().parent / "commerce" / "rules.yaml"
REASON_PREFIX = "commerce:"
_DEFINITION_RE = re.compile(r"<<([A-Z][A-Z0-9_]*)>>")


class CommerceCategory(ExclusionCategory):
    """An exclusion category whose patterns look at one part of the article.

    `scope`: `text` = title + content window, `title` = title only, `url` = lower-case host + path + query.
    Exceptions, positive and unless patterns always look at title + content window.
    """

    # commerce rules may also look at the URL; filter specs (the base) may not, so the field is widened here
    scope: Literal["text", "title", "url"] = "text"  # type: ignore[assignment]


class CommerceRuleSet(_Model):
    """The schema of `filters/commerce/rules.yaml`."""

    version: int = Field(ge=1)
    description: str = ""
    scan_chars: int = Field(default=1500, ge=100)
    # Named regex fragments, used in patterns as <<NAME>> (e.g. <<PRICE>>); expanded before compiling.
    definitions: dict[str, str] = Field(default_factory=dict)
    categories: list[CommerceCategory]

    @model_validator(mode="after")
    def _definitions_known(self) -> CommerceRuleSet:
        known = set(self.definitions)
        for c in self.categories:
            for pattern in [*c.patterns, *c.exceptions, *c.positive_patterns, *c.unless_patterns]:
                unknown = set(_DEFINITION_RE.findall(pattern)) - known
                if unknown:
                    raise ValueError(
                        f"category {c.category!r} uses undefined <<{sorted(unknown)[0]}>>; add it under `definitions`"
                    )
        return self


def _expand(pattern: str, definitions: Mapping[str, str]) -> str:
    return _DEFINITION_RE.sub(lambda m: f"(?:{definitions[m.group(1)]})", pattern)


class CommerceRules:
    """Rule-based half of the commerce prefilter: the first category that fires blocks, reason `commerce:<category>`.

    Categories run in file order; each uses the prefilter engine's semantics (`min_matches`, `exceptions`,
    `positive_patterns`/`positive_threshold`, `unless_patterns`), with IGNORECASE regexes on bounded text.
    """

    def __init__(self, rules: CommerceRuleSet, source: str = "commerce rules") -> None:
        self.rules = rules
        self.source = source
        owner = f"{source} (commerce)"
        self._categories: list[tuple[str, CompiledCategory]] = []
        for i, c in enumerate(rules.categories):
            expanded = c.model_copy(
                update={
                    key: [_expand(p, rules.definitions) for p in getattr(c, key)]
                    for key in ("patterns", "exceptions", "positive_patterns", "unless_patterns")
                }
            )
            compiled = CompiledCategory.build(expanded, f"categories[{i}] ({c.category})", owner)
            self._categories.append((c.scope, compiled))

    @classmethod
    def load(cls, path: str | Path = RULES_PATH) -> CommerceRules:
        """Load and compile a rules file; errors name the file and the bad field or regex."""
        path = Path(path)
        hint = "no commerce rules file; restore filters/commerce/rules.yaml or pass another path"
        data = read_yaml_mapping(path, hint)
        try:
            rules = CommerceRuleSet.model_validate(data)
        except ValidationError as err:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '(top level)'}: {e['msg'].removeprefix('Value error, ')}"
                for e in err.errors()
            )
            raise SpecError(f"{path}: invalid commerce rules: {problems}") from None
        return cls(rules, str(path))

    @classmethod
    def default(cls) -> CommerceRules:
        """The shipped universal rules (`filters/commerce/rules.yaml`)."""
        return cls.load(RULES_PATH)

    @property
    def categories(self) -> list[str]:
        return [c.name for _, c in self._categories]

    def check(self, article: Mapping[str, Any]) -> Decision:
        """Block with `commerce:<category>` when a rule fires, else `passed` (missing text simply passes)."""
        title = clean_text(article.get("title"))[:MAX_TITLE_CHARS]
        content = clean_text(article.get("content") or article.get("text"))[: self.rules.scan_chars]
        text = f"{title}\n{content}"
        host, path = url_host_path(str(article.get("url") or ""))
        url = ""
        if host:
            query = str(article.get("url")).partition("?")[2].lower()[:MAX_TITLE_CHARS]
            url = f"{host}{path}" + (f"?{query}" if query else "")
        scoped = {"text": text, "title": title, "url": url}
        for scope, category in self._categories:
            target = scoped[scope]
            if not target:
                continue
            hit = category.fires(target, text)
            if hit is not None:
                return Decision(False, f"{REASON_PREFIX}{category.name}", hit)
        return PASSED

    def __call__(self, article: Mapping[str, Any]) -> Decision:
        return self.check(article)


class ProbabilityHead(Protocol):
    """What CommerceFilter needs from a trained head (models.commerce_head.CommerceHead)."""

    threshold: float


class CommerceFilter:
    """Rules + optional embedding head: block when a rule fires or the head's probability ≥ `threshold`."""

    def __init__(self, rules: CommerceRules, head: ProbabilityHead | None = None, threshold: float | None = None):
        self.rules = rules
        self.head = head
        if threshold is None:
            threshold = float(getattr(head, "threshold", 0.5)) if head is not None else 0.5
        if not 0.0 <= threshold <= 1.0:
            raise SpecError(f"commerce threshold {threshold} must be between 0 and 1; pass a probability")
        self.threshold = threshold

    def decide(self, article: Mapping[str, Any], probability: float | None = None, *, rules: bool = True) -> Decision:
        """Rules first (`commerce:<category>`), then the head (`commerce_head:<p>` with p to two decimals).

        `rules=False` skips the rules for a caller that already ran `self.rules.check` (e.g. before embedding).
        """
        if rules:
            decision = self.rules.check(article)
            if not decision.passed:
                return decision
        if probability is not None and probability >= self.threshold:
            return Decision(False, f"commerce_head:{probability:.2f}", f"p={probability:.4f}")
        return PASSED
