"""`distillery broker`: the embedded Kafka-protocol broker (Tansu, in memory) on 127.0.0.1 until Ctrl-C."""

from __future__ import annotations

import signal
import time

import typer

from distillery.errors import EXIT_INTERNAL, fail
from streams.broker import EmbeddedBroker


def broker(
    port: int = typer.Option(9092, help="TCP port on 127.0.0.1 (0 = any free port)."),
) -> None:
    """Start the embedded Kafka-protocol broker (Tansu, in memory) on 127.0.0.1 until Ctrl-C."""
    stop = False

    def _stop(*_: object) -> None:
        nonlocal stop
        stop = True

    # Before the ready line: a Ctrl-C right after it must be a clean stop, not a KeyboardInterrupt (exit 130).
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    server = EmbeddedBroker(port=port)
    server.start()  # BrokerError (port taken, no binary): one line, exit 70
    typer.echo(f"broker ready: KAFKA_BOOTSTRAP_SERVERS={server.bootstrap}  (memory storage; Ctrl-C stops it)")
    try:
        while not stop and server.process is not None and server.process.poll() is None:
            time.sleep(0.2)
    finally:
        code = server.process.poll() if server.process is not None else None
        server.stop()
    if code is not None:
        fail(f"the broker exited on its own with code {code}", EXIT_INTERNAL)
    typer.echo("broker stopped")


def register(app: typer.Typer) -> None:
    """Add `broker` to the root app."""
    app.command("broker")(broker)
