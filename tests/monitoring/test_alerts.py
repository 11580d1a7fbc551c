"""Alert records and the cooldown that keeps one drift to one alert."""

from __future__ import annotations

import orjson
import pytest

from filters.timeutil import to_iso
from monitoring.alerts import Alert, Cooldown


def _alert(**kw) -> Alert:
    base = dict(
        filter="tiny", signal="weighted_average", detector="ks", value=0.31, baseline=0.12, window=500,
        severity="warning", detected_at=to_iso(0.0),
    )
    return Alert(**{**base, **kw})


def test_alert_round_trips_through_json_and_keys_by_signal():
    alert = _alert(details={"p_value": 1e-9})
    back = Alert.from_dict(orjson.loads(orjson.dumps(alert.as_dict())) | {"unknown_future_field": 1})
    assert back == alert
    assert alert.key == "tiny:weighted_average"
    assert alert.detected_at == "1970-01-01T00:00:00.000Z"
    assert alert.schema_version == 1


def test_alert_summary_names_filter_signal_and_values():
    line = _alert(filter="", signal="rate.dlq", detector="binomial", value=0.05, baseline=0.002).summary()
    assert line.startswith("[warning] global rate.dlq drift (binomial): value 0.05 vs baseline 0.002 over 500 samples")


def test_cooldown_needs_both_events_and_seconds_to_pass():
    cd = Cooldown(events=3, seconds=10.0)
    assert cd.allow(now=0.0)
    for t in (1.0, 2.0, 3.0):
        cd.tick()
        assert not cd.allow(now=t)  # within 3 events
    cd.tick()  # 4 events since the alert, but only 4 s
    assert not cd.allow(now=4.0)
    assert cd.allow(now=10.0)  # both passed
    assert cd.state() == {"fired": 2, "suppressed": 4, "active": True, "last_alert_at": "1970-01-01T00:00:10.000Z"}


def test_cooldown_rejects_negative_limits():
    with pytest.raises(ValueError, match="cooldown limits must be >= 0"):
        Cooldown(events=-1)
