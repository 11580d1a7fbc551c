"""Commands around the models: `data prepare|merge`, `active select|screen` and batch `score`."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import typer

from filters.spec import SpecError, resolve_spec

data_app = typer.Typer(help="Prepare oracle label sets for training.", no_args_is_help=True)
active_app = typer.Typer(help="Pick articles worth sending to the oracle.", no_args_is_help=True)


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(2)


def _spec(ref: str):
    try:
        return resolve_spec(ref)
    except SpecError as err:
        raise _fail(str(err)) from None


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    from models.data.rows import DataFileError, read_rows

    try:
        return [row for _, row in read_rows(path)]
    except DataFileError as err:
        raise _fail(str(err)) from None


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
    from models.data.prepare import PrepareConfig, PrepareError, prepare
    from models.data.report import render
    from models.data.rows import DataFileError

    if degenerate not in ("nonzero", "all", "none"):
        raise _fail(f"--degenerate {degenerate!r}: use nonzero, all or none")
    spec = _spec(filter)
    try:
        report = prepare(spec, input, out, PrepareConfig(seed=seed, degenerate=degenerate))  # type: ignore[arg-type]
    except (PrepareError, DataFileError) as err:
        raise _fail(str(err)) from None
    typer.echo(render(report))


@data_app.command("merge")
def data_merge(
    inputs: list[Path] = typer.Argument(..., help="label files, oldest first (ties go to the later file)"),
    output: Path = typer.Option(..., "--output"),
    filter: str | None = typer.Option(None, "--filter", help="keep only rows of this filter name"),
) -> None:
    """Combine label sets; for each article id the newest label (analyzed_at) wins."""
    from models.data.merge import merge
    from models.data.rows import DataFileError

    try:
        stats = merge(inputs, output, filter)
    except (DataFileError, ValueError) as err:
        raise _fail(str(err)) from None
    typer.echo(f"merged {sum(stats['inputs'].values())} rows from {len(inputs)} files -> {stats['rows_out']} rows "
               f"({stats['superseded']} older labels superseded) in {output}")


def _topic_rows(topic: str, max_time: float) -> list[dict[str, Any]]:
    from streams.clients import read_topics
    from streams.records import WireError, decode
    from streams.settings import Settings
    from streams.topics import Topics

    settings = Settings.from_env()
    name = Topics(settings.topic_prefix).resolve(topic)
    messages = asyncio.run(read_topics(settings, [name], idle_timeout=3.0, max_time=max_time))
    rows = []
    for m in messages:
        try:
            rows.append(decode(m.value))
        except WireError:
            continue
    return rows


@active_app.command("select")
def active_select(
    filter: str = typer.Option(..., "--filter", help="filter.yaml path or filter name"),
    scores: Path | None = typer.Option(None, "--scores", help="JSONL of results (from `distillery score`)"),
    topic: str | None = typer.Option(None, "--topic", help="read results from a topic, e.g. scores.sustainability"),
    articles: Path = typer.Option(..., "--articles", help="JSONL with the articles' text (joined by id)"),
    budget: int = typer.Option(..., "--budget", min=1, help="how many articles to pick"),
    out: Path = typer.Option(..., "--out", help="JSONL of articles, ready for `oracle label --input`"),
    min_wa: float = typer.Option(5.5, "--min-wa", help="'high' bucket: predicted WA at least this"),
    band: float = typer.Option(1.0, "--band", help="'uncertain' bucket: probe WA within ± band of the edge"),
    edge: float | None = typer.Option(None, "--edge", help="uncertain-band centre (default: protected tier edge)"),
    disagreement: float = typer.Option(1.5, "--disagreement", help="'disagreement': |student − probe| WA at least"),
    split: str = typer.Option("high=0.4,uncertain=0.25,disagreement=0.2,needle=0.15", "--split"),
    exclude: list[Path] = typer.Option([], "--exclude", help="label files whose ids are already labelled"),
    seed: int = typer.Option(42, "--seed"),
    max_time: float = typer.Option(60.0, "--max-time", help="seconds to read --topic at most"),
) -> None:
    """Pick articles for the oracle: high predicted WA, uncertain band, probe↔student disagreement, needle hunt."""
    from models.active import ActiveError, SelectConfig, parse_split, select, with_articles
    from models.data.rows import write_rows

    if (scores is None) == (topic is None):
        raise _fail("pass exactly one of --scores FILE.jsonl or --topic scores.<filter>")
    spec = _spec(filter)
    try:
        config = SelectConfig(min_wa=min_wa, band=band, edge=edge, disagreement=disagreement,
                              split=parse_split(split), seed=seed)
        results = _read_jsonl(scores) if scores is not None else _topic_rows(str(topic), max_time)
        done = {str(r.get("id")) for path in exclude for r in _read_jsonl(path)}
        chosen = select(spec, results, budget, config, exclude=done)
    except ActiveError as err:
        raise _fail(str(err)) from None
    rows, missing = with_articles(chosen, _read_jsonl(articles))
    write_rows(out, rows)
    by_bucket: dict[str, int] = {}
    for r in rows:
        by_bucket[r["active"]["bucket"]] = by_bucket.get(r["active"]["bucket"], 0) + 1
    typer.echo(f"selected {len(rows)} of {len(results)} results for {spec.key}: {json.dumps(by_bucket)} -> {out}")
    if missing:
        typer.echo(f"warning: {missing} selected ids are not in {articles}; pass the corpus they were scored from",
                   err=True)


@active_app.command("screen")
def active_screen(
    seeds: Path = typer.Option(..., "--seeds", help="JSONL of a few known positive articles"),
    corpus: Path = typer.Option(..., "--corpus", help="JSONL of articles to rank"),
    top_k: int = typer.Option(500, "--top-k", min=1),
    out: Path = typer.Option(..., "--out", help="JSONL of the top articles, ready for `oracle label --input`"),
    exclude: list[Path] = typer.Option([], "--exclude", help="label files whose ids are already labelled"),
    model: str | None = typer.Option(None, "--model", help="embedding model (default: the shared encoder)"),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
) -> None:
    """Rank a corpus by cosine similarity to the centroid of seed positives (embedding screening)."""
    from models.active import ActiveError, screen
    from models.data.rows import write_rows
    from models.embedding import Encoder

    done = {str(r.get("id")) for path in exclude for r in _read_jsonl(path)}
    try:
        ranked = screen(_read_jsonl(seeds), _read_jsonl(corpus), top_k, encoder=Encoder.shared(model),
                        progress=progress, exclude=done)
    except ActiveError as err:
        raise _fail(str(err)) from None
    rows = [{**a, "screen": {"cosine": round(sim, 5), "rank": i + 1}} for i, (a, sim) in enumerate(ranked)]
    write_rows(out, rows)
    if rows:
        typer.echo(f"screened: top {len(rows)} by cosine to the seed centroid "
                   f"({rows[0]['screen']['cosine']:.3f} .. {rows[-1]['screen']['cosine']:.3f}) -> {out}")
    else:
        typer.echo(f"screened: nothing to rank in {corpus}")


def load_pipeline(filters: list[str] | None, device: str | None = None) -> Any:
    """The stream's pipeline (a seam for tests)."""
    from models.pipeline import Pipeline

    return Pipeline.load(filters, device=device)


def score(
    filters: str | None = typer.Option(None, "--filters", help="comma-separated filters (default: all trained)"),
    input: Path = typer.Option(..., "--input", help=".jsonl (or .parquet with pyarrow) of articles"),
    output: Path | None = typer.Option(None, "--output", help="JSONL of results; re-running skips done ids"),
    batch_size: int = typer.Option(32, "--batch-size", min=1),
    limit: int | None = typer.Option(None, "--limit", min=0, help="score at most N new articles"),
    device: str | None = typer.Option(None, "--device", help="torch device for Stage 2"),
    to_kafka: bool = typer.Option(False, "--to-kafka", help="publish the input to <prefix>articles.raw instead"),
    rate: float = typer.Option(0.0, "--rate", help="with --to-kafka: messages per second (0 = no limit)"),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
) -> None:
    """Score a file with the exact pipeline the stream uses, or publish it to Kafka for a worker fleet."""
    from models.batch import BatchError, format_summary, publish_file, score_file

    if to_kafka:
        from streams.settings import SettingsError

        try:
            n = asyncio.run(publish_file(input, rate=rate))
        except (BatchError, SettingsError) as err:
            raise _fail(str(err)) from None
        typer.echo(f"published {n} articles to articles.raw (prefix from DISTILLERY_TOPIC_PREFIX)")
        return
    if output is None:
        raise _fail("pass --output FILE.jsonl (or --to-kafka)")
    names = [f.strip() for f in filters.split(",") if f.strip()] if filters else None
    try:
        pipeline = load_pipeline(names, device=device)
    except Exception as err:  # PipelineError, ArtifactError, SpecError: all carry the fix in their message
        raise _fail(str(err)) from None
    try:
        summary = score_file(pipeline, input, output, batch_size=batch_size, limit=limit, progress=progress)
    except BatchError as err:
        raise _fail(str(err)) from None
    typer.echo(format_summary(summary))


def register(app: typer.Typer) -> None:
    """Add `data`, `active` and `score` to the root app."""
    app.add_typer(data_app, name="data")
    app.add_typer(active_app, name="active")
    app.command("score")(score)
