"""The one timestamp format: RFC 3339, UTC, milliseconds, Z; parsing accepts Z, offsets and naive (= UTC) values."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from filters.errors import FiltersError
from filters.timeutil import TimestampError, now_iso, parse_iso, to_iso


def test_format_is_utc_with_milliseconds_and_z():
    assert to_iso(0.0) == "1970-01-01T00:00:00.000Z"
    assert to_iso(1767322245.6789) == "2026-01-02T02:50:45.678Z"  # truncated, never rounded into the future
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", now_iso())


def test_parse_round_trips_and_normalises_to_utc():
    assert parse_iso(to_iso(1767322245.5)).timestamp() == pytest.approx(1767322245.5)
    assert parse_iso("2026-01-02T03:04:05+02:00") == datetime(2026, 1, 2, 1, 4, 5, tzinfo=UTC)
    assert parse_iso("2026-01-02T03:04:05").utcoffset() == timedelta(0)
    assert abs(parse_iso(now_iso()) - datetime.now(UTC)) < timedelta(minutes=5)


def test_unreadable_timestamp_names_the_value_and_the_form():
    with pytest.raises(TimestampError, match=r"'yesterday' is not RFC 3339; write it like 2026-01-02T03:04:05.678Z"):
        parse_iso("yesterday")
    assert issubclass(TimestampError, FiltersError) and issubclass(TimestampError, ValueError)
