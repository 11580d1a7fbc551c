"""Runs a worker's faust app with the broker watchdog, the log limiter, a bounded SIGTERM and health endpoints.

faust's own stop waits for the broker (about a minute during an outage, then a traceback and exit 0). Here a
SIGTERM or Ctrl-C stops the app gracefully for at most `DISTILLERY_SHUTDOWN_TIMEOUT` seconds and then exits 0
with one line; when the broker is already unreachable it exits at once (nothing can be committed anyway). Input
processed but not yet committed is replayed by the next owner of the partition (at-least-once).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
from typing import Any

import faust

from streams.guard import BrokerGuard, install_log_limit
from streams.health import serve_health
from streams.settings import Settings
from streams.topics import Topics


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class GuardedWorker(faust.Worker):
    """A faust Worker whose signals stop it within `shutdown_timeout` seconds and whose log is rate-limited."""

    def __init__(self, app: Any, guard: BrokerGuard, shutdown_timeout: float, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self.guard = guard
        self.shutdown_timeout = shutdown_timeout
        self._stop_signal: str | None = None
        self._guard_task: asyncio.Future | None = None

    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        super().on_setup_root_logger(logger, level)
        install_log_limit()

    async def on_first_start(self) -> None:
        await super().on_first_start()
        install_log_limit()  # again: handlers added after the root logger was set up
        self._guard_task = asyncio.ensure_future(self.guard.run())

    def _on_sigterm(self) -> None:
        self._stop_within("SIGTERM", super()._on_sigterm)

    def _on_sigint(self) -> None:
        self._stop_within("SIGINT", super()._on_sigint)

    def _stop_within(self, name: str, graceful: Any) -> None:
        if self._stop_signal is not None:
            self._exit_now(f"{name} again: exiting now")
        self._stop_signal = name
        if self.guard.unreachable_since is not None:  # the last broker check failed: nothing can be committed
            self._exit_now(f"{name} received while Kafka is unreachable: exiting now without committing; "
                           "input since the last commit is replayed after a restart")
        _say(f"{name} received: stopping (at most {self.shutdown_timeout:.0f} s)")
        # a thread, not the event loop: the deadline holds even while faust's shutdown blocks or closes the loop
        deadline = threading.Timer(self.shutdown_timeout, self._exit_now,
                                   [f"worker did not stop within {self.shutdown_timeout:.0f} s: exiting now; input "
                                    "since the last commit is replayed after a restart"])
        deadline.daemon = True
        deadline.start()
        graceful()

    @staticmethod
    def _exit_now(line: str) -> None:
        _say(line)
        logging.shutdown()
        os._exit(0)


def run_worker(app: Any, settings: Settings, loglevel: str = "warning") -> None:
    """Run `app` (made by streams.app.make_app) until a signal or a fatal broker condition; never returns."""
    ctx = app.ctx
    guard = BrokerGuard(settings, Topics(settings.topic_prefix).all(ctx.filters))
    assigned: dict[str, int] = {}

    @app.on_partitions_assigned.connect
    async def _assigned(sender: object, assigned_tps: set, **kwargs: object) -> None:
        assigned["n"] = len(assigned_tps)

    @app.on_partitions_revoked.connect
    async def _revoked(sender: object, revoked: set, **kwargs: object) -> None:
        assigned.pop("n", None)

    if settings.health_port:
        def live() -> tuple[bool, str]:
            return (True, "running") if guard.alive() else (False, "broker checks stalled (event loop blocked?)")

        def ready() -> tuple[bool, str]:
            if not guard.reachable:
                return False, f"Kafka unreachable: {guard.last_error or 'not checked yet'}"
            if "n" not in assigned:
                return False, "no consumer-group assignment yet"
            return True, f"{assigned['n']} partitions assigned"

        serve_health(settings.metrics_host, settings.health_port, live, ready)
    worker = GuardedWorker(app, guard, settings.shutdown_timeout, loglevel=loglevel, loop=asyncio.get_event_loop(),
                           quiet=True)
    try:
        worker.execute_from_commandline()
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else 1
        _say(f"worker stopped (exit {code})")
        logging.shutdown()
        os._exit(code)  # faust has stopped; skip joining the model thread and other interpreter teardown


__all__ = ["GuardedWorker", "run_worker"]
