"""`data prepare`: validate and deduplicate a label file, report on it, and write stratified 80/10/10 splits."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from filters.spec import FilterSpec
from filters.timeutil import now_iso
from models.artifacts import sha256_file
from models.data.dedupe import TitleRule, find_duplicates
from models.data.report import label_stats
from models.data.rows import parse_time, read_rows, write_rows
from models.data.validate import Degenerate, problem
from models.errors import ModelsError
from models.training.data import Dataset, to_article
from models.training.split import split_dataset

SPLITS = ("train", "val", "test")


class PrepareError(ModelsError, ValueError):
    """A label set that cannot be split; the message says what is missing."""


@dataclass(frozen=True)
class PrepareConfig:
    """Knobs of `data prepare`; the defaults follow the anchor (seed 42, 80/10/10)."""

    seed: int = 42
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
    degenerate: Degenerate = "nonzero"
    title_rule: TitleRule = field(default_factory=TitleRule)


def _dataset(spec: FilterSpec, rows: list[dict[str, Any]]) -> Dataset:
    """The rows as training loads them (`models.training.data.to_article` cleans the text), so the split below is
    the one `distillery train --data all.jsonl` recomputes."""
    articles = [to_article(r) for r in rows]
    labels = np.array([[float(r["scores"][d]) for d in spec.dimension_names] for r in rows], dtype=np.float64)
    return Dataset(articles, labels, spec.dimension_names)


# Just over 60 lines: one linear pipeline (validate, dedupe, split, write, report) that reads best in one place.
def prepare(spec: FilterSpec, input_path: str | Path, out_dir: str | Path,
            config: PrepareConfig = PrepareConfig()) -> dict[str, Any]:
    """Validate → deduplicate (newest label wins) → split → write `train/val/test.jsonl`, `all.jsonl` (every kept
    row in input order, for `distillery train --data`, which recomputes the same split), `dropped.jsonl` (ids and
    reasons only) and `report.json`; returns the report."""
    input_path, out_dir = Path(input_path), Path(out_dir)
    numbered = read_rows(input_path)
    digest = sha256_file(input_path)
    dropped: Counter[str] = Counter()
    dropped_rows: list[dict[str, Any]] = []
    usable: list[tuple[int, dict[str, Any]]] = []
    for line, row in numbered:
        reason = problem(spec, row, config.degenerate)
        if reason:
            dropped[reason] += 1
            dropped_rows.append({"id": row.get("id"), "line": line, "reason": reason})
        else:
            usable.append((line, row))
    # newest label first so it is the one kept; ties keep file order
    usable.sort(key=lambda lr: parse_time(lr[1].get("analyzed_at")), reverse=True)
    dupes = find_duplicates([r for _, r in usable], config.title_rule)
    duplicates: Counter[str] = Counter()
    for i, (kind, j) in dupes.items():
        duplicates[kind] += 1
        dropped_rows.append({"id": usable[i][1].get("id"), "line": usable[i][0], "reason": f"duplicate_{kind}",
                             "duplicate_of": usable[j][1].get("id")})
    kept = sorted((lr for i, lr in enumerate(usable) if i not in dupes), key=lambda lr: lr[0])
    rows = [r for _, r in kept]
    if len(rows) < 10:
        raise PrepareError(
            f"{input_path}: only {len(rows)} usable rows after validation and dedup (dropped {dict(dropped)}, "
            f"duplicates {dict(duplicates)}); 80/10/10 needs at least 10"
        )
    split = split_dataset(_dataset(spec, rows), spec.weights, seed=config.seed, fractions=config.fractions)
    prepared_at = now_iso()
    part_of = {int(i): name for name in SPLITS for i in getattr(split, name).tolist()}
    prepared: list[dict[str, Any]] = []
    for idx, (line, row) in enumerate(kept):
        out = dict(row)
        out["provenance"] = {
            "input": str(input_path), "input_sha256": digest, "line": line, "split": part_of[idx],
            "seed": config.seed, "filter": spec.key, "prepared_at": prepared_at,
            **({"upstream": row["provenance"]} if row.get("provenance") else {}),
        }
        prepared.append(out)
    parts = {name: [r for r in prepared if r["provenance"]["split"] == name] for name in SPLITS}
    for name in SPLITS:
        write_rows(out_dir / f"{name}.jsonl", parts[name])
    write_rows(out_dir / "all.jsonl", prepared)
    write_rows(out_dir / "dropped.jsonl", sorted(dropped_rows, key=lambda d: d["line"]))
    stats = label_stats(spec, rows)
    report: dict[str, Any] = {
        "filter": spec.key, "input": str(input_path), "input_sha256": digest, "out_dir": str(out_dir),
        "seed": config.seed, "fractions": list(config.fractions), "degenerate_policy": config.degenerate,
        "rows_in": len(numbered), "dropped": dict(sorted(dropped.items())),
        "duplicates": dict(sorted(duplicates.items())), "rows_kept": len(rows), "labels": stats,
        "splits": {name: {"n": len(parts[name]), "tiers": label_stats(spec, parts[name]).get("tiers", {})}
                   for name in SPLITS},
        "warnings": _warnings(spec, stats),
    }
    (out_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return report


def _warnings(spec: FilterSpec, stats: dict[str, Any]) -> list[str]:
    out: list[str] = []
    top = spec.tier_names[0]
    share = stats["tiers"].get(top, 0) / stats["n"]
    if share < 0.01:
        out.append(f"top tier {top!r} is {100 * share:.2f} % of the labels (< 1 %): expect under-prediction; "
                   "add screened or actively selected articles (`distillery active select/screen`)")
    flat = [d for d, s in stats["dimensions"].items() if s["distinct"] <= 2]
    if flat:
        out.append(f"dimensions with at most 2 distinct values: {flat}")
    return out
