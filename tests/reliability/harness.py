"""Helpers of the reliability suite: the stream tests' worker/produce/collect helpers, a restartable broker, timing
and RSS probes, and the figures table printed at the end of the run."""

from __future__ import annotations

import importlib.util
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from streams.broker import EmbeddedBroker
from streams.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
# the `distillery` command as a module: the distillery/ shell package where it exists, else streams.cli
CLI_MODULE = "distillery" if (ROOT / "distillery" / "__main__.py").is_file() else "streams.cli"


def _stream_helpers() -> Any:
    """tests/streams/stream_helpers.py loaded under its own name: Worker, article, produce, collect, decoded,
    committed (by path: tests/ is not a package)."""
    path = ROOT / "tests" / "streams" / "stream_helpers.py"
    spec = importlib.util.spec_from_file_location("distillery_stream_test_helpers", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


helpers = _stream_helpers()
Worker = helpers.Worker
article = helpers.article
produce = helpers.produce
collect = helpers.collect
decoded = helpers.decoded
committed = helpers.committed

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
