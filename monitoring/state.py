"""Persistence of the monitor state: where the file lives, writing it atomically, reading it back with clear errors."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from monitoring.errors import StateError
from monitoring.reference import write_json_atomic

STATE_SCHEMA_VERSION = 1
STATE_FILE = Path("distillery") / "monitor_state.json"


def default_state_path(explicit: str | Path | None = None, state_home: str | Path | None = None) -> Path:
    """`explicit` when given, else `<state_home>/distillery/monitor_state.json` (state_home: ~/.local/state).

    The worker's settings pass DISTILLERY_MONITOR_STATE as `explicit` and XDG_STATE_HOME as `state_home`.
    """
    if explicit:
        return Path(explicit).expanduser()
    base = Path(state_home).expanduser() if state_home else Path.home() / ".local" / "state"
    return base / STATE_FILE


def save_state(path: str | Path, state: Mapping[str, Any]) -> Path:
    """Write a state snapshot atomically (NaN/inf become null), creating the folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, state)
    return path


def load_state(path: str | Path) -> dict[str, Any]:
    """A state file written by `save_state`; StateError names the file and how to produce one."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StateError(
            f"no monitor state at {path}: run a worker with the monitor role (`distillery worker --roles monitor`), "
            "point DISTILLERY_MONITOR_STATE / --state at its file, or use --replay FILE.jsonl"
        ) from None
    except json.JSONDecodeError as err:
        raise StateError(f"{path} is not a monitor state file ({err}); it is rewritten every few seconds") from None
    if not isinstance(data, dict) or "filters" not in data:
        raise StateError(f"{path} is not a monitor state file (no `filters` key)")
    return data
