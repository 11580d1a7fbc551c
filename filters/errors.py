"""The root of every error the `filters` package raises on purpose: `except FiltersError` catches them all.

Each subclass also keeps its builtin base (ValueError, ...) so older `except ValueError` callers keep working, and
every message names the input (file, field, article) and the fix.
"""

from __future__ import annotations


class FiltersError(Exception):
    """A filter spec, article or rule file that cannot be used; the message names the input and the fix."""
