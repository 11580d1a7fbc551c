"""The `distillery` command: one typer app on top of every layer; each command group is a module of its own.

Exit codes (distillery.errors): 0 ok, 1 a check failed, 2 a usage or input mistake, 70 an internal or broker failure.
"""

from __future__ import annotations

import typer

from distillery.commands import (
    active,
    broker,
    data,
    demo,
    evaluate,
    filters,
    monitor,
    oracle,
    prefilter,
    produce,
    score,
    tail,
    train,
    worker,
)
from distillery.errors import ShellGroup
from distillery.progress import plain_progress_when_not_a_terminal

app = typer.Typer(
    name="distillery",
    help="Distil an LLM's judgment of news articles into small local models and serve them on Kafka.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    cls=ShellGroup,
)

# The order sets the order in `--help`: specs, training and evaluation, labels, then the stream.
for module in (filters, prefilter, train, evaluate, oracle, data, active, score, broker, worker, produce, tail,
               demo, monitor):
    module.register(app)


def main() -> None:
    """Entry point of the `distillery` console script and of `python -m distillery`."""
    plain_progress_when_not_a_terminal()  # progress bars become plain log lines in files and pipes
    app()


if __name__ == "__main__":
    main()
