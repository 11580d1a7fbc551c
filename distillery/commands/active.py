"""`distillery active select|screen`: pick articles worth sending to the oracle."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from distillery.commands._io import read_jsonl, topic_rows
from distillery.commands._runtime import shared_encoder
from distillery.errors import fail
from filters.spec import resolve_spec
from models.active import SelectConfig, parse_split, screen, select, with_articles
from models.data.rows import write_rows
from models.embedding import Encoder

active_app = typer.Typer(help="Pick articles worth sending to the oracle.", no_args_is_help=True)


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
    if (scores is None) == (topic is None):
        fail("pass exactly one of --scores FILE.jsonl or --topic scores.<filter>")
    spec = resolve_spec(filter)  # SpecError, ActiveError, DataFileError: one line, exit 2
    config = SelectConfig(min_wa=min_wa, band=band, edge=edge, disagreement=disagreement, split=parse_split(split),
                          seed=seed)
    results = read_jsonl(scores) if scores is not None else topic_rows(str(topic), max_time)
    done = {str(r.get("id")) for path in exclude for r in read_jsonl(path)}
    chosen = select(spec, results, budget, config, exclude=done)
    rows, missing = with_articles(chosen, read_jsonl(articles))
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
    done = {str(r.get("id")) for path in exclude for r in read_jsonl(path)}
    encoder = Encoder.shared(model) if model else shared_encoder()
    ranked = screen(read_jsonl(seeds), read_jsonl(corpus), top_k, encoder=encoder, progress=progress,
                    exclude=done)
    rows = [{**a, "screen": {"cosine": round(sim, 5), "rank": i + 1}} for i, (a, sim) in enumerate(ranked)]
    write_rows(out, rows)
    if rows:
        typer.echo(f"screened: top {len(rows)} by cosine to the seed centroid "
                   f"({rows[0]['screen']['cosine']:.3f} .. {rows[-1]['screen']['cosine']:.3f}) -> {out}")
    else:
        typer.echo(f"screened: nothing to rank in {corpus}")


def register(app: typer.Typer) -> None:
    """Add `active` to the root app."""
    app.add_typer(active_app, name="active")
