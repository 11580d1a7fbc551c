"""The same topology against a real Apache Kafka in a testcontainers KafkaContainer (needs a Docker engine)."""

from __future__ import annotations

import pytest
from stream_helpers import Worker, article, collect, decoded, produce

from streams.settings import Settings


def _kafka_container():
    try:
        from testcontainers.kafka import KafkaContainer
    except ImportError:
        pytest.skip("testcontainers/Docker engine not available (package testcontainers is not installed)")
    try:
        import docker

        docker.from_env().ping()
    except Exception:
        pytest.skip("testcontainers/Docker engine not available (no Docker engine answers)")
    return KafkaContainer("confluentinc/cp-kafka:7.6.0")


@pytest.mark.broker
@pytest.mark.timeout(300)
def test_results_and_dead_letters_on_apache_kafka(tmp_path):
    with _kafka_container() as kafka:
        settings = Settings(bootstrap_servers=kafka.get_bootstrap_server(), topic_prefix="tc.", partitions=3,
                            batch_size=8, batch_within=0.2)
        worker = Worker(settings, tmp_path / "worker.log")
        try:
            worker.wait_ready(120)
            produce(settings, [article("s1", "Wind park report"), article("d1", "Deep storage"), b"{broken"])
            done = lambda m: len(decoded(m)) >= 5  # noqa: E731 - 2 articles x 2 filters + 1 dead letter
            kinds = sorted(r["kind"] for r in decoded(collect(settings, ("alpha", "beta"), done, max_time=120)))
            assert kinds == ["dead_letter"] + ["result"] * 4
        finally:
            worker.stop()
