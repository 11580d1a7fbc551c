"""`distillery monitor report`: drift detector states per filter, the global rates and the latest alerts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from filters.jsonl import read_objects
from monitoring.reference import json_safe
from monitoring.report import print_report
from monitoring.state import load_state
from streams.settings import Settings

monitor_app = typer.Typer(help="Drift monitoring: detector states and alerts.", no_args_is_help=True)


def _read_records(path: Path) -> list[dict[str, Any]]:
    """Decoded JSON objects, one per line (results, blocked and dead-letter records)."""
    expected = "a JSONL file of result records (e.g. scores output)"
    return [row for _, row in read_objects(path, expected=expected, error=typer.BadParameter)]


@monitor_app.command("report")
def report(
    state: Path = typer.Option(None, help="Monitor state file (default: DISTILLERY_MONITOR_STATE or "
                                          "~/.local/state/distillery/monitor_state.json)."),
    replay: Path = typer.Option(None, help="Instead of a state file, replay a JSONL of result/blocked/DLQ records "
                                           "through a fresh monitor."),
    filter_name: list[str] = typer.Option(None, "--filter", help="Only these filters (repeatable)."),
    as_json: bool = typer.Option(False, "--json", help="Print the raw state as JSON."),
    write_state: Path = typer.Option(None, help="With --replay: also write the resulting state to this file."),
) -> None:
    """Print the current drift detector states per filter, the global rates and the latest alerts."""
    from monitoring.monitor import Monitor  # lazy: river and scipy (detectors)

    if replay is not None:
        records = _read_records(replay)
        names = sorted({str(r["filter"]) for r in records if r.get("filter")})
        monitor = Monitor.from_artifacts(names, config=Settings.from_env().monitor.config(), strict=False)
        monitor.observe_many(records)
        data = monitor.state()
        if write_state is not None:
            monitor.save_state(write_state)
    else:
        data = load_state(state or Settings.from_env().monitor.state_path())  # StateError: one line, exit 2
    if as_json:
        typer.echo(json.dumps(json_safe(data), indent=1, default=str, allow_nan=False))
        return
    print_report(data, filter_name or None)


def register(app: typer.Typer) -> None:
    """Add `monitor` to the root app."""
    app.add_typer(monitor_app, name="monitor")
