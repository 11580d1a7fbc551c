"""`distillery filters list|show|validate`: inspect and validate the shipped filter specs."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import typer
from rich.table import Table

from distillery.commands._console import console
from distillery.errors import EXIT_CHECK_FAILED, fail
from filters.commerce import RULES_PATH, CommerceRules
from filters.prefilter import Prefilter
from filters.spec import SpecError, load_spec, resolve_spec, spec_paths

filters_app = typer.Typer(help="Inspect and validate the shipped filter specs.", no_args_is_help=True)


@filters_app.command("list")
def list_filters() -> None:
    """Every shipped filter version: status, number of dimensions and whether trained artifacts exist."""
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
    out = console()
    out.print(table)
    if invalid:
        out.print(f"{invalid} spec(s) invalid: run `distillery filters validate` for the reasons")


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


@filters_app.command("show")
def show_filter(name: str = typer.Argument(..., help="filter name, name/vN, or a path to filter.yaml")) -> None:
    """Print one spec readably: dimensions, weights, gatekeepers, tiers, caps, hybrid and prefilter."""
    spec = resolve_spec(name)  # SpecError: one line, exit 2 (distillery.errors)
    out = console()
    trained = (spec.artifacts_dir / "manifest.json").is_file()
    out.print(f"[bold]{spec.key}[/bold]  status={spec.status}  trained={'yes' if trained else 'no'}  ({spec.path})")
    if spec.description:
        out.print(spec.description.strip())
    if spec.missing:
        out.print("[yellow]missing:[/yellow] " + "; ".join(spec.missing))

    dims = Table("dimension", "weight", "description", title="dimensions")
    for d in spec.dimensions:
        dims.add_row(d.name, f"{d.weight:g}", d.description.strip().replace("\n", " ")[:90])
    out.print(dims)

    if spec.gatekeepers:
        gk = Table("dimension", "if below", "WA capped at", title="gatekeepers")
        for g in spec.gatekeepers:
            gk.add_row(g.dimension, f"{g.min:g}", f"{g.cap:g}")
        out.print(gk)

    tiers = Table("tier", "WA ≥", "description", title="tiers")
    for t in spec.tiers:
        tiers.add_row(t.name, f"{t.threshold:g}", t.description.strip()[:90])
    out.print(tiers)

    if spec.content_types:
        caps = Table("content type", "max score", "max dims", "max WA", "penalty", title="content-type caps")
        caps.columns[2].overflow = "fold"
        for ctype, rule in spec.content_types.items():
            dims_caps = ", ".join(f"{k}≤{v:g}" for k, v in rule.max_dimensions.items()) or "-"
            caps.add_row(ctype, _fmt(rule.max_score), dims_caps, _fmt(rule.max_overall), _fmt(rule.penalty))
        out.print(caps)

    h, p, pre = spec.hybrid, spec.preprocessing, spec.prefilter
    out.print(f"hybrid: threshold={h.threshold:g} protected_tier={h.protected_tier} "
              f"(WA ≥ {spec.protected_threshold:g}) max_false_negative_rate={h.max_false_negative_rate:g}")
    out.print(f"preprocessing: head={p.head_tokens} tail={p.tail_tokens} separator={p.separator!r} "
              f"template={p.text_template!r}")
    out.print(
        f"prefilter: min_content_length={pre.min_content_length} scan_chars={pre.scan_chars} "
        f"excluded_source_types={pre.excluded_source_types or '-'} "
        f"domain groups={len(pre.domain_exclusions)} source blocks={sum(map(len, pre.source_exclusions.values()))} "
        f"allowlist={len(pre.source_allowlist)} overrides={len(pre.override_keywords)}"
    )
    for c in pre.exclusions:
        out.print(f"  exclusion {pre.reason_prefix}{c.category}: {len(c.patterns)} patterns "
                  f"(min {c.min_matches}), {len(c.exceptions)} exceptions"
                  + (f", bypass at {c.positive_threshold} of {len(c.positive_patterns)} positives"
                     if c.positive_patterns else "")
                  + (f", unless {len(c.unless_patterns)}" if c.unless_patterns else ""))
    for topic in pre.required_topics:
        out.print(f"  required topic → {topic.reason}: {len(topic.keywords)} keywords")
    out.print(f"oracle: prompt={spec.oracle.prompt} model={spec.oracle.model or '-'}")


def _spec_files(paths: Iterable[Path]) -> list[Path]:
    return [path / "filter.yaml" if path.is_dir() else path for path in paths]


@filters_app.command("validate")
def validate(
    paths: list[Path] | None = typer.Argument(None, help="filter.yaml files or their directories (default: all)"),
) -> None:
    """Load each spec and compile its prefilter; print OK/FAIL per file and exit 1 on any failure."""
    files = _spec_files(paths) if paths else spec_paths()
    if not files:
        fail("no filter specs found; pass paths to filter.yaml files")
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
        raise typer.Exit(EXIT_CHECK_FAILED)


def register(app: typer.Typer) -> None:
    """Add `filters` to the root app."""
    app.add_typer(filters_app, name="filters")
