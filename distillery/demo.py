"""The demo orchestration: embedded broker + one worker with every role, stream the samples, print every outcome."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import orjson
from rich.console import Console
from rich.table import Table

import streams
from distillery.errors import EXIT_CHECK_FAILED, EXIT_INTERNAL, EXIT_OK
from filters.spec import resolve_spec
from monitoring.report import demo_summary
from streams.broker import BrokerError, EmbeddedBroker, free_port
from streams.clients import Message, produce_lines, read_lines, read_topics
from streams.settings import Settings
from streams.topics import Topics

SAMPLES = Path(streams.__file__).resolve().parent / "samples" / "articles.jsonl"
REQUIRED = ("dlq", "blocked", "stage1", "stage2")


class Worker:
    """The demo's worker subprocess; its log goes to a file so the demo can show it when something fails."""

    def __init__(self, settings: Settings, log_path: Path, metrics_port: int,
                 monitor_state: Path | None = None) -> None:
        env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
               "DISTILLERY_TOPIC_PREFIX": settings.topic_prefix, "DISTILLERY_METRICS_PORT": str(metrics_port),
               "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
               "DISTILLERY_FAUST_AUTO_OFFSET_RESET": "earliest"}  # the samples are produced before the group exists
        if monitor_state is not None:
            env["DISTILLERY_MONITOR_STATE"] = str(monitor_state)
        self.log_path = log_path
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        cmd = [sys.executable, "-m", "distillery", "worker", "--roles", "prefilter,probe,stage2,monitor"]
        self.process = subprocess.Popen(cmd, env=env, stdout=self._log, stderr=subprocess.STDOUT)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def filters(self) -> list[str] | None:
        found = re.search(r"worker starting: roles=\S* filters=(\S*)", self.log())
        return [f for f in found.group(1).split(",") if f] if found else None

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while "worker ready" not in self.log():
            if self.process.poll() is not None:
                raise RuntimeError(f"the worker exited with code {self.process.returncode}:\n{self.log()[-4000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the worker was not ready after {timeout:.0f} s:\n{self.log()[-4000:]}")
            time.sleep(0.2)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self._log.close()


class Outcomes:
    """What the stream produced for the demo's input lines, and whether every line is accounted for."""

    def __init__(self, lines: list[bytes], filters: list[str]) -> None:
        self.lines, self.filters = lines, filters
        self.ids = [_line_id(line) for line in lines]
        self.results: dict[str, dict] = {}  # key -> latest result (a replay overwrites)
        self.blocked: list[dict] = []
        self.dead: list[dict] = []
        self.last_at = 0.0
        self._read = 0

    def add(self, messages: list[Message]) -> None:
        """Take in the messages not seen yet (`messages` is everything read so far)."""
        for msg in messages[self._read:]:
            self._add(orjson.loads(msg.value))
        self._read = len(messages)

    def _add(self, body: dict) -> None:
        self.last_at = time.monotonic()
        if body["kind"] == "result":
            key = f"{body['article_id']}:{body['filter']}:{body['filter_version']}"
            self.results[key] = body
        elif body["kind"] == "blocked":
            self.blocked.append(body)
        else:
            self.dead.append(body)

    def complete(self) -> bool:
        dead_payloads = {d.get("payload") for d in self.dead}
        dead_ids = {d.get("article_id") for d in self.dead}
        blocked_ids = {b.get("article_id") for b in self.blocked}
        scored = Counter(r["article_id"] for r in self.results.values())
        for line, ident in zip(self.lines, self.ids, strict=True):
            if line.decode("utf-8", "replace") in dead_payloads or (ident and ident in dead_ids | blocked_ids):
                continue
            if ident is None or scored[ident] < len(self.filters):
                return False
        return True

    def counts(self) -> dict[str, int]:
        stages = Counter(r["stage"] for r in self.results.values())
        return {"dlq": len(self.dead), "blocked": len(self.blocked), "prefilter": stages["prefilter"],
                "stage1": stages["stage1"], "stage2": stages["stage2"]}


def _line_id(line: bytes) -> str | None:
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    return str(value["id"]) if isinstance(value, dict) and value.get("id") not in (None, "") else None


def _titles(lines: list[bytes]) -> dict[str, str]:
    titles = {}
    for line in lines:
        try:
            value = orjson.loads(line)
            titles[str(value["id"])] = str(value.get("title", ""))
        except (orjson.JSONDecodeError, KeyError, TypeError):
            continue
    return titles


def _table(outcomes: Outcomes, titles: dict[str, str]) -> Table:
    table = Table(title="Distillery demo: every article's outcome", show_lines=False)
    widths = {"title": (20, 44), "filter": (10, 22), "stage": (9, 9), "WA": (5, 5), "tier": (10, 24)}
    for column, (low, high) in widths.items():
        table.add_column(column, no_wrap=True, overflow="ellipsis", min_width=low, max_width=high,
                         justify="right" if column == "WA" else "left")
    for r in sorted(outcomes.results.values(), key=lambda r: (r["article_id"], r["filter"])):
        title = (r.get("title") or titles.get(r["article_id"], ""))[:60]
        table.add_row(title, r["filter"], r["stage"], f"{r['weighted_average']:.2f}", r["tier"])
    for b in outcomes.blocked:
        table.add_row((b.get("title") or titles.get(b.get("article_id") or "", ""))[:60], "-", "blocked", "-",
                      b["reason"])
    for d in outcomes.dead:
        table.add_row(d["payload"][:60], "-", "dlq", "-", d["error"][:60])
    return table


async def _watch(settings: Settings, filters: list[str], outcomes: Outcomes, timeout: float) -> None:
    topics = Topics(settings.topic_prefix)
    names = [topics.dlq, topics.blocked] + [topics.scores(f) for f in filters]

    def done(messages: list[Message]) -> bool:
        outcomes.add(messages)
        return outcomes.complete()

    await read_topics(settings, names, until=done, idle_timeout=0, max_time=timeout)


def run_demo(samples: Path | None = None, timeout: float = 240.0, metrics_port: int = 9464) -> int:
    """Run the whole demo; returns the exit code: 0 when every line has its outcome and all stages appear, 1 when
    that check fails, 70 when the broker or the worker could not run."""
    console = Console(width=None if sys.stdout.isatty() else 120)
    path = samples or SAMPLES
    lines = read_lines(path)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="distillery-demo-") as tmp:
        try:
            broker = EmbeddedBroker(log_path=Path(tmp) / "broker.log").start()
        except BrokerError as err:
            console.print(f"[red]error:[/] {err}")
            return EXIT_INTERNAL
        console.print(f"broker: Tansu on {broker.bootstrap} (in memory)")
        settings = Settings.from_env(bootstrap_servers=broker.bootstrap, topic_prefix="demo.",
                                     security_protocol="PLAINTEXT")
        if metrics_port:
            metrics_port = metrics_port if _port_free(metrics_port) else free_port()
        state = _monitor_state_path()
        worker = Worker(settings, Path(tmp) / "worker.log", metrics_port, state)
        try:
            console.print("worker: loading models and joining the consumer group ...")
            worker.wait_ready(timeout)
            filters = worker.filters() or []
            console.print(f"worker: ready after {time.monotonic() - started:.1f} s; filters: {', '.join(filters)}"
                          + (f"; metrics on http://127.0.0.1:{metrics_port}/metrics" if metrics_port else ""))
            t0 = time.monotonic()
            asyncio.run(produce_lines(settings, lines))
            console.print(f"produced {len(lines)} messages from {path.name} to {Topics(settings.topic_prefix).raw}")
            outcomes = Outcomes(lines, filters)
            asyncio.run(_watch(settings, filters, outcomes, max(10.0, timeout - (t0 - started))))
        except RuntimeError as err:
            console.print(f"[red]error:[/] {err}")
            return EXIT_INTERNAL
        finally:
            worker.stop()
            broker.stop()
        elapsed = max(outcomes.last_at - t0, 1e-9)
        console.print(_table(outcomes, _titles(lines)))
        counts = outcomes.counts()
        console.print("counts: " + ", ".join(f"{k}={v}" for k, v in counts.items()))
        console.print(f"end to end: {len(lines)} messages in {elapsed:.1f} s = {len(lines) / elapsed:.2f} articles/s "
                      f"(total demo time {time.monotonic() - started:.0f} s)")
        _print_drift(console, state, metrics_port)
        if not outcomes.complete():
            console.print(f"[red]error:[/] not every article had its outcome within {timeout:.0f} s; "
                          f"worker log tail:\n{worker.log()[-3000:]}")
            return EXIT_CHECK_FAILED
        missing = [k for k in REQUIRED if counts[k] == 0]
        if missing:
            hint = _student_hint(outcomes.filters) if "stage2" in missing else ""
            console.print(f"[red]error:[/] no {', '.join(missing)} outcome among the samples{hint}")
            return EXIT_CHECK_FAILED
        console.print("[green]demo ok:[/] every article has its results; all stages represented")
    return EXIT_OK


def _student_hint(filters: list[str]) -> str:
    """Why Stage 2 may be missing: no served filter ships a student adapter."""
    with_student = [f for f in filters if (resolve_spec(f).artifacts_dir / "student").is_dir()]
    if with_student:
        return ""
    return (f" (none of {', '.join(filters)} has a Stage-2 student in its artifacts: train one with "
            "`distillery train --filter NAME --data FILE.jsonl`)")


def _monitor_state_path() -> Path | None:
    """A demo-only monitor state file (not the production one), emptied before the run."""
    path = Settings.from_env().monitor.state_path().with_name("demo_monitor_state.json")
    path.unlink(missing_ok=True)
    return path


def _print_drift(console: Console, state: Path | None, metrics_port: int) -> None:
    """The monitor's closing lines (drift status per filter), when the monitoring package is installed."""
    if state is None:
        return
    url = f"http://127.0.0.1:{metrics_port}/metrics (served while the worker ran)" if metrics_port else None
    console.print(demo_summary(state, url))


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True
