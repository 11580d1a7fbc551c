"""`data merge`: combine label sets; for each article id the newest label (`analyzed_at`) wins."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from models.data.rows import DataFileError, parse_time, read_rows, write_rows


def merge(inputs: Sequence[str | Path], output: str | Path, filter_name: str | None = None) -> dict[str, Any]:
    """Merge JSONL label files into `output`. Ties in `analyzed_at` go to the file named later.

    Without `filter_name`, rows of more than one filter are an error (their scores cannot be mixed).
    """
    best: dict[str, tuple[Any, int, dict[str, Any]]] = {}
    per_input: dict[str, int] = {}
    filters: set[str] = set()
    skipped_other = missing_id = replaced = 0
    order = 0
    for path in inputs:
        rows = read_rows(path)
        per_input[str(path)] = len(rows)
        for _, row in rows:
            if filter_name and row.get("filter") and row["filter"] != filter_name:
                skipped_other += 1
                continue
            ident = str(row.get("id") or "").strip()
            if not ident:
                missing_id += 1
                continue
            if row.get("filter"):
                filters.add(str(row["filter"]))
            order += 1
            rank = (parse_time(row.get("analyzed_at")), order)
            if ident in best:
                replaced += 1
                if rank > best[ident][0]:
                    best[ident] = (rank, order, row)
            else:
                best[ident] = (rank, order, row)
    if len(filters) > 1:
        raise DataFileError(
            f"inputs hold labels of several filters {sorted(filters)}; pass --filter NAME to keep one of them"
        )
    merged = [row for _, _, row in sorted(best.values(), key=lambda t: t[1])]
    n = write_rows(Path(output), merged)
    return {"inputs": per_input, "output": str(output), "rows_out": n, "superseded": replaced,
            "skipped_other_filter": skipped_other, "skipped_missing_id": missing_id}
