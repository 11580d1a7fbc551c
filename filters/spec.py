"""The validated filter spec: one YAML file per filter version, loaded into pydantic models."""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from filters.errors import FiltersError

FILTERS_ROOT = Path(__file__).resolve().parent
WEIGHT_TOLERANCE = 1e-6


class SpecError(FiltersError, ValueError):
    """A filter spec that cannot be used; the message names the file, the field and the fix."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Dimension(_Model):
    """One scored dimension: weight in the weighted average and its 0-10 scale bands."""

    name: str
    weight: float = Field(ge=0.0, le=1.0)
    description: str = ""
    scale: dict[str, str] = Field(default_factory=dict)


class Gatekeeper(_Model):
    """If `dimension` < `min`, the weighted average is capped at `cap` (dimension scores unchanged)."""

    dimension: str
    min: float = Field(ge=0.0, le=10.0)
    cap: float = Field(ge=0.0, le=10.0)


class Tier(_Model):
    """A named tier: the first tier (in order, highest first) whose threshold the WA reaches."""

    name: str
    threshold: float = Field(ge=0.0, le=10.0)
    description: str = ""


class ContentTypeRule(_Model):
    """Caps and penalties for one content_type or flag, applied in code after the oracle or the model.

    `max_score` clamps every dimension; `max_dimensions` clamps named ones; `max_overall` caps the
    weighted average; `penalty` is subtracted from every dimension (floor 0) after clamping.
    """

    description: str = ""
    max_score: float | None = Field(default=None, ge=0.0, le=10.0)
    max_dimensions: dict[str, float] = Field(default_factory=dict)
    max_overall: float | None = Field(default=None, ge=0.0, le=10.0)
    penalty: float | None = Field(default=None, ge=0.0, le=10.0)
    exceptions: str = ""


class ExclusionCategory(_Model):
    """A regex exclusion category with its own exceptions and an optional positive-signal bypass."""

    category: str
    patterns: list[str]
    exceptions: list[str] = Field(default_factory=list)
    min_matches: int = Field(default=1, ge=1)
    # Bypass the block when at least `positive_threshold` of `positive_patterns` match.
    positive_patterns: list[str] = Field(default_factory=list)
    positive_threshold: int = Field(default=1, ge=1)
    # Block only when none of these "outcome" patterns match (e.g. pure_speculation).
    unless_patterns: list[str] = Field(default_factory=list)
    # Where `patterns` look: `text` (title + body) or `title` only (what the article is about, not a passing
    # mention in the body); exceptions, positives and unless patterns always see title + body.
    scope: Literal["text", "title"] = "text"


class RequiredTopic(_Model):
    """At least one keyword (regex, word-bounded by the author) must occur, else block with `reason`."""

    reason: str
    keywords: list[str]
    # Also satisfied by at least `secondary_min_matches` distinct `secondary_keywords` (weaker signals that count
    # only together, e.g. technology-performance terms for a technology lens).
    secondary_keywords: list[str] = Field(default_factory=list)
    secondary_min_matches: int = Field(default=2, ge=1)


class PrefilterRules(_Model):
    """Declarative prefilter of one filter; see `filters.prefilter.Prefilter` for the order of checks."""

    # Serving never blocks for length by default (short text is scored and flagged); the oracle keeps its own
    # labelling minimum (`Oracle.min_content_length`). `min_content_length` is a hard serving minimum (null: none).
    min_content_length: int | None = Field(default=None, ge=0)
    short_content_chars: int | None = Field(default=300, ge=0)  # shorter content → result flag `short_content`
    scan_chars: int = Field(default=2000, ge=100)
    reason_prefix: str = ""
    excluded_source_types: list[str] = Field(default_factory=list)
    domain_exclusions: dict[str, list[str]] = Field(default_factory=dict)
    source_exclusions: dict[str, list[str]] = Field(default_factory=dict)
    source_allowlist: list[str] = Field(default_factory=list)
    # Pass at once when one of these regexes occurs (before source exclusions), reason `<pass_keyword_reason>:<match>`
    pass_keywords: list[str] = Field(default_factory=list)
    pass_keyword_reason: str = "keyword"
    override_keywords: list[str] = Field(default_factory=list)
    exclusions: list[ExclusionCategory] = Field(default_factory=list)
    required_topics: list[RequiredTopic] = Field(default_factory=list)


class Preprocessing(_Model):
    """How an article becomes model input; part of the preprocessing fingerprint of trained artifacts."""

    text_template: str = "{title}\n\n{content}"
    head_tokens: int = Field(default=256, ge=0)
    tail_tokens: int = Field(default=256, ge=0)
    separator: str = " [...] "


class Hybrid(_Model):
    """Stage-1/Stage-2 routing: anchor-style WA threshold and the tier that must not be lost."""

    threshold: float = Field(default=2.0, ge=0.0, le=10.0)
    protected_tier: str = "medium"
    max_false_negative_rate: float = Field(default=0.02, ge=0.0, le=1.0)


class TierPolicy(_Model):
    """How the tier model (models/tiers.py) picks its operating point: `recall` (a feed that must not miss
    needles: the highest cutoff whose validation recall reaches `min_recall`), `precision` (an alert channel: the
    lowest cutoff whose validation precision reaches `min_precision`) or `balanced` (F1-optimal), at the edge of the
    protected tier (the needles); other tier edges sit at their F1-optimal cutoff. The cutoffs of all three are
    stored with the model, so switching policy needs no re-training."""

    policy: Literal["recall", "balanced", "precision"] = "balanced"
    min_recall: float = Field(default=0.85, gt=0.0, le=1.0)
    min_precision: float = Field(default=0.8, gt=0.0, le=1.0)


class Oracle(_Model):
    """Where the oracle prompt lives (relative to the spec file) and the default model."""

    prompt: str = "prompt.md"
    model: str = ""
    # Labelling refuses shorter content (cleaned characters): on snippets an LLM invents evidence.
    min_content_length: int | None = Field(default=300, ge=0)


class FilterSpec(_Model):
    """A whole filter version."""

    name: str
    version: int = Field(ge=1)
    status: Literal["active", "draft", "parked", "superseded"] = "active"
    description: str = ""
    missing: list[str] = Field(default_factory=list)
    dimensions: list[Dimension]
    gatekeepers: list[Gatekeeper] = Field(default_factory=list)
    tiers: list[Tier]
    content_types: dict[str, ContentTypeRule] = Field(default_factory=dict)
    preprocessing: Preprocessing = Field(default_factory=Preprocessing)
    prefilter: PrefilterRules = Field(default_factory=PrefilterRules)
    hybrid: Hybrid = Field(default_factory=Hybrid)
    tier_model: TierPolicy = Field(default_factory=TierPolicy)
    oracle: Oracle = Field(default_factory=Oracle)
    path: Path | None = Field(default=None, exclude=True)

    @field_validator("name")
    @classmethod
    def _name_is_identifier(cls, value: str) -> str:
        if not value.replace("_", "").isalnum() or value != value.lower():
            raise ValueError(f"name {value!r} must be lower_snake_case (underscores only, no hyphens)")
        return value

    @field_validator("dimensions")
    @classmethod
    def _dimensions_valid(cls, dims: list[Dimension]) -> list[Dimension]:
        if not dims:
            raise ValueError("at least one dimension is required")
        names = [d.name for d in dims]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate dimension names {dupes}: give each dimension a unique name")
        total = math.fsum(d.weight for d in dims)
        if abs(total - 1.0) > WEIGHT_TOLERANCE:
            raise ValueError(
                f"dimension weights sum to {total:.6g}, not 1.0 (± {WEIGHT_TOLERANCE:g}): "
                "adjust the weights so they add up to 1.0"
            )
        return dims

    @field_validator("tiers")
    @classmethod
    def _tiers_ordered(cls, tiers: list[Tier]) -> list[Tier]:
        if not tiers:
            raise ValueError("at least one tier is required (the lowest with threshold 0.0)")
        thresholds = [t.threshold for t in tiers]
        if any(a <= b for a, b in zip(thresholds, thresholds[1:], strict=False)):
            raise ValueError(
                f"tiers out of order {[(t.name, t.threshold) for t in tiers]}: list them from the highest "
                "threshold to the lowest, each strictly lower than the one before"
            )
        if thresholds[-1] != 0.0:
            raise ValueError(f"the last tier {tiers[-1].name!r} must have threshold 0.0 so every WA gets a tier")
        return tiers

    @model_validator(mode="after")
    def _references_known(self) -> FilterSpec:
        names = set(self.dimension_names)
        for i, g in enumerate(self.gatekeepers):
            if g.dimension not in names:
                raise ValueError(
                    f"gatekeepers[{i}].dimension {g.dimension!r} is not a dimension of this filter; "
                    f"use one of {sorted(names)}"
                )
        for ctype, rule in self.content_types.items():
            unknown = sorted(set(rule.max_dimensions) - names)
            if unknown:
                raise ValueError(
                    f"content_types.{ctype}.max_dimensions names unknown dimensions {unknown}; "
                    f"use one of {sorted(names)}"
                )
        if self.hybrid.protected_tier not in self.tier_names:
            raise ValueError(
                f"hybrid.protected_tier {self.hybrid.protected_tier!r} is not a tier; use one of {self.tier_names}"
            )
        return self

    # -- derived views -------------------------------------------------------------------------
    @property
    def key(self) -> str:
        """`name/vN`, the identifier used on topics, artifacts and results."""
        return f"{self.name}/v{self.version}"

    @property
    def dimension_names(self) -> list[str]:
        return [d.name for d in self.dimensions]

    @property
    def weights(self) -> list[float]:
        return [d.weight for d in self.dimensions]

    @property
    def tier_names(self) -> list[str]:
        return [t.name for t in self.tiers]

    @property
    def protected_threshold(self) -> float:
        """WA at which an article belongs to the protected tier (the router's must-not-lose edge)."""
        return next(t.threshold for t in self.tiers if t.name == self.hybrid.protected_tier)

    @property
    def directory(self) -> Path:
        if self.path is None:
            raise SpecError(f"filter {self.key} was not loaded from a file, so it has no directory")
        return self.path.parent

    @property
    def artifacts_dir(self) -> Path:
        return self.directory / "artifacts"

    @property
    def prompt_path(self) -> Path:
        return self.directory / self.oracle.prompt


def _format_error(path: Path, err: ValidationError) -> str:
    lines = [f"{path}: invalid filter spec"]
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "(top level)"
        msg = e["msg"].removeprefix("Value error, ")
        lines.append(f"  {loc}: {msg}")
    return "\n".join(lines)


def parse_spec(data: dict[str, Any], path: Path) -> FilterSpec:
    """Validate a spec mapping; errors name the file and each bad field."""
    try:
        return FilterSpec.model_validate({**data, "path": path})
    except ValidationError as err:
        raise SpecError(_format_error(path, err)) from None


def read_yaml_mapping(path: Path, missing_hint: str) -> dict[str, Any]:
    """A YAML file whose top level is a mapping; every failure is a SpecError naming the file and the fix."""
    if not path.is_file():
        raise SpecError(f"{path}: {missing_hint}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise SpecError(f"{path}: not valid YAML ({err}); fix the syntax") from None
    if not isinstance(data, dict):
        raise SpecError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def load_spec(path: str | Path) -> FilterSpec:
    """Load `filter.yaml` (or a directory holding one)."""
    path = Path(path)
    if path.is_dir():
        path = path / "filter.yaml"
    hint = "no such filter spec file; pass a filter.yaml or a filter name (see `filters list`)"
    return parse_spec(read_yaml_mapping(path, hint), path.resolve())


def spec_paths(root: Path = FILTERS_ROOT) -> list[Path]:
    """Every shipped `filter.yaml`, sorted by name and version."""

    def order(p: Path) -> tuple[str, int]:
        return p.parent.parent.name, int(p.parent.name[1:])

    return sorted((p for p in root.glob("*/v*/filter.yaml") if p.parent.name[1:].isdigit()), key=order)


def available(root: Path = FILTERS_ROOT) -> dict[str, list[int]]:
    """Filter name → shipped versions."""
    out: dict[str, list[int]] = {}
    for p in spec_paths(root):
        out.setdefault(p.parent.parent.name, []).append(int(p.parent.name[1:]))
    return out


def resolve_spec(ref: str | Path, root: Path = FILTERS_ROOT) -> FilterSpec:
    """Load a spec from a path, `name`, `name/vN` or `name:N`; a bare name takes the newest version.

    For authoring: labelling, training, validation and prefilter evaluation work on the newest version (it may
    have no trained artifacts yet). Anything that must agree with what the worker publishes (scoring, the monitor's
    weights, the oracle spot-check) uses `resolve_served` instead. Reads the YAML on every call.
    """
    ref_str = str(ref)
    candidate = Path(ref_str)
    # A path only when it looks like one: a bare name never resolves to a folder in the working directory.
    if candidate.suffix in {".yaml", ".yml"} or ("/" in ref_str and candidate.exists()):
        return load_spec(candidate)
    name, _, version = ref_str.replace(":", "/v").partition("/v")
    versions = available(root).get(name)
    if not versions:
        raise SpecError(f"unknown filter {ref_str!r}; known filters: {', '.join(sorted(available(root)))}")
    if version and not version.isdigit():
        raise SpecError(f"filter reference {ref_str!r}: version must be a number; shipped versions: {versions}")
    chosen = int(version) if version else max(versions)
    if chosen not in versions:
        raise SpecError(f"filter {name!r} has no version {chosen}; shipped versions: {versions}")
    return load_spec(root / name / f"v{chosen}" / "filter.yaml")


def has_artifacts(spec: FilterSpec) -> bool:
    """Whether the spec's version ships trained artifacts (a manifest in `artifacts/`)."""
    return (spec.artifacts_dir / "manifest.json").is_file()


def _trained_paths(root: Path) -> tuple[Path, ...]:
    """Every shipped `filter.yaml` whose version has trained artifacts (a manifest)."""
    return tuple(p for p in spec_paths(root) if (p.parent / "artifacts" / "manifest.json").is_file())


def trained_specs(root: Path = FILTERS_ROOT) -> dict[str, FilterSpec]:
    """Filter name → its newest version with trained artifacts: what a worker serves by default."""
    out: dict[str, FilterSpec] = {}
    for path in _trained_paths(root):
        spec = load_spec(path)
        if spec.name not in out or spec.version > out[spec.name].version:
            out[spec.name] = spec
    return out


def resolve_served(ref: str | Path, root: Path = FILTERS_ROOT) -> FilterSpec:
    """THE resolver for serving: the spec the worker scores with for `ref`.

    A bare name means the newest version that has trained artifacts (the newest version when none has), so a
    newer draft being labelled never changes what is served; `name/vN`, `name:N` and paths resolve like
    `resolve_spec`. The YAML is parsed once per process for each reference and set of trained versions (a
    newly trained version is picked up; an edit of an already loaded `filter.yaml` needs a restart or
    `clear_served_cache()`).
    """
    root = Path(root)
    return _served(str(ref), root, _trained_paths(root))


@lru_cache(maxsize=256)
def _served(ref: str, root: Path, trained: tuple[Path, ...]) -> FilterSpec:
    served = trained_specs(root).get(ref) if trained else None
    return served if served is not None else resolve_spec(ref, root)


def clear_served_cache() -> None:
    """Forget the specs `resolve_served` parsed (after editing a `filter.yaml` in a running process)."""
    _served.cache_clear()
