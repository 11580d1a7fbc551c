"""Reliability suite fixtures: the `reliability` marker (long cases, run by `make reliability`), a broker of the
test's own that can be killed and restarted empty, and the table of measured figures printed at the end."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import FIGURES

from streams.broker import EmbeddedBroker

LONG_ENV = "DISTILLERY_RELIABILITY"  # `make reliability` sets it to 1


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip the long cases unless DISTILLERY_RELIABILITY=1 (the fast ones run in every pytest run)."""
    if os.environ.get(LONG_ENV, "") == "1":
        return
    skip = pytest.mark.skip(reason=f"long reliability case: run `make reliability` (or {LONG_ENV}=1)")
    for item in items:
        if item.get_closest_marker("reliability") is not None:
            item.add_marker(skip)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The figures the cases measured, as one table."""
    if not FIGURES:
        return
    width = max(len(f"{case} / {name}") for case, name, _ in FIGURES)
    terminalreporter.section("reliability figures")
    for case, name, value in FIGURES:
        terminalreporter.write_line(f"{f'{case} / {name}':<{width}}  {value}")


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[EmbeddedBroker]:
    """A Tansu broker for this test only: the test may stop it and start it again (empty) on the same port."""
    broker = EmbeddedBroker(log_path=tmp_path / "broker.log").start()
    try:
        yield broker
    finally:
        broker.stop()
