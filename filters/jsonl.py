"""The one strict JSONL reader: one JSON object per line, errors that name the file, the line and the fix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson


def read_objects(
    path: str | Path,
    *,
    expected: str,
    error: type[Exception] = ValueError,
    tolerate_partial_tail: bool = False,
    allow_empty: bool = True,
) -> list[tuple[int, dict[str, Any]]]:
    """(line number, object) for every non-blank line of `path`.

    `expected` says what the file should hold (it appears in the missing-file message); `error` is the
    exception type the caller's users see. With `tolerate_partial_tail`, a cut-off last line (an interrupted
    append) is ignored instead of being an error.
    """
    path = Path(path)
    if not path.is_file():
        raise error(f"{path}: no such file; pass {expected}")
    lines = path.read_bytes().splitlines()
    out: list[tuple[int, dict[str, Any]]] = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = orjson.loads(line)
        except orjson.JSONDecodeError as err:
            if tolerate_partial_tail and n == len(lines):
                break
            raise error(f"{path}:{n}: not valid JSON ({err}); fix or remove the line") from None
        if not isinstance(row, dict):
            raise error(f"{path}:{n}: expected a JSON object per line, got {type(row).__name__}")
        out.append((n, row))
    if not out and not allow_empty:
        raise error(f"{path}: no rows; the file is empty (pass {expected})")
    return out
