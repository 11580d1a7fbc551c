"""`distillery oracle label`: label a JSONL file of articles with an LLM oracle (the teacher)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import typer

from distillery.errors import fail
from filters.prefilter import Prefilter
from filters.spec import resolve_spec
from models.oracle.cache import OracleCache
from models.oracle.client import OracleClient
from models.oracle.labeling import LabelingRun, format_summary, read_jsonl
from models.oracle.pricing import price_for
from models.oracle.prompting import Prompt
from models.oracle.providers import PROVIDERS, make_provider

oracle_app = typer.Typer(help="Label articles with an LLM oracle (the teacher).", no_args_is_help=True)


@oracle_app.command("label")
def label(
    filter: str = typer.Option(..., "--filter", help="filter.yaml path, or a filter name like sustainability/v1"),
    input: Path = typer.Option(..., "--input", help="JSONL of articles {id, title, text|content, ...}"),
    output: Path = typer.Option(..., "--output", help="JSONL of labels; re-running skips ids already in it"),
    provider: str = typer.Option(..., "--provider", help=f"one of {', '.join(PROVIDERS)}"),
    model: str = typer.Option(..., "--model", help="model id, e.g. gemini-2.5-flash or deepseek-chat"),
    concurrency: int = typer.Option(8, "--concurrency", min=1, help="requests in flight"),
    limit: int | None = typer.Option(None, "--limit", min=0, help="label at most N new articles this run"),
    base_url: str | None = typer.Option(None, "--base-url", help="override the provider's base URL"),
    cache: Path | None = typer.Option(None, "--cache", help="reply cache file (default: next to --output)"),
    no_cache: bool = typer.Option(False, "--no-cache", help="neither read nor write the reply cache"),
    max_retries: int = typer.Option(4, "--max-retries", min=0),
    rpm: float | None = typer.Option(None, "--rpm", min=0.1, help="at most this many requests per minute"),
    backoff: float = typer.Option(1.0, "--backoff", min=0.0, help="first backoff in seconds (doubles, with jitter)"),
    timeout: float = typer.Option(120.0, "--timeout", min=1.0, help="seconds per HTTP request"),
    max_words: int = typer.Option(800, "--max-words", min=0, help="compress longer texts to 70 % head + 30 % tail"),
    price_in: float | None = typer.Option(None, "--price-in", help="USD per 1M input tokens (overrides the table)"),
    price_out: float | None = typer.Option(None, "--price-out", help="USD per 1M output tokens"),
    use_prefilter: bool = typer.Option(True, "--prefilter/--no-prefilter",
                                       help="skip articles the filter's prefilter blocks (they are never scored)"),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
) -> None:
    """Label articles with the filter's prompt; writes labels, <stem>.metrics.jsonl, .errors.jsonl, .summary.json."""
    spec = resolve_spec(filter)  # SpecError, ProviderError, LabelingError: one line, exit 2
    prompt = Prompt.for_spec(spec)
    prov = make_provider(provider, base_url)
    articles = read_jsonl(input)
    if (price_in is None) != (price_out is None):
        fail("pass both --price-in and --price-out, or neither")
    override = (price_in, price_out) if price_in is not None and price_out is not None else None
    price = price_for(provider, model, override)
    reply_cache = None if no_cache else OracleCache(cache or output.parent / "oracle_cache.sqlite")

    async def go() -> dict[str, Any]:
        client = OracleClient(prov, model, concurrency=concurrency, max_retries=max_retries, backoff_base=backoff,
                              timeout=timeout, requests_per_minute=rpm)
        try:
            run = LabelingRun(spec, client, provider=provider, prompt=prompt, cache=reply_cache, price=price,
                              max_words=max_words or None, workers=concurrency,
                              prefilter=Prefilter.for_spec(spec) if use_prefilter else None)
            return await run.run(articles, output, limit=limit, progress=progress, source=str(input))
        finally:
            await client.aclose()

    try:
        summary = asyncio.run(go())
    finally:
        if reply_cache is not None:
            reply_cache.close()
    typer.echo(format_summary(summary))


def register(app: typer.Typer) -> None:
    """Add the `oracle` group to the root app."""
    app.add_typer(oracle_app, name="oracle")
