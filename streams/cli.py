"""The `distillery` command: one typer app; each package registers its own commands."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="distillery",
    help="Distil an LLM's judgment of news articles into small local models and serve them on Kafka.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _register() -> None:
    # Each area owns a `register(app)` in its own cli module; import order sets the help order.
    from filters import cli as filters_cli
    from models import cli as models_cli
    from models import workflow_cli
    from models.oracle import cli as oracle_cli
    from monitoring import cli as monitoring_cli
    from streams import commands as stream_commands

    for module in (filters_cli, models_cli, oracle_cli, workflow_cli, stream_commands, monitoring_cli):
        module.register(app)


_register()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
