"""`distillery train`, `train-step` and `train-commerce`: write a filter's (or the commerce head's) artifacts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import typer

from distillery.commands._runtime import model_runtime, shared_encoder
from distillery.errors import fail
from filters.commerce import CommerceRules
from filters.spec import resolve_spec
from models.training.cache import EmbeddingCache
from models.training.data import load_rows, to_article
from models.training.step_names import STEPS

FILTER_HELP = "filter spec: a filter.yaml path, a filter directory, `name` or `name/vN`"
DATA_HELP = "labelled JSONL: {id, title, text, scores: {dim: float}}"
OUT_HELP = "artifacts dir (default: filters/<name>/v<N>/artifacts)"


def _run(filter_ref: str, data: Path, out: Path | None, steps: tuple[str, ...], keep_student: bool,
         student_epochs: int | None, student_max_tokens: int | None) -> None:
    """Run `steps` of the training for one filter; each step prints its metrics (errors: one line, exit 2)."""
    spec = resolve_spec(filter_ref)
    model_runtime()
    from models.training.steps import TrainOptions, TrainRun  # lazy: torch, scikit-learn

    overrides = {k: v for k, v in (("epochs", student_epochs), ("max_tokens", student_max_tokens)) if v is not None}
    options = TrainOptions(train_student=not keep_student, student_overrides=overrides)
    try:
        run = TrainRun(spec, data, out, encoder=shared_encoder(), options=options)
        for step in steps:
            typer.echo(f"== {spec.key}: {step}")
            metrics = getattr(run, f"step_{step}")()
            typer.echo(json.dumps(metrics, indent=1, default=str)[:2000])
    except ValueError as err:  # a bad value in the data (DataError and SpecError are ValueErrors too)
        fail(str(err))
    typer.echo(f"artifacts: {run.out_dir}")


def train(
    filter_ref: str = typer.Option(..., "--filter", help=FILTER_HELP),
    data: Path = typer.Option(..., "--data", help=DATA_HELP),
    out: Path | None = typer.Option(None, "--out", help=OUT_HELP),
    keep_student: bool = typer.Option(False, "--keep-student",
                                      help="do not train the student; keep artifacts/student/ if present"),
    student_epochs: int | None = typer.Option(None, help="override the student's epochs"),
    student_max_tokens: int | None = typer.Option(None, help="override the student's token window"),
) -> None:
    """Full training: split → embed → probe → router → student → calibrate → curve → evaluate (test split)."""
    _run(filter_ref, data, out, STEPS, keep_student, student_epochs, student_max_tokens)


def train_step(
    step: str = typer.Argument(..., help=f"one of: {', '.join(STEPS)}"),
    filter_ref: str = typer.Option(..., "--filter", help=FILTER_HELP),
    data: Path = typer.Option(..., "--data", help=DATA_HELP),
    out: Path | None = typer.Option(None, "--out", help=OUT_HELP),
    keep_student: bool = typer.Option(False, "--keep-student", help="student step: keep the existing student"),
) -> None:
    """Run one training step (earlier steps' outputs are read from the work dir and the artifacts dir)."""
    if step not in STEPS:
        fail(f"unknown step {step!r}; use one of {', '.join(STEPS)}")
    _run(filter_ref, data, out, (step,), keep_student, None, None)


def train_commerce(
    data: Path = typer.Option(..., "--data", help="JSONL with {id, title, text, label: 0|1}"),
    out: Path | None = typer.Option(None, "--out", help="default: filters/commerce/artifacts"),
    threshold: float | None = typer.Option(None, "--threshold", min=0.0, max=1.0,
                                           help="override the F1-optimal threshold (e.g. 0.8 for precision)"),
    c: float | None = typer.Option(None, "--c", min=1e-6,
                                   help="fix the L2 strength C instead of choosing it by CV (the shipped head: "
                                        "--threshold 0.9 --c 0.01)"),
    on_topic_data: Path | None = typer.Option(
        None, "--on-topic", help="a filter's labelled JSONL: its train-split articles in the protected tier join "
                                 "training as non-commerce; its val/test ones are checked"),
    on_topic_filter: str | None = typer.Option(None, "--on-topic-filter",
                                               help="the filter of --on-topic: " + FILTER_HELP),
    on_topic_margin: float = typer.Option(0.0, "--on-topic-margin", min=0.0, max=10.0,
                                          help="hard negatives from WA ≥ protected − margin (0: the protected tier)"),
) -> None:
    """Train the commerce head on the shared embedding; C and threshold by nested stratified CV of the gate."""
    if (on_topic_data is None) != (on_topic_filter is None):
        fail("--on-topic and --on-topic-filter go together: pass a filter's labelled JSONL and its filter")
    rows = load_rows(data)  # DataError: one line, exit 2
    bad = [r.get("id") for r in rows if r.get("label") not in (0, 1)]
    if bad:
        fail(f"{data}: rows {bad[:5]} have no 0/1 `label`")
    model_runtime()
    from models.commerce_head import DEFAULT_DIR  # lazy: safetensors, only when a head is written

    # lazy: scikit-learn
    from models.training.commerce import CS, on_topic, on_topic_check, select, train_commerce_head

    enc = shared_encoder()
    cache = EmbeddingCache(enc)
    rules = CommerceRules.default()
    articles = [to_article(r) for r in rows]
    x = cache.embed(articles)
    hit = np.array([not rules.check(a).passed for a in articles])
    topic = None
    if on_topic_data is not None and on_topic_filter is not None:
        try:
            topic = on_topic(on_topic_data, resolve_spec(on_topic_filter), margin=on_topic_margin)
        except ValueError as err:
            fail(str(err))
    negatives = cache.embed(topic.train) if topic else None
    labels = np.array([int(r["label"]) for r in rows])
    cs = CS if c is None else (c,)
    # with --threshold the nested CV scores the gate at that threshold, as it will be served
    head = train_commerce_head(x, labels, enc.fingerprint(), rule_hit=hit, hard_negatives=negatives, cs=cs,
                               threshold=threshold)
    if threshold is not None:  # what the CV alone would have chosen, for the record
        chosen = select(x, labels, cs, rule_hit=hit, extra=negatives)[2]
        head.metrics["threshold_override"] = {"chosen_by_cv": chosen, "used": threshold}
    head.metrics["data"] = str(data)
    if topic is not None:
        held_hit = np.array([not rules.check(a).passed for a in topic.heldout], dtype=bool)
        head.metrics["on_topic_heldout"] = on_topic_check(head, cache.embed(topic.heldout), held_hit, topic)
    head.save(out or DEFAULT_DIR)
    typer.echo(json.dumps(head.metrics, indent=1))


def register(app: typer.Typer) -> None:
    """Add `train`, `train-step` and `train-commerce` to the root app."""
    app.command("train")(train)
    app.command("train-step")(train_step)
    app.command("train-commerce")(train_commerce)
