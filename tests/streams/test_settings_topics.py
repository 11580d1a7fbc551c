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
