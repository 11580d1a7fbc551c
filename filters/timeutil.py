"""THE timestamp format of records and files: RFC 3339, UTC, milliseconds, `Z` (2026-01-02T03:04:05.678Z).

Lowest layer, so models, monitoring and streams all write and read timestamps through these three functions.
Durations and latencies stay floats from `time.time()`; only what is written out is formatted here.
"""

from __future__ import annotations

from datetime import UTC, datetime

from filters.errors import FiltersError


class TimestampError(FiltersError, ValueError):
    """A timestamp string that is not RFC 3339 / ISO 8601; the message names the value and the expected form."""


def to_iso(ts: float) -> str:
    """A Unix time (seconds) as `YYYY-MM-DDTHH:MM:SS.mmmZ` (UTC, milliseconds truncated)."""
    return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def now_iso() -> str:
    """The current time as `YYYY-MM-DDTHH:MM:SS.mmmZ` (UTC, milliseconds)."""
    return to_iso(datetime.now(UTC).timestamp())


def parse_iso(value: str) -> datetime:
    """An ISO 8601 / RFC 3339 string (`Z` or an offset; a value without offset is taken as UTC) as an aware
    UTC datetime; anything else is a TimestampError naming the value."""
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except (AttributeError, ValueError):
        raise TimestampError(f"timestamp {value!r} is not RFC 3339; write it like 2026-01-02T03:04:05.678Z") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)
