"""`distillery data prepare|merge`: deduplicate, validate and split oracle label sets for training."""

from __future__ import annotations

from pathlib import Path

import typer

from distillery.errors import fail
from filters.spec import resolve_spec
from models.data.merge import merge
from models.data.report import render

data_app = typer.Typer(help="Prepare oracle label sets for training.", no_args_is_help=True)


@data_app.command("prepare")
def data_prepare(
    filter: str = typer.Option(..., "--filter", help="filter.yaml path or filter name"),
    input: Path = typer.Option(..., "--input", help="JSONL of oracle labels"),
    out: Path = typer.Option(..., "--out", help="directory for train/val/test.jsonl, dropped.jsonl, report.json"),
    seed: int = typer.Option(42, "--seed"),
    degenerate: str = typer.Option("nonzero", "--degenerate",
                                   help="drop rows with every dimension equal: nonzero (keep all-zero) | all | none"),
) -> None:
    """Deduplicate, validate, report and split a label file 80/10/10 (stratified on WA)."""
    from models.data.prepare import PrepareConfig, prepare  # lazy: scikit-learn (stratified split)

    if degenerate not in ("nonzero", "all", "none"):
        fail(f"--degenerate {degenerate!r}: use nonzero, all or none")
    spec = resolve_spec(filter)  # SpecError, PrepareError, DataFileError: one line, exit 2
    report = prepare(spec, input, out, PrepareConfig(seed=seed, degenerate=degenerate))  # type: ignore[arg-type]
    typer.echo(render(report))


@data_app.command("merge")
def data_merge(
    inputs: list[Path] = typer.Argument(..., help="label files, oldest first (ties go to the later file)"),
    output: Path = typer.Option(..., "--output"),
    filter: str | None = typer.Option(None, "--filter", help="keep only rows of this filter name"),
) -> None:
    """Combine label sets; for each article id the newest label (analyzed_at) wins."""
    try:
        stats = merge(inputs, output, filter)
    except ValueError as err:  # DataFileError and a bad row alike: the message names the file
        fail(str(err))
    typer.echo(f"merged {sum(stats['inputs'].values())} rows from {len(inputs)} files -> {stats['rows_out']} rows "
               f"({stats['superseded']} older labels superseded) in {output}")


def register(app: typer.Typer) -> None:
    """Add `data` to the root app."""
    app.add_typer(data_app, name="data")
