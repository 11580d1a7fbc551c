"""Reading and writing JSONL label rows, and the keys used to spot duplicates (URL, content, title)."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from filters.jsonl import read_objects
from filters.timeutil import TimestampError, parse_iso
from models.errors import ModelsError

_WORD_RE = re.compile(r"\w+", re.UNICODE)
_TRACKING = ("utm_", "fbclid", "gclid", "mc_cid", "mc_eid", "ref", "rss", "cmpid", "ocid")


class DataFileError(ModelsError, ValueError):
    """A label file that cannot be read; the message names the file and line and what to do."""


def read_rows(path: str | Path) -> list[tuple[int, dict[str, Any]]]:
    """(line number, row) for every object in a JSONL file."""
    return read_objects(path, expected="a JSONL file of labelled rows {id, title, text, scores}", error=DataFileError)


def write_rows(path: Path, rows: Iterable[Mapping[str, Any]]) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with path.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
    return n


def row_text(row: Mapping[str, Any]) -> str:
    return str(row.get("text") or row.get("content") or "").strip()


def normalize_url(url: str) -> str:
    """Lower-case scheme/host, no `www.`, no fragment, no tracking parameters, no trailing slash."""
    url = (url or "").strip()
    if not url:
        return ""
    parts = urlsplit(url)
    host = parts.netloc.lower().removeprefix("www.")
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
             if not k.lower().startswith(_TRACKING)]
    return urlunsplit(("", host, parts.path.rstrip("/"), urlencode(sorted(query)), ""))


def content_key(row: Mapping[str, Any]) -> str:
    """Hash of the case- and whitespace-normalised title + text."""
    text = f"{row.get('title') or ''}\n{row_text(row)}".lower()
    return hashlib.sha256(" ".join(text.split()).encode("utf-8", "surrogatepass")).hexdigest()


def title_words(title: str) -> list[str]:
    return _WORD_RE.findall((title or "").lower())


def parse_time(value: Any) -> datetime:
    """An `analyzed_at` timestamp as an aware datetime; missing or unreadable sorts oldest."""
    if isinstance(value, str) and value:
        try:
            return parse_iso(value)
        except TimestampError:
            return datetime.min.replace(tzinfo=UTC)
    return datetime.min.replace(tzinfo=UTC)
