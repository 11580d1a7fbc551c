"""Helpers of the reliability suite: the stream tests' worker/produce/collect helpers, a restartable broker, timing
and RSS probes, and the figures table printed at the end of the run."""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from streams.broker import EmbeddedBroker
from streams.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
CLI_MODULE = "distillery"  # the `distillery` command as a module (python -m distillery)


sys.path.insert(0, str(ROOT / "tests" / "streams"))  # the stream tests' helpers (Worker, produce, collect, ...)
from stream_helpers import Worker, article, collect, committed, decoded, produce  # noqa: E402,F401 - re-exported

FIGURES: list[tuple[str, str, str]] = []  # (case, figure, value), printed as a table at the end of the session


def figure(case: str, name: str, value: object) -> None:
    """Record one measured figure for the end-of-run table."""
    FIGURES.append((case, name, str(value)))


def fresh_settings(bootstrap: str, **overrides: Any) -> Settings:
    """Settings with a topic prefix of their own (tests never see each other's data)."""
    values: dict[str, Any] = dict(bootstrap_servers=bootstrap, topic_prefix=f"r{uuid.uuid4().hex[:8]}.",
                                  partitions=3, batch_size=8, batch_within=0.2, stage2_batch_size=8)
    values.update(overrides)
    return Settings(**values)


def restartable_broker(tmp: Path) -> EmbeddedBroker:
    """A broker of the test's own on a fixed port, so it can be killed and started again empty at the same address."""
    return EmbeddedBroker(log_path=tmp / "broker.log").start()


def wait_exit(process: Any, timeout: float) -> tuple[int | None, float]:
    """(exit code or None, seconds waited) for a subprocess, bounded by `timeout`."""
    started = time.monotonic()
    try:
        code = process.wait(timeout)
    except Exception:
        code = None
    return code, time.monotonic() - started


def wait_for(predicate: Callable[[], bool], timeout: float, step: float = 0.2) -> bool:
    """Poll `predicate` until it holds or `timeout` seconds pass (bounded in count and time)."""
    for _ in range(int(timeout / step) + 1):
        if predicate():
            return True
        time.sleep(step)
    return bool(predicate())


def rss_mb(pid: int) -> float:
    """Resident set size of a process in MB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")
