"""Settings from the environment, topic names with the prefix, explicit topic creation."""

from __future__ import annotations

import asyncio

import pytest

from streams.app import parse_roles
from streams.settings import Settings, SettingsError
from streams.topics import Topics, ensure_topics


def test_settings_read_the_environment_and_name_bad_variables():
    settings = Settings.from_env({"KAFKA_BOOTSTRAP_SERVERS": "k1:9092, k2:9093", "DISTILLERY_PARTITIONS": "6",
                                  "DISTILLERY_TOPIC_PREFIX": "prod."})
    assert settings.bootstrap_list == ["k1:9092", "k2:9093"]
    assert settings.partitions == 6 and settings.topic_prefix == "prod."
    assert settings.faust_broker() == "kafka://k1:9092;kafka://k2:9093"
    with pytest.raises(SettingsError, match="DISTILLERY_PARTITIONS"):
        Settings.from_env({"DISTILLERY_PARTITIONS": "zero"})


def test_sasl_settings_reach_aiokafka():
    settings = Settings.from_env({"KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "KAFKA_SASL_MECHANISM": "SCRAM-SHA-256",
                                  "KAFKA_SASL_USERNAME": "u", "KAFKA_SASL_PASSWORD": "p"})
    kwargs = settings.aiokafka_kwargs()
    assert kwargs["security_protocol"] == "SASL_PLAINTEXT"
    assert (kwargs["sasl_mechanism"], kwargs["sasl_plain_username"], kwargs["sasl_plain_password"]) == (
        "SCRAM-SHA-256", "u", "p")
    assert settings.faust_credentials().username == "u"


def test_topic_names_carry_the_prefix():
    topics = Topics("demo.")
    assert topics.raw == "demo.articles.raw" and topics.scores("uplifting") == "demo.scores.uplifting"
    assert topics.all(["b", "a"])[-2:] == ["demo.scores.a", "demo.scores.b"]
    assert "demo.alerts.drift" in topics.all([])
    assert topics.resolve("scores.a") == topics.resolve("demo.scores.a") == "demo.scores.a"


def test_unknown_role_is_named():
    assert parse_roles("probe, stage2") == ("probe", "stage2")
    with pytest.raises(SettingsError, match="gpu"):
        parse_roles("probe,gpu")


@pytest.mark.broker
def test_topics_are_created_explicitly_with_the_configured_partitions(settings):
    from aiokafka.admin import AIOKafkaAdminClient

    names = Topics(settings.topic_prefix).all(["alpha"])
    assert sorted(asyncio.run(ensure_topics(settings, names))) == sorted(names)
    assert asyncio.run(ensure_topics(settings, names)) == []  # idempotent

    async def partitions() -> dict[str, int]:
        admin = AIOKafkaAdminClient(**settings.aiokafka_kwargs())
        await admin.start()
        try:
            return {t["topic"]: len(t["partitions"]) for t in await admin.describe_topics(names)}
        finally:
            await admin.close()

    assert set(asyncio.run(partitions()).values()) == {settings.partitions}


def test_one_settings_tree_reads_limits_faust_threads_monitor_and_spotcheck():
    settings = Settings.from_env({
        "DISTILLERY_MAX_ARTICLE_BYTES": "200000", "DISTILLERY_MAX_JSON_DEPTH": "8",
        "DISTILLERY_FAUST_SESSION_TIMEOUT": "30", "DISTILLERY_FAUST_COMMIT_EVERY": "10",
        "DISTILLERY_THREADS_TORCH": "1", "DISTILLERY_MONITOR_STATE": "/tmp/m.json",
        "DISTILLERY_MONITOR_STATE_INTERVAL": "2.5", "DISTILLERY_MONITOR_WARMUP": "300",
        "DISTILLERY_SPOTCHECK_PROVIDER": "gemini", "DISTILLERY_SPOTCHECK_K": "5",
    })
    limits = settings.payload_limits()
    assert (limits.max_bytes, limits.max_depth) == (200_000, 8)
    kwargs = settings.faust.app_kwargs()
    assert kwargs["broker_session_timeout"] == 30.0 and kwargs["broker_commit_every"] == 10
    assert kwargs["consumer_auto_offset_reset"] == "latest" and kwargs["producer_acks"] == -1  # new groups: latest
    assert settings.threads.torch == 1
    assert (settings.monitor.state, settings.monitor.state_interval) == ("/tmp/m.json", 2.5)
    assert settings.monitor.config().warmup == 300  # a plain MonitorConfig built from the tree
    assert settings.spotcheck.as_mapping()["DISTILLERY_SPOTCHECK_PROVIDER"] == "gemini"
    assert settings.spotcheck.k == 5
    with pytest.raises(SettingsError, match="DISTILLERY_FAUST_COMMIT_EVERY"):
        Settings.from_env({"DISTILLERY_FAUST_COMMIT_EVERY": "often"})
    with pytest.raises(SettingsError, match="DISTILLERY_MAX_JSON_DEPTH"):
        Settings.from_env({"DISTILLERY_MAX_JSON_DEPTH": "0"})


def test_thread_policy_is_applied_at_process_entry_not_by_library_code():
    env: dict[str, str] = {}
    Settings().threads.apply(env)
    assert env == {"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    import inspect

    import models.embedding

    assert "HF_HUB_OFFLINE" not in inspect.getsource(models.embedding._load_sentence_transformer)


def test_the_worker_app_takes_faust_tuning_and_limits_from_the_settings_tree(tmp_path):
    from fake_pipeline import FakePipeline

    from streams.app import make_app

    settings = Settings.from_env({"DISTILLERY_FAUST_SESSION_TIMEOUT": "30", "DISTILLERY_FAUST_COMMIT_EVERY": "7",
                                  "DISTILLERY_MAX_RECORD_BYTES": "500000", "DISTILLERY_DATA_DIR": str(tmp_path)})
    app = make_app(settings, "prefilter,probe", pipeline=FakePipeline())
    assert app.conf.broker_session_timeout == 30.0 and app.conf.broker_commit_every == 7
    assert app.ctx.frame.max_record_bytes == 500_000 and app.ctx.deduper is not None
    assert app.conf.producer_max_request_size > 500_000  # the frame's own check is the stricter one


def test_the_monitor_state_path_comes_from_the_settings_tree():
    from pathlib import Path

    named = Settings.from_env({"DISTILLERY_MONITOR_STATE": "~/m.json"}).monitor
    assert named.state_path() == Path("~/m.json").expanduser()
    xdg = Settings.from_env({"XDG_STATE_HOME": "/srv/state"}).monitor
    assert xdg.state_path() == Path("/srv/state/distillery/monitor_state.json")
