"""`distillery evaluate`: a trained filter on labelled data, through the pipeline objects the stream serves."""

from __future__ import annotations

from pathlib import Path

import typer

from distillery.commands._runtime import model_runtime
from distillery.commands.train import DATA_HELP, FILTER_HELP
from filters.spec import resolve_spec
from models.evaluation.curve import CURVE_PNG
from models.training.data import load_dataset


def evaluate(
    filter_ref: str = typer.Option(..., "--filter", help=FILTER_HELP),
    data: Path = typer.Option(..., "--data", help=DATA_HELP),
    out: Path = typer.Option(..., "--out", help="JSON report path"),
    markdown: Path | None = typer.Option(None, "--markdown", help="also write a Markdown summary"),
    plots: Path | None = typer.Option(None, "--plots", help="also write plots into this directory"),
    no_student: bool = typer.Option(False, "--no-student", help="evaluate probe/router only"),
    bootstrap: int = typer.Option(1000, help="bootstrap resamples for the 95 % intervals"),
    system: bool = typer.Option(False, "--system", help="the served path with every gate on (commerce, "
                                "prefilter, router, Stage 2, tier model): tier/needle recall and precision, confusion "
                                "matrix (PNG beside --out), misses by gate, MAE per language and length"),
    split: str = typer.Option("all", "--split", help="all | train | val | test: evaluate only that part of the "
                              "training split (the data must be the file the artifacts were trained on)"),
) -> None:
    """Evaluate a trained filter on labelled data through the same pipeline objects the stream uses."""
    spec = resolve_spec(filter_ref)  # errors (SpecError, DataError, ArtifactError, PipelineError): one line, exit 2
    dataset = load_dataset(data, spec)
    if split != "all":
        from models.training.split import training_part  # lazy: scikit-learn, which `--help` should not load

        dataset = training_part(dataset, spec, split)
    model_runtime()
    from models.evaluation.report import evaluate as run_evaluation  # lazy: torch (through models.pipeline)
    from models.evaluation.report import to_markdown, write_report  # lazy: same module as the line above
    from models.pipeline import Pipeline  # lazy: torch

    if system:
        from models.evaluation.system import evaluate_system, write_system_report  # lazy: torch
        from models.evaluation.system import to_markdown as system_markdown  # lazy: same module

        typer.echo(f"evaluate {spec.key}: the served path with every gate on over {len(dataset.articles)} articles",
                   err=True)
        served = Pipeline.load([str(spec.path)], with_student=not no_student, stage1_only=no_student, commerce=True)
        sysrep = evaluate_system(served, spec.name, dataset, n_boot=bootstrap)
        write_system_report(sysrep, out, markdown)
        typer.echo(system_markdown(sysrep))
        return
    typer.echo(f"evaluate {spec.key}: loading the pipeline ({'probe and router' if no_student else 'with student'})",
               err=True)
    pipe = Pipeline.load([str(spec.path)], with_student=not no_student, stage1_only=no_student, commerce=False)
    pipe.apply_prefilter = False
    typer.echo(f"evaluate {spec.key}: scoring {len(dataset.articles)} articles (embedding, probe, router"
               f"{'' if no_student else ', student'}), then {bootstrap} bootstrap resamples", err=True)
    report = run_evaluation(pipe, spec.name, dataset, n_boot=bootstrap)
    write_report(report, out, markdown, plots)
    if plots is not None:
        src = spec.artifacts_dir / CURVE_PNG
        if src.is_file():
            (plots / CURVE_PNG).write_bytes(src.read_bytes())
    typer.echo(to_markdown(report))


def register(app: typer.Typer) -> None:
    """Add `evaluate` to the root app."""
    app.command("evaluate")(evaluate)
