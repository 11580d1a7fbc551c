"""Shared output helpers of the shell: a rich console that writes plain lines when stdout is not a terminal."""

from __future__ import annotations

import sys

from rich.console import Console


def console() -> Console:
    """A console for tables; without a terminal no colour or cursor codes (plain lines for logs and pipes)."""
    tty = sys.stdout.isatty()
    return Console(soft_wrap=True, force_terminal=tty, no_color=not tty, highlight=tty)

