"""Topic names (with the configurable prefix) and their explicit creation with the Kafka admin client."""

from __future__ import annotations

import argparse
import asyncio
import difflib
import logging
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from filters.spec import available, resolve_spec
from streams.settings import Settings, SettingsError

TOPIC_EXISTS = 36  # Kafka error code TOPIC_ALREADY_EXISTS
log = logging.getLogger("distillery.topics")


@dataclass(frozen=True)
class Topics:
    """Every topic name of one deployment; `prefix` separates deployments (and tests) on one cluster."""

    prefix: str = ""

    def _name(self, base: str) -> str:
        return f"{self.prefix}{base}"

    @property
    def raw(self) -> str:
        return self._name("articles.raw")

    @property
    def dlq(self) -> str:
        return self._name("articles.dlq")

    @property
    def blocked(self) -> str:
        return self._name("articles.blocked")

    @property
    def embedded(self) -> str:
        return self._name("articles.embedded")

    @property
    def stage2(self) -> str:
        return self._name("stage2.requests")

    @property
    def drift(self) -> str:
        return self._name("alerts.drift")

    def scores(self, filter_name: str) -> str:
        return self._name(f"scores.{filter_name}")

    def all(self, filters: Iterable[str]) -> list[str]:
        """The pipeline topics plus one scores topic per filter."""
        names = [self.raw, self.dlq, self.blocked, self.embedded, self.stage2, self.drift]
        return names + [self.scores(f) for f in sorted(set(filters))]

    def resolve(self, name: str) -> str:
        """A topic given with or without the prefix (as `tail` accepts it) -> the full name."""
        return name if self.prefix and name.startswith(self.prefix) else self._name(name)

    def is_result(self, name: str) -> bool:
        """True for a `scores.<filter>` topic: consumers upsert its records by key, so it is compacted."""
        return name.startswith(self._name("scores."))


def topic_configs(settings: Settings, name: str) -> dict[str, str]:
    """The Kafka topic configs a topic is created with: results compacted (the latest result per key survives),
    every other topic deleted after `settings.retention_ms` (DISTILLERY_RETENTION_MS; -1 keeps it forever)."""
    if Topics(settings.topic_prefix).is_result(name):
        return {"cleanup.policy": "compact"}
    return {"cleanup.policy": "delete", "retention.ms": str(settings.retention_ms)}


def similar_topics(name: str, existing: Iterable[str], n: int = 5) -> list[str]:
    """Existing topic names close to a mistyped `name` (for the error message of `tail`)."""
    names = sorted(t for t in existing if not t.startswith("__"))
    return difflib.get_close_matches(name, names, n=n, cutoff=0.5)


async def list_topics(settings: Settings, timeout: float = 20.0) -> set[str]:
    """Names of the topics that exist, from a metadata request that never auto-creates a topic."""
    admin = await _admin(settings, timeout)
    try:
        return set(await admin.list_topics())
    finally:
        await admin.close()


async def _admin(settings: Settings, timeout: float) -> Any:
    """A started admin client, or ConnectionError naming the address and what to do."""
    admin = AIOKafkaAdminClient(**settings.aiokafka_kwargs(), request_timeout_ms=int(timeout * 1000))
    try:
        await asyncio.wait_for(admin.start(), timeout)
    except Exception as err:
        await admin.close()
        raise ConnectionError(
            f"cannot reach Kafka at {settings.bootstrap_servers}: {err!r}; start `distillery broker` "
            "or set KAFKA_BOOTSTRAP_SERVERS"
        ) from err
    return admin


async def ensure_topics(settings: Settings, names: Sequence[str], timeout: float = 20.0) -> list[str]:
    """Create the topics that do not exist yet with `settings.partitions` and `topic_configs`; return the ones
    created.

    Topics are created explicitly because some brokers (Tansu) auto-create with a fixed partition count.
    """
    admin = await _admin(settings, timeout)
    try:
        existing = set(await admin.list_topics())
        missing = [n for n in dict.fromkeys(names) if n not in existing]
        await _warn_uncompacted(admin, settings, [n for n in names if n in existing])
        if not missing:
            return []
        new = [NewTopic(n, settings.partitions, settings.replication_factor, topic_configs=topic_configs(settings, n))
               for n in missing]
        response = await admin.create_topics(new)
        for topic, code, message in _topic_errors(response):
            if code not in (0, TOPIC_EXISTS):
                raise RuntimeError(f"cannot create topic {topic!r}: error {code} {message}")
        return missing
    finally:
        await admin.close()


async def _warn_uncompacted(admin: Any, settings: Settings, names: Sequence[str]) -> list[str]:
    """Log one warning per existing result topic that is not compacted (topics are never altered here); returns
    them. A broker that cannot describe configs is skipped silently: this is advice, not a check that may fail."""
    results = [n for n in names if Topics(settings.topic_prefix).is_result(n)]
    if not results:
        return []
    try:
        responses = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, n) for n in results])
        policies = {r[3]: {e[0]: e[1] for e in r[4]}.get("cleanup.policy", "delete")
                    for response in responses for r in response.resources}
    except Exception:  # noqa: BLE001 - advice only
        return []
    wrong = [n for n in results if "compact" not in str(policies.get(n, "delete"))]
    for name in wrong:
        log.warning("topic %s exists with cleanup.policy=%s; result topics should be compacted (consumers upsert by "
                    "key): kafka-configs.sh --alter --entity-type topics --entity-name %s --add-config "
                    "cleanup.policy=compact", name, policies.get(name, "delete"), name)
    return wrong


def _topic_errors(response: object) -> list[tuple[str, int, str | None]]:
    errors = getattr(response, "topic_errors", []) or []
    return [(e[0], int(e[1]), e[2] if len(e) > 2 else None) for e in errors]


def trained_filters() -> list[str]:
    """Filters whose newest shipped version has trained artifacts: the ones a worker without --filters serves."""
    names = []
    for name in sorted(available()):
        try:
            spec = resolve_spec(name)
        except Exception:  # a broken spec is the worker's error to report, not the topic initialiser's
            continue
        if (spec.artifacts_dir / "manifest.json").is_file():
            names.append(spec.name)
    return names


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m streams.topics [--filters a,b]`: create the deployment's missing topics with their configs
    (the one-shot topic-init service of docker-compose.yml); settings from the environment like a worker."""
    parser = argparse.ArgumentParser(prog="python -m streams.topics", description=main.__doc__)
    parser.add_argument("--filters", default="", help="comma-separated filters (default: every trained filter)")
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
    except SettingsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # its retries would add lines around the one error
    filters = [f.strip() for f in args.filters.split(",") if f.strip()] or trained_filters()
    names = Topics(settings.topic_prefix).all(filters)
    try:
        created = asyncio.run(ensure_topics(settings, names))
    except (ConnectionError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    for name in names:
        state = "created" if name in created else "exists"
        print(f"{name}\t{state}\t{','.join(f'{k}={v}' for k, v in topic_configs(settings, name).items())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
