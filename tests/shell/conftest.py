"""Shell test fixtures: a local port nothing listens on."""

from __future__ import annotations

import socket

import pytest


@pytest.fixture
def dead_port() -> int:
    """A local TCP port with no listener (bound once to pick it, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
