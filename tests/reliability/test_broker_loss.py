"""Broker loss, an empty broker coming back, and SIGTERM timing, with a worker subprocess on a broker of its own."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
from harness import Worker, article, figure, fresh_settings, produce, wait_exit

from streams.broker import EmbeddedBroker

pytestmark = [pytest.mark.broker, pytest.mark.timeout(180)]
TIMEOUT = 6.0  # DISTILLERY_BROKER_UNREACHABLE_TIMEOUT of these workers
SHUTDOWN = 3.0  # DISTILLERY_SHUTDOWN_TIMEOUT
ENV = {"DISTILLERY_BROKER_UNREACHABLE_TIMEOUT": str(TIMEOUT), "DISTILLERY_SHUTDOWN_TIMEOUT": str(SHUTDOWN)}


def _worker(broker: EmbeddedBroker, tmp_path: Path, **env: str) -> Worker:
    settings = fresh_settings(broker.bootstrap)
    worker = Worker(settings, tmp_path / "worker.log", extra_env={**ENV, **env})
    worker.settings = settings  # type: ignore[attr-defined]
    worker.wait_ready()
    return worker


def _lines_after(log: str, marker: str) -> list[str]:
    return [line for line in log[log.index(marker):].splitlines() if line.strip()] if marker in log else []


def test_a_busy_worker_exits_70_with_one_fatal_line_soon_after_the_broker_dies(own_broker, tmp_path) -> None:
    worker = _worker(own_broker, tmp_path, FAKE_PIPELINE_DELAY="0.2")
    try:
        produce(worker.settings, [article(f"b{i}", f"Busy item {i}") for i in range(200)])
        time.sleep(1.0)
        own_broker.process.kill()  # a crash, not a clean stop
        code, waited = wait_exit(worker.process, TIMEOUT + 30)
        log = worker.log()
    finally:
        worker.stop()
    figure("broker loss (busy)", "exit code / seconds to exit", f"{code} / {waited:.1f} s (timeout {TIMEOUT:.0f} s)")
    assert code == 70, log[-3000:]
    assert waited <= TIMEOUT + 12
    assert log.count("fatal: Kafka at") == 1 and "unreachable for" in log
    outage = _lines_after(log, "is unreachable")
    figure("broker loss (busy)", "log lines during the outage", len(outage))
    assert len(outage) <= 40, "\n".join(outage[-40:])
    assert "Traceback" not in log


def test_an_empty_broker_back_on_the_same_port_makes_an_idle_worker_exit_70_naming_the_missing_topics(
        own_broker, tmp_path) -> None:
    worker = _worker(own_broker, tmp_path)
    try:
        started = time.monotonic()
        own_broker.process.kill()
        own_broker.process.wait(5)
        own_broker.stop()
        own_broker.start()  # same port, memory storage: no topics, no groups
        code, _ = wait_exit(worker.process, TIMEOUT + 30)
        waited = time.monotonic() - started
        log = worker.log()
    finally:
        worker.stop()
    figure("empty broker back", "exit code / seconds to exit", f"{code} / {waited:.1f} s")
    assert code == 70, log[-3000:]
    assert "has no topic" in log and "restarted empty" in log
    assert "UnknownTopicOrPartitionError" not in log[log.index("has no topic"):]


def test_sigterm_stops_a_worker_within_the_shutdown_timeout_with_one_clean_line(own_broker, tmp_path) -> None:
    worker = _worker(own_broker, tmp_path, FAKE_PIPELINE_DELAY="0.1")
    try:
        produce(worker.settings, [article(f"t{i}", f"Term item {i}") for i in range(100)])
        time.sleep(1.0)
        worker.process.send_signal(signal.SIGTERM)
        code, waited = wait_exit(worker.process, 30)
        log = worker.log()
    finally:
        worker.stop()
    figure("SIGTERM mid-burst", "exit code / seconds to exit", f"{code} / {waited:.1f} s (limit {SHUTDOWN:.0f} s)")
    assert code == 0 and waited <= SHUTDOWN + 1, log[-3000:]
    assert "SIGTERM received: stopping" in log and "Traceback" not in log


def test_sigterm_during_an_outage_exits_at_once(own_broker, tmp_path) -> None:
    worker = _worker(own_broker, tmp_path)
    try:
        own_broker.process.kill()
        for _ in range(100):  # until the watchdog saw the outage (bounded: 20 s)
            if "is unreachable" in worker.log():
                break
            time.sleep(0.2)
        worker.process.send_signal(signal.SIGTERM)
        code, waited = wait_exit(worker.process, 30)
        log = worker.log()
    finally:
        worker.stop()
    figure("SIGTERM during outage", "exit code / seconds to exit", f"{code} / {waited:.1f} s")
    assert code == 0 and waited <= 2.0, log[-3000:]
    assert "SIGTERM received while Kafka is unreachable" in log and "Traceback" not in log
