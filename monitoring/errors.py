"""The exception root of the monitoring package and its specific errors (the CLI maps them to exit code 2)."""

from __future__ import annotations


class MonitoringError(Exception):
    """Root of every error the monitoring package raises on purpose; the message names the input and the fix."""


class MonitorConfigError(MonitoringError, ValueError):
    """A detector setting that cannot be used (wrong type or value); the message names the setting."""


class MonitorReferenceError(MonitoringError, ValueError):
    """A `reference.json` that cannot be read; the monitor falls back to a warm-up window."""


class StateError(MonitoringError, ValueError):
    """A monitor state file that is missing or unreadable."""


class MetricsPortError(MonitoringError, OSError):
    """The /metrics endpoint cannot listen on the configured host and port."""
