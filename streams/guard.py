"""The broker watchdog of a worker, and the log limiter that keeps a Kafka outage from flooding the log.

faust and aiokafka retry a lost broker for ever (an idle worker never notices; a busy one waits 1,200 s for an ack)
and log every retry. The watchdog asks the broker for its metadata every few seconds with a bounded request and ends
the process with EXIT_FATAL (70) and one clear line when the broker was unreachable for
`DISTILLERY_BROKER_UNREACHABLE_TIMEOUT` seconds, or when it came back without the deployment's topics (an empty
broker: committed offsets are gone too). A supervisor restarts the worker, which recreates the topics and resumes.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from aiokafka.client import AIOKafkaClient

from streams.settings import Settings

EXIT_FATAL = 70  # EX_SOFTWARE, "restart me": the one exit code of a fatal worker error (also WorkerContext.crash)
log = logging.getLogger("distillery.guard")


class LogRateLimit(logging.Filter):
    """Pass a repeated log message (same logger, same template) at most once per `interval` seconds, and at most
    `burst` messages per logger family ('aiokafka', 'faust', ...) per interval; the next one that passes says how
    many were suppressed. CRITICAL records, the worker's own lines (`distillery.*`) and printed lines
    (`mode.redirect`) always pass."""

    EXEMPT = ("distillery", "mode.redirect")

    def __init__(self, interval: float = 30.0, burst: int = 20, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.interval = interval
        self.burst = burst
        self.clock = clock
        self._last: dict[tuple[str, str], float] = {}
        self._window: dict[str, tuple[float, int]] = {}  # logger family -> (window start, messages passed)
        self.suppressed = 0  # since the last message that passed

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.CRITICAL or record.name.startswith(self.EXEMPT):
            return True
        now = self.clock()
        key = (record.name, str(record.msg))
        last = self._last.get(key)
        family = record.name.split(".", 1)[0]
        start, passed = self._window.get(family, (now, 0))
        if now - start >= self.interval:
            start, passed = now, 0
        if (last is not None and now - last < self.interval) or passed >= self.burst:
            self.suppressed += 1
            return False
        self._last[key] = now
        self._window[family] = (start, passed + 1)
        if self.suppressed:
            record.msg = f"{record.msg} [{self.suppressed} similar log lines suppressed]"
            self.suppressed = 0
        return True


def install_log_limit(interval: float = 30.0, burst: int = 20) -> int:
    """Attach a LogRateLimit of its own to every handler of the root logger that writes somewhere (filters on
    loggers miss propagated records; faust's terminal spinner handler sees DEBUG records and is skipped).
    Returns the number of handlers that got one."""
    root = logging.getLogger()
    handlers = list(root.handlers) or ([logging.lastResort] if logging.lastResort else [])
    count = 0
    for handler in handlers:
        if type(handler).__name__ == "SpinnerHandler":
            continue
        if not any(isinstance(f, LogRateLimit) for f in handler.filters):
            handler.addFilter(LogRateLimit(interval, burst))
            count += 1
    return count


@dataclass(frozen=True)
class BrokerView:
    """What one metadata request saw: the cluster id and the partition count of every topic."""

    cluster_id: str | None
    partitions: dict[str, int]


async def fetch_view(settings: Settings, timeout: float) -> BrokerView:
    """One bounded metadata request for every topic (it never auto-creates one); raises when Kafka is unreachable."""
    client = AIOKafkaClient(**settings.aiokafka_kwargs(), client_id="distillery-watchdog",
                            request_timeout_ms=int(timeout * 1000))
    try:
        await asyncio.wait_for(client.bootstrap(), timeout)
        cluster = client.cluster
        return BrokerView(getattr(cluster, "cluster_id", None),
                          {t: len(cluster.partitions_for_topic(t) or ()) for t in cluster.topics()})
    finally:
        await client.close()


def _exit_fatal(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
    logging.shutdown()
    os._exit(EXIT_FATAL)


@dataclass
class BrokerGuard:
    """Decides from periodic metadata checks whether the worker must stop; `observe` is the pure decision.

    `topics` are the deployment's topics that must exist while the worker runs. The first successful check is the
    baseline: a changed cluster id or partition count later means the broker was replaced.
    """

    settings: Settings
    topics: Sequence[str]
    interval: float = 0.0  # seconds between checks; 0 = timeout / 12, between 1 and 5 s
    progress_every: float = 15.0  # one "still unreachable" line per this many seconds
    fetch: Callable[[Settings, float], Awaitable[BrokerView]] = fetch_view
    exit: Callable[[str], None] = _exit_fatal
    clock: Callable[[], float] = time.monotonic
    baseline: BrokerView | None = None
    unreachable_since: float | None = None
    last_error: str = ""
    last_check: float | None = None
    _last_progress: float = field(default=0.0, repr=False)
    _last_ok: float | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not self.interval:
            self.interval = min(5.0, max(1.0, self.settings.broker_unreachable_timeout / 12))
        if self.last_check is None:
            self.last_check = self.clock()  # alive from creation: the first check runs when the worker starts

    @property
    def timeout(self) -> float:
        return self.settings.broker_unreachable_timeout

    @property
    def reachable(self) -> bool:
        """True after a successful check and until a check fails."""
        return self.baseline is not None and self.unreachable_since is None

    def alive(self, slack: float = 3.0) -> bool:
        """True while the checks keep running (the event loop is not stuck)."""
        limit = self.interval * slack + self.timeout / 4
        return self.last_check is not None and self.clock() - self.last_check <= limit

    def observe(self, view: BrokerView | None, error: str = "") -> str | None:
        """Record one check (a view, or None and the error) and return the fatal line when the worker must exit."""
        now = self.clock()
        self.last_check = now
        where = self.settings.bootstrap_servers
        if view is None:
            self.last_error = error
            if self.unreachable_since is None:  # the outage began after the last successful check
                self.unreachable_since = self._last_ok if self._last_ok is not None else now
                self._last_progress = now
                log.error("Kafka at %s is unreachable (%s); the worker exits with code %d if it stays so for %.0f s",
                          where, error, EXIT_FATAL, self.timeout)
            down = now - self.unreachable_since
            if down >= self.timeout:
                return (f"fatal: Kafka at {where} unreachable for {down:.0f} s (last error: {error}); exiting with "
                        f"code {EXIT_FATAL} without committing: a restarted worker resumes from the last commit")
            if now - self._last_progress >= self.progress_every:
                self._last_progress = now
                log.error("Kafka at %s still unreachable after %.0f s (exit in %.0f s)", where, down,
                          self.timeout - down)
            return None
        self._last_ok = now
        if self.unreachable_since is not None:
            log.warning("Kafka at %s reachable again after %.0f s", where, now - self.unreachable_since)
            self.unreachable_since = None
        missing = [t for t in self.topics if t not in view.partitions]
        if missing:
            return (f"fatal: Kafka at {where} has no topic {', '.join(missing[:5])}"
                    f"{' …' if len(missing) > 5 else ''} (the broker restarted empty or the topics were deleted); "
                    f"exiting with code {EXIT_FATAL}: a restarted worker recreates the topics and its group")
        if self.baseline is None:
            self.baseline = view
            return None
        if self.baseline.cluster_id and view.cluster_id and view.cluster_id != self.baseline.cluster_id:
            return (f"fatal: Kafka at {where} is now cluster {view.cluster_id!r}, was {self.baseline.cluster_id!r}; "
                    f"exiting with code {EXIT_FATAL}")
        changed = [t for t in self.topics if view.partitions.get(t) != self.baseline.partitions.get(t)]
        if changed:
            t = changed[0]
            return (f"fatal: topic {t} now has {view.partitions.get(t)} partitions, had "
                    f"{self.baseline.partitions.get(t)} (the broker restarted empty and auto-created it?); "
                    f"exiting with code {EXIT_FATAL}")
        return None

    async def check(self) -> str | None:
        """One bounded metadata request, observed; returns the fatal line if any."""
        bound = max(1.0, min(self.interval * 2, self.timeout / 2))
        try:
            view = await asyncio.wait_for(self.fetch(self.settings, bound), bound + 1.0)
        except Exception as err:  # unreachable, timed out, refused, authentication failed ...
            text, kind = str(err), type(err).__name__
            return self.observe(None, text if kind in text else f"{kind}: {text}".rstrip(": "))
        return self.observe(view)

    async def run(self) -> None:
        """Check every `interval` seconds until a check is fatal, then call `exit` with the line (for ever)."""
        while True:
            fatal = await self.check()
            if fatal:
                self.exit(fatal)
                return
            await asyncio.sleep(self.interval)
