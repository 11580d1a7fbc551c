"""The validation report of a prepared label set: what was dropped and why, label distribution, split sizes."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from filters.postfilter import postfilter
from filters.spec import FilterSpec


def label_stats(spec: FilterSpec, rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Per-dimension statistics, weighted-average summary, tiers (after caps and gatekeepers) and content types."""
    if not rows:
        return {"n": 0}
    dims = spec.dimension_names
    labels = np.array([[float(r["scores"][d]) for d in dims] for r in rows])
    tiers: Counter[str] = Counter()
    was: list[float] = []
    for r in rows:
        scored = postfilter(spec, r["scores"], r.get("content_type"), r.get("content_flags") or ())
        tiers[scored.tier] += 1
        was.append(scored.weighted_average)
    wa = np.asarray(was)
    patterns = Counter(tuple(row) for row in labels.tolist())
    top_pattern, top_count = patterns.most_common(1)[0]
    equal = labels.max(axis=1) == labels.min(axis=1)
    return {
        "n": len(rows),
        "dimensions": {
            d: {"mean": round(float(labels[:, j].mean()), 3), "std": round(float(labels[:, j].std()), 3),
                "min": float(labels[:, j].min()), "max": float(labels[:, j].max()),
                "share_zero": round(float((labels[:, j] == 0).mean()), 4),
                "distinct": int(len(np.unique(labels[:, j])))}
            for j, d in enumerate(dims)
        },
        "weighted_average": {"mean": round(float(wa.mean()), 3), "p50": round(float(np.median(wa)), 3),
                             "p90": round(float(np.percentile(wa, 90)), 3), "max": round(float(wa.max()), 3)},
        "tiers": {t: tiers.get(t, 0) for t in spec.tier_names},
        "content_types": dict(Counter(str(r.get("content_type")) for r in rows).most_common()),
        "all_equal_rows": int(equal.sum()),
        "all_zero_rows": int((equal & (labels[:, 0] == 0)).sum()),
        "most_repeated_pattern": {"scores": list(top_pattern), "count": top_count},
    }


def render(report: Mapping[str, Any]) -> str:
    """Plain-text report for the terminal."""
    lines = [f"data prepare {report['filter']}: {report['input']} ({report['rows_in']} rows)"]
    lines.append(f"  dropped invalid: {sum(report['dropped'].values())} {report['dropped'] or ''}".rstrip())
    lines.append(f"  duplicates removed: {sum(report['duplicates'].values())} {report['duplicates'] or ''}".rstrip())
    stats = report["labels"]
    lines.append(f"  kept {report['rows_kept']} rows")
    if stats.get("n"):
        lines.append(f"  tiers {stats['tiers']}")
        wa = stats["weighted_average"]
        lines.append(f"  WA mean {wa['mean']} p50 {wa['p50']} p90 {wa['p90']} max {wa['max']}")
        lines.append(f"  all-equal rows kept {stats['all_equal_rows']} (all zero {stats['all_zero_rows']}); "
                     f"most repeated score pattern x{stats['most_repeated_pattern']['count']}")
        lines.append("  dimension            mean   std  zero%  distinct")
        for d, s in stats["dimensions"].items():
            lines.append(f"  {d[:20]:<20} {s['mean']:>5.2f} {s['std']:>5.2f} {100 * s['share_zero']:>5.1f} "
                         f"{s['distinct']:>9}")
    if report.get("splits"):
        parts = ", ".join(f"{k} {v['n']} {v['tiers']}" for k, v in report["splits"].items())
        lines.append(f"  splits: {parts}")
    for w in report.get("warnings", []):
        lines.append(f"  warning: {w}")
    return "\n".join(lines)
