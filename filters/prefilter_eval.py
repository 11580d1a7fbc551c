"""Block/pass quality of a prefilter on labelled rows: the label parsing and metrics `prefilter evaluate` reports."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from filters.jsonl import read_objects

BLOCK_VALUES = {"block", "blocked", "1", "true", "yes"}
BY_GROUP_KEYS = ("n", "n_expected_block", "n_expected_pass", "precision_block", "recall_block", "f1_block",
                 "pass_rate_on_pass")
PASS_VALUES = {"pass", "passed", "0", "false", "no"}


def expected_block(row: Mapping[str, Any], where: str) -> bool:
    """True when the row should be blocked: `expected` ∈ {pass, block} or `label` (1 = block)."""
    if "expected" in row and row["expected"] is not None:
        value = str(row["expected"]).strip().lower()
    elif "label" in row and row["label"] is not None:
        value = str(int(row["label"])) if isinstance(row["label"], bool | int | float) else str(row["label"]).lower()
    else:
        raise ValueError(f"{where}: row has neither `expected` (pass|block) nor `label` (1 = block); add one")
    if value in BLOCK_VALUES:
        return True
    if value in PASS_VALUES:
        return False
    raise ValueError(f"{where}: expected/label {value!r} is not one of pass|block|0|1")


def load_rows(path: Path) -> list[dict[str, Any]]:
    """JSONL rows with `title` and `text`/`content`; errors name the file and line."""
    numbered = read_objects(path, expected="a JSONL file with title, text and expected|label", allow_empty=False)
    for i, row in numbered:
        row.setdefault("id", f"line{i}")
        row["_where"] = f"{path}:{i}"
    return [row for _, row in numbered]


def summarise(decisions: list[tuple[bool, bool, str]]) -> dict[str, Any]:
    """Metrics from (should_block, blocked, reason) triples; "block" is the positive class; None = undefined."""
    tp = sum(1 for e, b, _ in decisions if e and b)
    fp = sum(1 for e, b, _ in decisions if not e and b)
    fn = sum(1 for e, b, _ in decisions if e and not b)
    tn = sum(1 for e, b, _ in decisions if not e and not b)

    def ratio(num: int, den: int) -> float | None:
        return round(num / den, 4) if den else None  # None (JSON null): undefined, e.g. no row to block

    precision, recall = ratio(tp, tp + fp), ratio(tp, tp + fn)
    f1: float | None
    if precision is None or recall is None:
        f1 = None
    else:
        f1 = round(2 * precision * recall / (precision + recall), 4) if precision + recall else 0.0

    def key(reason: str) -> str:
        return "commerce_head" if reason.startswith("commerce_head:") else reason

    by_expected: dict[str, Counter[str]] = {"block": Counter(), "pass": Counter()}
    for e, _, r in decisions:
        by_expected["block" if e else "pass"][key(r)] += 1
    return {
        "n": len(decisions),
        "n_expected_block": tp + fn,
        "n_expected_pass": tn + fp,
        "block_rate_on_block": recall,
        "pass_rate_on_pass": ratio(tn, tn + fp),
        "precision_block": precision,
        "recall_block": recall,
        "f1_block": f1,
        "confusion": {"tp": tp, "fp": fp, "fn": fn, "tn": tn},
        "reasons": dict(Counter(key(r) for _, _, r in decisions).most_common()),
        "reasons_by_expected": {k: dict(v.most_common()) for k, v in by_expected.items()},
    }


def by_language(rows: Sequence[Mapping[str, Any]], triples: Sequence[tuple[bool, bool, str]]) -> dict[str, Any] | None:
    """The per-language subset of `summarise` when rows carry a `language`; None when none does."""
    languages = [str(r.get("language") or "").strip().lower() for r in rows]
    if not any(languages):
        return None
    return {
        lang or "unknown": {k: v for k, v in summarise([t for t, g in zip(triples, languages, strict=True)
                                                      if g == lang]).items() if k in BY_GROUP_KEYS}
        for lang in sorted(set(languages))
    }
