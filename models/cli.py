"""Commands of this package for the `distillery` CLI (registered by streams.cli): train, train-step, evaluate."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import typer

from models.training.steps import STEPS

FILTER_HELP = "filter spec: a filter.yaml path, a filter directory, `name` or `name/vN`"


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=2)


def _setup() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    import torch

    torch.set_num_threads(min(2, torch.get_num_threads()))


def _run(filter_ref: str, data: Path, out: Path | None, steps: tuple[str, ...], keep_student: bool,
         student_epochs: int | None, student_max_tokens: int | None) -> None:
    from filters.spec import SpecError, resolve_spec
    from models.artifacts import ArtifactError
    from models.training.data import DataError
    from models.training.steps import TrainOptions, TrainRun

    _setup()
    try:
        spec = resolve_spec(filter_ref)
        overrides = {k: v for k, v in (("epochs", student_epochs), ("max_tokens", student_max_tokens))
                     if v is not None}
        options = TrainOptions(train_student=not keep_student, student_overrides=overrides)
        run = TrainRun(spec, data, out, options=options)
        for step in steps:
            typer.echo(f"== {spec.key}: {step}")
            metrics = getattr(run, f"step_{step}")()
            typer.echo(json.dumps(metrics, indent=1, default=str)[:2000])
    except (SpecError, DataError, ArtifactError, FileNotFoundError, ValueError) as err:
        _fail(str(err))
    typer.echo(f"artifacts: {run.out_dir}")


def register(app: typer.Typer) -> None:
    """Add this package's commands to the root app."""

    @app.command("train")
    def train(
        filter_ref: str = typer.Option(..., "--filter", help=FILTER_HELP),
        data: Path = typer.Option(..., "--data", help="labelled JSONL: {id, title, text, scores: {dim: float}}"),
        out: Path | None = typer.Option(None, "--out", help="artifacts dir (default: filters/<name>/v<N>/artifacts)"),
        keep_student: bool = typer.Option(False, "--keep-student",
                                          help="do not train the student; keep artifacts/student/ if present"),
        student_epochs: int | None = typer.Option(None, help="override the student's epochs"),
        student_max_tokens: int | None = typer.Option(None, help="override the student's token window"),
    ) -> None:
        """Full training: split → embed → probe → router → student → calibrate → curve → evaluate (test split)."""
        _run(filter_ref, data, out, STEPS, keep_student, student_epochs, student_max_tokens)

    @app.command("train-step")
    def train_step(
        step: str = typer.Argument(..., help=f"one of: {', '.join(STEPS)}"),
        filter_ref: str = typer.Option(..., "--filter", help=FILTER_HELP),
        data: Path = typer.Option(..., "--data", help="labelled JSONL: {id, title, text, scores: {dim: float}}"),
        out: Path | None = typer.Option(None, "--out", help="artifacts dir (default: filters/<name>/v<N>/artifacts)"),
        keep_student: bool = typer.Option(False, "--keep-student", help="student step: keep the existing student"),
    ) -> None:
        """Run one training step (earlier steps' outputs are read from the work dir and the artifacts dir)."""
        if step not in STEPS:
            _fail(f"unknown step {step!r}; use one of {', '.join(STEPS)}")
        _run(filter_ref, data, out, (step,), keep_student, None, None)

    @app.command("train-commerce")
    def train_commerce(
        data: Path = typer.Option(..., "--data", help="JSONL with {id, title, text, label: 0|1}"),
        out: Path | None = typer.Option(None, "--out", help="default: filters/commerce/artifacts"),
        threshold: float | None = typer.Option(None, "--threshold", min=0.0, max=1.0,
                                               help="override the F1-optimal threshold (e.g. 0.8 for precision)"),
    ) -> None:
        """Train the commerce head on the shared embedding; C and threshold by nested stratified CV."""
        import numpy as np

        from models.commerce_head import DEFAULT_DIR, train_commerce_head
        from models.embedding import Encoder
        from models.training.cache import EmbeddingCache
        from models.training.data import DataError, load_rows, to_article

        _setup()
        try:
            rows = load_rows(data)
            bad = [r.get("id") for r in rows if r.get("label") not in (0, 1)]
            if bad:
                _fail(f"{data}: rows {bad[:5]} have no 0/1 `label`")
        except DataError as err:
            _fail(str(err))
        enc = Encoder.shared()
        x = EmbeddingCache(enc).embed([to_article(r) for r in rows])
        head = train_commerce_head(x, np.array([int(r["label"]) for r in rows]), enc.fingerprint())
        head.metrics["data"] = str(data)
        if threshold is not None:
            head.metrics["threshold_override"] = {"chosen_by_cv": head.threshold, "used": threshold}
            head.threshold = threshold
        head.save(out or DEFAULT_DIR)
        typer.echo(json.dumps(head.metrics, indent=1))

    @app.command("evaluate")
    def evaluate_cmd(
        filter_ref: str = typer.Option(..., "--filter", help=FILTER_HELP),
        data: Path = typer.Option(..., "--data", help="labelled JSONL: {id, title, text, scores: {dim: float}}"),
        out: Path = typer.Option(..., "--out", help="JSON report path"),
        markdown: Path | None = typer.Option(None, "--markdown", help="also write a Markdown summary"),
        plots: Path | None = typer.Option(None, "--plots", help="also write plots into this directory"),
        no_student: bool = typer.Option(False, "--no-student", help="evaluate probe/router only"),
        bootstrap: int = typer.Option(1000, help="bootstrap resamples for the 95 % intervals"),
        system: bool = typer.Option(False, "--system", help="the served path with every gate on (commerce, "
                                    "prefilter, router, Stage 2): tier/needle recall and precision, confusion matrix "
                                    "(PNG beside --out), misses by gate, MAE per language and length"),
        split: str = typer.Option("all", "--split", help="all | train | val | test: evaluate only that part of the "
                                  "training split (the data must be the file the artifacts were trained on)"),
    ) -> None:
        """Evaluate a trained filter on labelled data through the same pipeline objects the stream uses."""
        from filters.spec import SpecError, resolve_spec
        from models.artifacts import ArtifactError
        from models.evaluation.report import evaluate, write_report
        from models.pipeline import Pipeline, PipelineError
        from models.training.data import DataError, load_dataset

        _setup()
        try:
            spec = resolve_spec(filter_ref)
            dataset = load_dataset(data, spec)
            if split != "all":
                from models.training.split import training_part

                dataset = training_part(dataset, spec, split)
            if system:
                from models.evaluation.system import evaluate_system, to_markdown, write_system_report

                pipe = Pipeline.load([str(spec.path)], with_student=not no_student, commerce=True)
                sysrep = evaluate_system(pipe, spec.name, dataset, n_boot=bootstrap)
                write_system_report(sysrep, out, markdown)
                typer.echo(to_markdown(sysrep))
                return
            pipe = Pipeline.load([str(spec.path)], with_student=not no_student, commerce=False)
            pipe.apply_prefilter = False
            report = evaluate(pipe, spec.name, dataset, n_boot=bootstrap)
        except (SpecError, DataError, ArtifactError, PipelineError) as err:
            _fail(str(err))
        write_report(report, out, markdown, plots)
        if plots is not None:
            from models.evaluation.curve import CURVE_PNG

            src = spec.artifacts_dir / CURVE_PNG
            if src.is_file():
                (plots / CURVE_PNG).write_bytes(src.read_bytes())
        from models.evaluation.report import to_markdown

        typer.echo(to_markdown(report))
