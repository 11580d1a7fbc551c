"""Checks on a raw input message BEFORE it is parsed or embedded: size, UTF-8, JSON nesting depth, and the article id
read from the bytes, so that any input (of any size, bytes or structure) ends in a clear, bounded rejection."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

DEFAULT_MAX_BYTES = 512 * 1024  # an article body is a few KB; half a MB leaves room and stays under Kafka's 1 MB
DEFAULT_MAX_DEPTH = 32  # an article is a flat object with a small metadata tree; orjson refuses to write 255 levels

# Stable reason codes of invalid input (the DLQ record's `reason`, a bounded metric label).
TOO_LARGE = "too_large"
TOO_DEEP = "too_deep"
INVALID_UTF8 = "invalid_utf8"
INVALID_JSON = "invalid_json"
INVALID_ARTICLE = "invalid_article"
NO_CONTENT = "no_content"

_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_BRACKET = re.compile(rb"[\[\]{}]")
_ID = re.compile(rb'"id"\s*:\s*(?:"((?:[^"\\]|\\.){1,512})"|(-?\d{1,40}))')


@dataclass(frozen=True)
class PayloadLimits:
    """Limits on one raw input message (built from streams.settings.Settings; the defaults suit news articles)."""

    max_bytes: int = DEFAULT_MAX_BYTES
    max_depth: int = DEFAULT_MAX_DEPTH


class PayloadError(ValueError):
    """A raw message refused before parsing: `code` is one of the reason codes above, the message says what to do."""

    def __init__(self, code: str, message: str, article_id: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.article_id = article_id


def sniff_id(raw: bytes | str) -> str | None:
    """The article id read straight from the bytes (the first `"id": ...` pair), for messages that cannot be parsed;
    None when there is none."""
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else bytes(raw)
    match = _ID.search(data)
    if match is None:
        return None
    if match.group(2) is not None:
        return match.group(2).decode("ascii")
    try:
        value = orjson.loads(b'"' + match.group(1) + b'"')
    except orjson.JSONDecodeError:
        return match.group(1).decode("utf-8", "replace")
    return value if isinstance(value, str) else None


def json_depth(raw: bytes, stop_above: int) -> int:
    """Nesting depth of JSON text without parsing it (strings are skipped); stops counting above `stop_above`."""
    stripped = _STRING.sub(b'""', raw)
    depth = deepest = 0
    for match in _BRACKET.finditer(stripped):
        if match.group() in (b"[", b"{"):
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > stop_above:
                    return deepest
        else:
            depth -= 1
    return deepest


def value_depth(value: Any, stop_above: int) -> int:
    """Nesting depth of an already-decoded value (objects and arrays count one level each), bounded like json_depth."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, Mapping | list | tuple):
            if depth > deepest:
                deepest = depth
                if deepest > stop_above:
                    return deepest
            children = item.values() if isinstance(item, Mapping) else item
            stack.extend((child, depth + 1) for child in children)
    return deepest


def decode_payload(payload: Any, limits: PayloadLimits) -> Any:
    """The decoded JSON value of one raw message, after the size, UTF-8 and depth checks; raises PayloadError.

    Bytes and text are checked before parsing; an already-decoded value (batch input) gets the depth check only.
    """
    if not isinstance(payload, bytes | bytearray | memoryview | str):
        depth = value_depth(payload, limits.max_depth)
        if depth > limits.max_depth:
            ident = payload.get("id") if isinstance(payload, Mapping) else None
            raise PayloadError(TOO_DEEP, _too_deep(depth, limits), str(ident) if ident is not None else None)
        return payload
    raw = payload.encode("utf-8", "surrogatepass") if isinstance(payload, str) else bytes(payload)
    if len(raw) > limits.max_bytes:
        raise PayloadError(
            TOO_LARGE,
            f"article message is {len(raw):,} bytes, over the limit of {limits.max_bytes:,} bytes "
            "(DISTILLERY_MAX_ARTICLE_BYTES): send the article text only (no embedded media), shorten it, or raise "
            "the limit",
            sniff_id(raw[:65536]),
        )
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as err:
        bad = raw[err.start:err.end].hex(" ")
        raise PayloadError(
            INVALID_UTF8,
            f"article message is not valid UTF-8 at byte offset {err.start} (bytes {bad}: {err.reason}); the "
            "producer must send the article as UTF-8 encoded JSON (re-encode the text, e.g. from Latin-1, before "
            "sending)",
            sniff_id(raw),
        ) from None
    depth = json_depth(raw, limits.max_depth)
    if depth > limits.max_depth:
        raise PayloadError(TOO_DEEP, _too_deep(depth, limits), sniff_id(raw))
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as err:
        raise PayloadError(INVALID_JSON, f"article message is not valid JSON: {err}; send one JSON object per "
                                         "message", sniff_id(raw)) from None


def _too_deep(depth: int, limits: PayloadLimits) -> str:
    shown = f"more than {limits.max_depth}" if depth > limits.max_depth else str(depth)
    return (f"article JSON is nested {shown} levels deep, over the limit of {limits.max_depth} "
            "(DISTILLERY_MAX_JSON_DEPTH): send a flat article object (id, title, content, url, ...)")
