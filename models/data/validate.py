"""Row validation against a filter spec: ids, text, scores present and in range, degenerate score patterns."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

from filters.spec import FilterSpec
from models.data.rows import row_text

Degenerate = Literal["nonzero", "all", "none"]


def scores_of(spec: FilterSpec, row: Mapping[str, Any]) -> list[float] | str:
    """The row's scores in spec order, or the reason they cannot be used."""
    scores = row.get("scores")
    if not isinstance(scores, Mapping):
        return "missing_scores"
    missing = [d for d in spec.dimension_names if d not in scores]
    if missing:
        return "missing_dimensions"
    out: list[float] = []
    for d in spec.dimension_names:
        value = scores[d]
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            return "non_numeric_score"
        if not 0.0 <= value <= 10.0:
            return "out_of_range"
        out.append(float(value))
    return out


def problem(spec: FilterSpec, row: Mapping[str, Any], degenerate: Degenerate = "nonzero") -> str | None:
    """Why a row must be dropped (a stable reason string), or None when it is usable.

    Degenerate rows have every dimension equal: `nonzero` drops them unless all zero (an all-zero row is the
    oracle's "off topic" answer and a real label), `all` drops every such row, `none` keeps them.
    """
    if not str(row.get("id") or "").strip():
        return "missing_id"
    if row.get("filter") and row["filter"] != spec.name:
        return "other_filter"
    if not row_text(row):
        return "empty_text"
    scores = scores_of(spec, row)
    if isinstance(scores, str):
        return scores
    if len(scores) > 1 and len(set(scores)) == 1:
        if degenerate == "all" or (degenerate == "nonzero" and scores[0] != 0.0):
            return "degenerate_all_equal"
    return None
