"""Commands of this package for the `distillery` CLI: `filters list|show|validate` and `prefilter evaluate`."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import typer

from filters.jsonl import read_objects

filters_app = typer.Typer(help="Inspect and validate the shipped filter specs.", no_args_is_help=True)
prefilter_app = typer.Typer(help="Measure a prefilter (or the universal commerce rules) on labelled rows.",
                            no_args_is_help=True)

BLOCK_VALUES = {"block", "blocked", "1", "true", "yes"}
BY_GROUP_KEYS = ("n", "n_expected_block", "n_expected_pass", "precision_block", "recall_block", "f1_block",
                 "pass_rate_on_pass")
PASS_VALUES = {"pass", "passed", "0", "false", "no"}


def _fail(message: str, code: int = 2) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _console() -> Any:
    from rich.console import Console

    return Console(soft_wrap=True)


# -- filters list / show / validate ---------------------------------------------------------------------------


@filters_app.command("list")
def list_filters() -> None:
    """Every shipped filter version: status, number of dimensions and whether trained artifacts exist."""
    from rich.table import Table

    from filters.spec import SpecError, load_spec, spec_paths

    table = Table(title="shipped filters")
    for column in ("filter", "version", "status", "dims", "trained"):
        table.add_column(column, no_wrap=True)
    invalid = 0
    for path in spec_paths():
        name, version = path.parent.parent.name, path.parent.name
        try:
            spec = load_spec(path)
        except SpecError:
            invalid += 1
            table.add_row(name, version, "INVALID", "-", "-")
            continue
        trained = (spec.artifacts_dir / "manifest.json").is_file()
        table.add_row(spec.name, f"v{spec.version}", spec.status, str(len(spec.dimensions)), "yes" if trained else "no")
    console = _console()
    console.print(table)
    if invalid:
        console.print(f"{invalid} spec(s) invalid: run `distillery filters validate` for the reasons")


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


@filters_app.command("show")
def show_filter(name: str = typer.Argument(..., help="filter name, name/vN, or a path to filter.yaml")) -> None:
    """Print one spec readably: dimensions, weights, gatekeepers, tiers, caps, hybrid and prefilter."""
    from rich.table import Table

    from filters.spec import SpecError, resolve_spec

    try:
        spec = resolve_spec(name)
    except SpecError as err:
        _fail(str(err))
    console = _console()
    trained = (spec.artifacts_dir / "manifest.json").is_file()
    console.print(f"[bold]{spec.key}[/bold]  status={spec.status}  trained={'yes' if trained else 'no'}  ({spec.path})")
    if spec.description:
        console.print(spec.description.strip())
    if spec.missing:
        console.print("[yellow]missing:[/yellow] " + "; ".join(spec.missing))

    dims = Table("dimension", "weight", "description", title="dimensions")
    for d in spec.dimensions:
        dims.add_row(d.name, f"{d.weight:g}", d.description.strip().replace("\n", " ")[:90])
    console.print(dims)

    if spec.gatekeepers:
        gk = Table("dimension", "if below", "WA capped at", title="gatekeepers")
        for g in spec.gatekeepers:
            gk.add_row(g.dimension, f"{g.min:g}", f"{g.cap:g}")
        console.print(gk)

    tiers = Table("tier", "WA ≥", "description", title="tiers")
    for t in spec.tiers:
        tiers.add_row(t.name, f"{t.threshold:g}", t.description.strip()[:90])
    console.print(tiers)

    if spec.content_types:
        caps = Table("content type", "max score", "max dims", "max WA", "penalty", title="content-type caps")
        caps.columns[2].overflow = "fold"
        for ctype, rule in spec.content_types.items():
            dims_caps = ", ".join(f"{k}≤{v:g}" for k, v in rule.max_dimensions.items()) or "-"
            caps.add_row(ctype, _fmt(rule.max_score), dims_caps, _fmt(rule.max_overall), _fmt(rule.penalty))
        console.print(caps)

    h, p, pre = spec.hybrid, spec.preprocessing, spec.prefilter
    console.print(f"hybrid: threshold={h.threshold:g} protected_tier={h.protected_tier} "
                  f"(WA ≥ {spec.protected_threshold:g}) max_false_negative_rate={h.max_false_negative_rate:g}")
    console.print(f"preprocessing: head={p.head_tokens} tail={p.tail_tokens} separator={p.separator!r} "
                  f"template={p.text_template!r}")
    console.print(
        f"prefilter: min_content_length={pre.min_content_length} scan_chars={pre.scan_chars} "
        f"excluded_source_types={pre.excluded_source_types or '-'} "
        f"domain groups={len(pre.domain_exclusions)} source blocks={sum(map(len, pre.source_exclusions.values()))} "
        f"allowlist={len(pre.source_allowlist)} overrides={len(pre.override_keywords)}"
    )
    for c in pre.exclusions:
        console.print(f"  exclusion {pre.reason_prefix}{c.category}: {len(c.patterns)} patterns "
                      f"(min {c.min_matches}), {len(c.exceptions)} exceptions"
                      + (f", bypass at {c.positive_threshold} of {len(c.positive_patterns)} positives"
                         if c.positive_patterns else "")
                      + (f", unless {len(c.unless_patterns)}" if c.unless_patterns else ""))
    for t in pre.required_topics:
        console.print(f"  required topic → {t.reason}: {len(t.keywords)} keywords")
    console.print(f"oracle: prompt={spec.oracle.prompt} model={spec.oracle.model or '-'}")


def _spec_files(paths: Iterable[Path]) -> list[Path]:
    out = []
    for path in paths:
        out.append(path / "filter.yaml" if path.is_dir() else path)
    return out


@filters_app.command("validate")
def validate(
    paths: list[Path] | None = typer.Argument(None, help="filter.yaml files or their directories (default: all)"),
) -> None:
    """Load each spec and compile its prefilter; print OK/FAIL per file and exit 1 on any failure."""
    from filters.commerce import RULES_PATH, CommerceRules
    from filters.prefilter import Prefilter
    from filters.spec import SpecError, load_spec, spec_paths

    files = _spec_files(paths) if paths else spec_paths()
    if not files:
        _fail("no filter specs found; pass paths to filter.yaml files")
    failures = 0
    for file in files:
        try:
            spec = load_spec(file)
            Prefilter.for_spec(spec)
        except SpecError as err:
            failures += 1
            typer.echo(f"FAIL {file}\n  " + str(err).replace("\n", "\n  "))
        else:
            typer.echo(f"OK   {file} ({spec.key}, {spec.status}, weights sum "
                       f"{sum(spec.weights):.6g}, {len(spec.prefilter.exclusions)} exclusion categories)")
    if not paths:
        try:
            rules = CommerceRules.load(RULES_PATH)
        except SpecError as err:
            failures += 1
            typer.echo(f"FAIL {RULES_PATH}\n  {err}")
        else:
            typer.echo(f"OK   {RULES_PATH} (commerce rules, {len(rules.categories)} categories)")
    typer.echo(f"{len(files) + (0 if paths else 1) - failures} ok, {failures} failed")
    if failures:
        raise typer.Exit(1)


# -- prefilter evaluate ---------------------------------------------------------------------------------------


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


def _cell(value: Any) -> str:
    return "-" if value is None else str(value)


def _commerce_decider(rows: list[dict[str, Any]], use_head: bool, data: Path) -> tuple[Callable, dict[str, Any]]:
    """The commerce gate (rules, plus the trained head when available) and what the report says about it."""
    from filters.commerce import CommerceFilter, CommerceRules

    rules = CommerceRules.default()
    info: dict[str, Any] = {"head": False, "threshold": None}
    head = None
    if use_head:
        try:
            from models.commerce_head import load_default

            head = load_default()
        except ImportError:
            head = None
        if head is None:
            info["head_note"] = "no trained commerce head (filters/commerce/artifacts): rules only"
    gate = CommerceFilter(rules, head=head)
    if head is None:
        return (lambda row, i: gate.decide(row, None)), info

    import torch

    from models.embedding import Encoder

    torch.set_num_threads(min(2, torch.get_num_threads()))
    probabilities = head.probabilities(Encoder.shared().encode(rows, progress=True))
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
    from rich.table import Table
    from tqdm import tqdm

    from filters.prefilter import Prefilter
    from filters.spec import SpecError, resolve_spec

    try:
        rows = load_rows(data)
        expected = [expected_block(r, r["_where"]) for r in rows]
    except ValueError as err:
        _fail(str(err))
    report: dict[str, Any] = {"filter": filter_ref, "data": str(data), "ignore_length": ignore_length}
    if filter_ref == "commerce":
        decide, info = _commerce_decider(rows, not no_head, data)
        report.update(info)
    else:
        try:
            spec = resolve_spec(filter_ref)
            prefilter = Prefilter.for_spec(spec, ignore_length=ignore_length)
        except SpecError as err:
            _fail(str(err))
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
    languages = [str(r.get("language") or "").strip().lower() for r in rows]
    if any(languages):
        report["by_language"] = {
            lang or "unknown": {k: v for k, v in summarise([t for t, g in zip(triples, languages, strict=True)
                                                          if g == lang]).items() if k in BY_GROUP_KEYS}
            for lang in sorted(set(languages))
        }

    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")

    console = _console()
    table = Table("metric", "value", title=f"prefilter evaluate: {report['filter']} on {data.name}")
    for k in ("n", "n_expected_block", "n_expected_pass", "block_rate_on_block", "pass_rate_on_pass",
              "precision_block", "recall_block", "f1_block"):
        table.add_row(k, _cell(report[k]))
    if filter_ref == "commerce":
        table.add_row("head", f"{report['head']} (threshold {report['threshold']})" if report["head"] else "False")
    console.print(table)
    reasons = Table("reason", "should block", "should pass", title="decisions per reason")
    for reason in report["reasons"]:
        reasons.add_row(reason, str(report["reasons_by_expected"]["block"].get(reason, 0)),
                        str(report["reasons_by_expected"]["pass"].get(reason, 0)))
    console.print(reasons)
    if "by_language" in report:
        langs = Table("language", "n", "should block", "recall_block", "pass_rate_on_pass", "f1_block",
                      title="per language")
        for lang, m in report["by_language"].items():
            langs.add_row(lang, str(m["n"]), str(m["n_expected_block"]), _cell(m["recall_block"]),
                          _cell(m["pass_rate_on_pass"]), _cell(m["f1_block"]))
        console.print(langs)
    if report.get("head_note"):
        console.print(f"[yellow]note:[/yellow] {report['head_note']}")
    if out is not None:
        console.print(f"report written to {out}")


def register(app: typer.Typer) -> None:
    """Add this package's commands to the root app."""
    app.add_typer(filters_app, name="filters")
    app.add_typer(prefilter_app, name="prefilter")
