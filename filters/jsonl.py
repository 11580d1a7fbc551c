"""JSON files: the one strict JSONL reader (errors name the file, the line and the fix) and the one atomic,
strict JSON writer (NaN/inf become null) for state and reference files."""

from __future__ import annotations

import json
import math
import os
import tempfile
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


def json_safe(value: Any) -> Any:
    """Replace NaN/inf by None, recursively, so the JSON is strict."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def write_json_atomic(path: Path, body: Any) -> None:
    """JSON to `path` through a temporary file and rename (a reader never sees half a file; NaN/inf become null)."""
    body = json_safe(body)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(body, fh, indent=1, allow_nan=False, default=str)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
