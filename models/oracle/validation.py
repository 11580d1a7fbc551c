"""Parse an oracle reply and validate it against the filter spec; caps/penalties are applied here, in code."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from filters.postfilter import apply_caps
from filters.spec import FilterSpec
from models.errors import ModelsError

_FENCE_RE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL | re.IGNORECASE)
_RESERVED = {"content_type", "content_flags"}


class OracleResponseError(ModelsError, ValueError):
    """A reply that is not a usable label; `kind` groups errors in the run summary."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass
class OracleLabel:
    """A validated oracle judgment: capped scores (training targets), the oracle's raw scores and evidence."""

    scores: dict[str, float]
    raw_scores: dict[str, float]
    evidence: dict[str, str]
    content_type: str | None
    content_flags: list[str] = field(default_factory=list)
    caps_applied: list[str] = field(default_factory=list)
    overall_cap: float | None = None


def extract_json(text: str) -> dict[str, Any]:
    """The JSON object in a reply: the whole text, a ```json fence, or the outermost {...}."""
    candidates = [text.strip()]
    candidates += [m.strip() for m in _FENCE_RE.findall(text)]
    start, end = text.find("{"), text.rfind("}")
    if start != -1 and end > start:
        candidates.append(text[start:end + 1])
    for candidate in candidates:
        try:
            value = json.loads(candidate)
        except (json.JSONDecodeError, ValueError):
            continue
        if isinstance(value, dict):
            return value
    snippet = text.strip().replace("\n", " ")[:200]
    raise OracleResponseError("malformed_json", f"reply is not a JSON object: {snippet!r}")


def content_type_enum(spec: FilterSpec) -> set[str] | None:
    """Allowed `content_type` values: the spec's content_types (plus any `content_types_extra`); None = any."""
    allowed = set(spec.content_types) | set(getattr(spec, "content_types_extra", None) or ())
    return allowed or None


def _score(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


# Just over 60 lines: one check per reply field, collected so a single error lists every problem.
def validate_response(spec: FilterSpec, reply: Mapping[str, Any]) -> OracleLabel:
    """Check every dimension (score 0–10, evidence string) and content_type; then apply the spec's caps.

    All problems are reported together so one error message says everything that is wrong with the reply.
    """
    problems: list[str] = []
    kinds: list[str] = []
    raw: dict[str, float] = {}
    evidence: dict[str, str] = {}
    missing = [d for d in spec.dimension_names if d not in reply]
    if missing:
        kinds.append("missing_dimensions")
        problems.append(f"missing dimensions {missing}")
    for dim in spec.dimension_names:
        if dim not in reply:
            continue
        entry = reply[dim]
        if not isinstance(entry, Mapping) or "score" not in entry:
            kinds.append("bad_dimension")
            problems.append(f"{dim}: expected {{\"score\": 0-10, \"evidence\": \"...\"}}, got {entry!r:.80}")
            continue
        score = _score(entry["score"])
        if score is None or not math.isfinite(score):
            kinds.append("bad_score")
            problems.append(f"{dim}.score {entry['score']!r} is not a number")
        elif not 0.0 <= score <= 10.0:
            kinds.append("out_of_range")
            problems.append(f"{dim}.score {score:g} is outside 0-10")
        else:
            raw[dim] = score
        ev = entry.get("evidence", "")
        if not isinstance(ev, str):
            kinds.append("bad_evidence")
            problems.append(f"{dim}.evidence must be a string, got {type(ev).__name__}")
        else:
            evidence[dim] = ev
    allowed = content_type_enum(spec)
    ctype = reply.get("content_type")
    if ctype is not None and not isinstance(ctype, str):
        kinds.append("bad_content_type")
        problems.append(f"content_type must be a string, got {ctype!r:.60}")
        ctype = None
    elif allowed is not None and ctype not in allowed:
        kinds.append("bad_content_type")
        problems.append(f"content_type {ctype!r} is not one of {sorted(allowed)}")
    flags = reply.get("content_flags") or []
    if not isinstance(flags, list) or not all(isinstance(f, str) for f in flags):
        kinds.append("bad_content_flags")
        problems.append(f"content_flags must be a list of strings, got {flags!r:.80}")
        flags = []
    if problems:
        raise OracleResponseError(kinds[0], "; ".join(problems))
    labels = ([ctype] if ctype else []) + list(flags)
    capped, overall, applied = apply_caps(spec, raw, labels)
    return OracleLabel(
        scores=capped,
        raw_scores=raw,
        evidence=evidence,
        content_type=ctype,
        content_flags=list(flags),
        caps_applied=applied,
        overall_cap=overall,
    )
