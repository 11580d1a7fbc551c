"""Shell test helpers: run `python -m distillery` in a subprocess from the repository root."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_shell(*args: str, env: dict[str, str] | None = None, timeout: float = 120.0) -> subprocess.CompletedProcess:
    """`python -m distillery ARGS` from the repository root; stdout and stderr captured as text."""
    full_env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests" / "streams")]),
                **(env or {})}
    return subprocess.run([sys.executable, "-m", "distillery", *args], cwd=ROOT, env=full_env, capture_output=True,
                          text=True, timeout=timeout)
