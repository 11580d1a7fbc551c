"""Shell test helpers: a port nothing listens on, and a run of `python -m distillery` in a subprocess."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def dead_port() -> int:
    """A local TCP port with no listener (bound once to pick it, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_shell(*args: str, env: dict[str, str] | None = None, timeout: float = 120.0) -> subprocess.CompletedProcess:
    """`python -m distillery ARGS` from the repository root; stdout and stderr captured as text."""
    full_env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests" / "streams")]),
                **(env or {})}
    return subprocess.run([sys.executable, "-m", "distillery", *args], cwd=ROOT, env=full_env, capture_output=True,
                          text=True, timeout=timeout)
