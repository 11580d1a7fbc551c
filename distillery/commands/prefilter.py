"""`distillery prefilter evaluate`: block/pass quality of a filter's prefilter or of the commerce gate."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
from rich.table import Table
from tqdm import tqdm

from distillery.commands._console import console
from distillery.commands._runtime import model_runtime, shared_encoder
from distillery.errors import fail
from filters.commerce import CommerceFilter, CommerceRules
from filters.prefilter import Prefilter
from filters.prefilter_eval import by_language, expected_block, load_rows, summarise
from filters.spec import resolve_spec

prefilter_app = typer.Typer(help="Measure a prefilter (or the universal commerce rules) on labelled rows.",
                            no_args_is_help=True)


def _cell(value: Any) -> str:
    return "-" if value is None else str(value)


def _commerce_decider(rows: list[dict[str, Any]], use_head: bool, data: Path) -> tuple[Callable, dict[str, Any]]:
    """The commerce gate (rules, plus the trained head when available) and what the report says about it."""
    rules = CommerceRules.default()
    info: dict[str, Any] = {"head": False, "threshold": None}
    head = None
    if use_head:
        from models.commerce_head import load_default  # lazy: scikit-learn, only when the head is asked for

        head = load_default()
        if head is None:
            info["head_note"] = "no trained commerce head (filters/commerce/artifacts): rules only"
    gate = CommerceFilter(rules, head=head)
    if head is None:
        return (lambda row, i: gate.decide(row, None)), info

    model_runtime()
    probabilities = head.probabilities(shared_encoder().encode(rows, progress=True))
    info.update(head=True, threshold=gate.threshold)
    trained_on = str(getattr(head, "metrics", {}).get("data", ""))
    if trained_on and Path(trained_on).resolve() == data.resolve():
        info["head_note"] = ("the head was trained on this file: these figures are in-sample; see the head's "
                             "cross-validated metrics in filters/commerce/artifacts/commerce_head.json")
    return (lambda row, i: gate.decide(row, float(probabilities[i]))), info


@prefilter_app.command("evaluate")
def evaluate(
    filter_ref: str = typer.Option(..., "--filter", help="filter name, name/vN, path to filter.yaml, or `commerce`"),
    data: Path = typer.Option(..., "--data", help="JSONL rows: title, text (may be empty), expected|label"),
    ignore_length: bool = typer.Option(False, "--ignore-length", help="skip the min_content_length check"),
    out: Path | None = typer.Option(None, "--out", help="write the JSON report here"),
    no_head: bool = typer.Option(False, "--no-head", help="commerce: rules only, even if a trained head exists"),
) -> None:
    """Block/pass quality of a prefilter on labelled rows: precision, recall and F1 of blocking, counts per reason."""
    try:
        rows = load_rows(data)
        expected = [expected_block(r, r["_where"]) for r in rows]
    except ValueError as err:
        fail(str(err))
    report: dict[str, Any] = {"filter": filter_ref, "data": str(data), "ignore_length": ignore_length}
    decide: Callable[[dict[str, Any], int], Any]
    if filter_ref == "commerce":
        decide, info = _commerce_decider(rows, not no_head, data)
        report.update(info)
    else:
        spec = resolve_spec(filter_ref)
        prefilter = Prefilter.for_spec(spec, ignore_length=ignore_length)
        report["filter"] = spec.key
        title_only = sum(1 for r in rows if not (r.get("text") or r.get("content")))
        if title_only:  # e.g. the frozen must-block rows carry only a title: judge them on it, not as empty
            report["title_only_rows"] = title_only

        def decide(row: dict[str, Any], i: int) -> Any:
            if not (row.get("text") or row.get("content")):
                return prefilter.check({**row, "content": row.get("title") or ""})
            return prefilter.check(row)

    triples = []
    for i, row in enumerate(tqdm(rows, desc="prefilter", unit="row", disable=len(rows) < 500)):
        decision = decide(row, i)
        triples.append((expected[i], not decision.passed, decision.reason))
    report.update(summarise(triples))
    languages = by_language(rows, triples)
    if languages is not None:
        report["by_language"] = languages

    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    _print(report, data, filter_ref == "commerce", out)


def _print(report: dict[str, Any], data: Path, commerce: bool, out: Path | None) -> None:
    printer = console()
    table = Table("metric", "value", title=f"prefilter evaluate: {report['filter']} on {data.name}")
    for k in ("n", "n_expected_block", "n_expected_pass", "block_rate_on_block", "pass_rate_on_pass",
              "precision_block", "recall_block", "f1_block"):
        table.add_row(k, _cell(report[k]))
    if commerce:
        table.add_row("head", f"{report['head']} (threshold {report['threshold']})" if report["head"] else "False")
    printer.print(table)
    reasons = Table("reason", "should block", "should pass", title="decisions per reason")
    for reason in report["reasons"]:
        reasons.add_row(reason, str(report["reasons_by_expected"]["block"].get(reason, 0)),
                        str(report["reasons_by_expected"]["pass"].get(reason, 0)))
    printer.print(reasons)
    if "by_language" in report:
        langs = Table("language", "n", "should block", "recall_block", "pass_rate_on_pass", "f1_block",
                      title="per language")
        for lang, m in report["by_language"].items():
            langs.add_row(lang, str(m["n"]), str(m["n_expected_block"]), _cell(m["recall_block"]),
                          _cell(m["pass_rate_on_pass"]), _cell(m["f1_block"]))
        printer.print(langs)
    if report.get("head_note"):
        printer.print(f"[yellow]note:[/yellow] {report['head_note']}")
    if out is not None:
        printer.print(f"report written to {out}")


def register(app: typer.Typer) -> None:
    """Add `prefilter` to the root app."""
    app.add_typer(prefilter_app, name="prefilter")
