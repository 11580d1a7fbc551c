"""The monitor's environment variables, read in the streams layer (monitoring itself reads no environment).

To fold into the one settings tree (streams/settings.py): `DISTILLERY_MONITOR_<FIELD>` for every MonitorConfig
field, `DISTILLERY_MONITOR_STATE` and `XDG_STATE_HOME` for the state file, `DISTILLERY_SPOTCHECK_{PROVIDER,MODEL,
K,PERIOD,MARGIN}` for the oracle spot-check. Each function takes `environ` (default: os.environ) for tests.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import fields
from pathlib import Path

from monitoring.config import MonitorConfig
from monitoring.errors import MonitorConfigError
from monitoring.metrics import Metrics
from monitoring.spotcheck import SpotCheckRunner
from monitoring.state import default_state_path

MONITOR_ENV_PREFIX = "DISTILLERY_MONITOR_"
STATE_ENV = "DISTILLERY_MONITOR_STATE"
STATE_HOME_ENV = "XDG_STATE_HOME"
SPOTCHECK_ENV_PREFIX = "DISTILLERY_SPOTCHECK_"


def monitor_config_from_env(environ: Mapping[str, str] | None = None) -> MonitorConfig:
    """MonitorConfig defaults overridden by `DISTILLERY_MONITOR_<FIELD>` (e.g. DISTILLERY_MONITOR_WARMUP=300)."""
    env = os.environ if environ is None else environ
    labels = {f.name: MONITOR_ENV_PREFIX + f.name.upper() for f in fields(MonitorConfig)}
    values = {name: env[var] for name, var in labels.items() if env.get(var, "") != ""}
    return MonitorConfig.from_mapping(values, labels=labels)


def monitor_state_path_from_env(environ: Mapping[str, str] | None = None) -> Path:
    """`DISTILLERY_MONITOR_STATE`, else `$XDG_STATE_HOME/distillery/monitor_state.json` (~/.local/state)."""
    env = os.environ if environ is None else environ
    return default_state_path(env.get(STATE_ENV) or None, env.get(STATE_HOME_ENV) or None)


def spotcheck_from_env(filters: Sequence[str], heldout_mae: Mapping[str, float], metrics: Metrics | None = None,
                       environ: Mapping[str, str] | None = None) -> SpotCheckRunner | None:
    """A spot-check runner from DISTILLERY_SPOTCHECK_{PROVIDER,MODEL,K,PERIOD,MARGIN}; None when no provider is set."""
    env = os.environ if environ is None else environ
    provider = env.get(SPOTCHECK_ENV_PREFIX + "PROVIDER", "")
    if not provider:
        return None
    model = env.get(SPOTCHECK_ENV_PREFIX + "MODEL", "")
    if not model:
        raise MonitorConfigError(f"{SPOTCHECK_ENV_PREFIX}PROVIDER={provider} needs {SPOTCHECK_ENV_PREFIX}MODEL "
                                 "(the oracle's model id)")
    numbers: dict[str, float] = {}
    for key, default in (("K", 20.0), ("PERIOD", 3_600.0), ("MARGIN", 0.3)):
        raw = env.get(SPOTCHECK_ENV_PREFIX + key, "")
        try:
            numbers[key] = float(raw) if raw else default
        except ValueError:
            raise MonitorConfigError(f"{SPOTCHECK_ENV_PREFIX}{key}={raw!r} is not a number") from None
    return SpotCheckRunner.build(filters, heldout_mae, provider=provider, model=model, k=int(numbers["K"]),
                                 period_s=numbers["PERIOD"], margin=numbers["MARGIN"], metrics=metrics)
