"""The broker watchdog's decisions, the log limiter, the health endpoints and the topic conventions, without Kafka."""

from __future__ import annotations

import logging
import urllib.error
import urllib.request

import orjson
import pytest

from streams.guard import EXIT_FATAL, BrokerGuard, BrokerView, LogRateLimit
from streams.health import serve_health
from streams.settings import Settings, SettingsError
from streams.topics import Topics, similar_topics, topic_configs

TOPICS = ["p.articles.raw", "p.scores.alpha"]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _guard(timeout: float = 60.0) -> tuple[BrokerGuard, Clock]:
    clock = Clock()
    settings = Settings(bootstrap_servers="k:9092", broker_unreachable_timeout=timeout)
    return BrokerGuard(settings, TOPICS, clock=clock), clock


def _view(partitions: int = 3, cluster: str | None = "c1", topics: list[str] = TOPICS) -> BrokerView:
    return BrokerView(cluster, {t: partitions for t in topics})


def test_an_outage_shorter_than_the_timeout_is_survived_and_a_longer_one_is_fatal_with_one_line() -> None:
    guard, clock = _guard(timeout=60)
    assert guard.observe(_view()) is None and guard.reachable
    assert guard.observe(None, "refused") is None and not guard.reachable
    clock.now += 59
    assert guard.observe(None, "refused") is None
    clock.now += 2
    assert guard.observe(_view()) is None and guard.reachable  # back in time: the outage clock restarts
    guard.observe(None, "refused")
    clock.now += 60
    fatal = guard.observe(None, "refused")
    assert fatal is not None
    assert f"code {EXIT_FATAL}" in fatal and "k:9092" in fatal
    assert "unreachable for 60 s" in fatal and "refused" in fatal


def test_the_outage_clock_starts_at_the_last_successful_check() -> None:
    guard, clock = _guard(timeout=60)
    guard.observe(_view())
    clock.now += 5  # the broker died right after that check; the next check fails 5 s later
    guard.observe(None, "refused")
    clock.now += 55
    assert "unreachable for 60 s" in (guard.observe(None, "refused") or "")


def test_the_outage_is_logged_once_then_once_per_progress_interval(caplog: pytest.LogCaptureFixture) -> None:
    guard, clock = _guard(timeout=60)
    guard.observe(_view())
    with caplog.at_level(logging.ERROR, logger="distillery.guard"):
        for _ in range(50):  # a check every second for 50 s
            guard.observe(None, "refused")
            clock.now += 1
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 + 3  # the first failure, then at 15, 30 and 45 s
    assert "exits with code 70 if it stays so for 60 s" in lines[0]


def test_an_empty_broker_coming_back_is_fatal_and_names_the_missing_topics() -> None:
    guard, clock = _guard()
    guard.observe(_view())
    guard.observe(None, "refused")
    clock.now += 5
    fatal = guard.observe(_view(topics=[]))
    assert fatal is not None and "has no topic p.articles.raw, p.scores.alpha" in fatal and "restarted empty" in fatal


def test_auto_created_topics_with_other_partition_counts_or_another_cluster_id_are_fatal() -> None:
    guard, _ = _guard()
    guard.observe(_view(partitions=3))
    assert "now has 4 partitions, had 3" in (guard.observe(_view(partitions=4)) or "")
    guard, _ = _guard()
    guard.observe(_view(cluster="c1"))
    assert "is now cluster 'c2'" in (guard.observe(_view(cluster="c2")) or "")


def test_alive_from_creation_and_dead_when_checks_stop_for_longer_than_three_intervals_plus_a_quarter_timeout() -> None:
    guard, clock = _guard(timeout=60)  # interval 5 s: the limit is 15 + 15 = 30 s
    assert guard.alive() and not guard.reachable
    clock.now += 29
    assert guard.alive()
    clock.now += 2
    assert not guard.alive()
    guard.observe(_view())
    assert guard.alive() and guard.reachable


def test_the_check_interval_follows_the_timeout_within_bounds() -> None:
    assert _guard(timeout=60)[0].interval == 5.0
    assert _guard(timeout=6)[0].interval == 1.0
    assert _guard(timeout=24)[0].interval == 2.0


async def test_check_turns_a_failing_or_hanging_metadata_request_into_an_observed_outage() -> None:
    async def refuse(settings: Settings, timeout: float) -> BrokerView:
        raise ConnectionRefusedError("Connect call failed")

    guard, _ = _guard(timeout=12)
    guard.fetch = refuse
    assert await guard.check() is None
    assert not guard.reachable and guard.last_error == "ConnectionRefusedError: Connect call failed"


def _record(name: str, msg: str, level: int = logging.ERROR) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, msg, None, None)


def test_log_limit_passes_a_repeated_message_once_per_interval_and_counts_the_rest() -> None:
    clock = Clock()
    limit = LogRateLimit(interval=30, burst=100, clock=clock)
    passed = 0
    for _ in range(125 * 30):  # 125 lines a second for 30 s, as aiokafka logs during an outage
        passed += limit.filter(_record("aiokafka.conn", "Unable connect to node with id %s"))
        clock.now += 1 / 125
    assert passed == 1
    clock.now += 1
    record = _record("aiokafka.conn", "Unable connect to node with id %s")
    assert limit.filter(record) and "[3749 similar log lines suppressed]" in record.msg


def test_log_limit_caps_distinct_messages_of_one_library_but_never_critical_or_own_lines() -> None:
    limit = LogRateLimit(interval=30, burst=5, clock=Clock())
    assert sum(limit.filter(_record("faust.transport", f"message {i}")) for i in range(50)) == 5
    assert limit.filter(_record("faust.transport", "boom", logging.CRITICAL))
    assert all(limit.filter(_record("distillery.guard", "same")) for _ in range(10))


def test_health_endpoints_answer_200_or_503_with_the_reason() -> None:
    state = {"ready": False}
    server = serve_health("127.0.0.1", 0, lambda: (True, "running"),
                          lambda: (state["ready"], "ready" if state["ready"] else "no consumer-group assignment yet"))
    port = server.server_address[1]
    try:
        def get(path: str) -> tuple[int, dict]:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
                    return response.status, orjson.loads(response.read())
            except urllib.error.HTTPError as err:
                return err.code, orjson.loads(err.read())

        assert get("/healthz") == (200, {"ok": True, "reason": "running"})
        assert get("/readyz") == (503, {"ok": False, "reason": "no consumer-group assignment yet"})
        state["ready"] = True
        assert get("/readyz")[0] == 200
        assert get("/nope")[0] == 404
    finally:
        server.shutdown()
        server.server_close()


def test_result_topics_are_compacted_and_the_others_keep_the_configured_retention() -> None:
    settings = Settings(topic_prefix="p.", retention_ms=86_400_000)
    topics = Topics("p.")
    assert topic_configs(settings, topics.scores("alpha")) == {"cleanup.policy": "compact"}
    for name in (topics.raw, topics.dlq, topics.blocked, topics.embedded, topics.stage2, topics.drift):
        assert topic_configs(settings, name) == {"cleanup.policy": "delete", "retention.ms": "86400000"}


def test_similar_topics_suggests_the_close_names_and_hides_internal_ones() -> None:
    existing = ["scores.uplifting", "scores.sustainability", "articles.raw", "__consumer_offsets"]
    assert similar_topics("scores.upliftng", existing)[0] == "scores.uplifting"
    assert "__consumer_offsets" not in similar_topics("__consumer_offset", existing)


def test_new_settings_come_from_their_environment_variables_and_bad_values_name_them() -> None:
    settings = Settings.from_env({"DISTILLERY_FAUST_AUTO_OFFSET_RESET": "earliest",
                                  "DISTILLERY_BROKER_UNREACHABLE_TIMEOUT": "15", "DISTILLERY_SHUTDOWN_TIMEOUT": "3",
                                  "DISTILLERY_HEALTH_PORT": "8080", "DISTILLERY_RETENTION_MS": "-1"})
    assert (settings.faust.auto_offset_reset, settings.broker_unreachable_timeout, settings.shutdown_timeout,
            settings.health_port, settings.retention_ms) == ("earliest", 15.0, 3.0, 8080, -1)
    assert Settings().faust.auto_offset_reset == "latest"
    with pytest.raises(SettingsError, match="DISTILLERY_FAUST_AUTO_OFFSET_RESET"):
        Settings.from_env({"DISTILLERY_FAUST_AUTO_OFFSET_RESET": "beginning"})
