"""The root of every error the `models` package raises on purpose: `except ModelsError` catches them all.

Each subclass also keeps its builtin base (ValueError, RuntimeError) so older `except ValueError` callers keep
working, and every message names the input (file, filter, row) and the fix (usually a `distillery` command).
"""

from __future__ import annotations


class ModelsError(Exception):
    """A model, artifact, data file or oracle reply that cannot be used; the message names the input and the fix."""
