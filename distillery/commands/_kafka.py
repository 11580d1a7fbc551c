"""Kafka access for the shell's client commands: settings from the environment and one-line broker failures."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from distillery.errors import EXIT_INTERNAL, EXIT_USAGE, fail, one_line
from streams.security import check_security
from streams.settings import Settings, SettingsError


def settings() -> Settings:
    """Settings from the environment; a bad variable is an input mistake (exit 2) naming the variable."""
    try:
        return check_security(Settings.from_env())
    except SettingsError as err:
        fail(str(err), EXIT_USAGE)


@contextmanager
def broker_errors(current: Settings) -> Iterator[None]:
    """Turn "the broker cannot be reached" (aiokafka's KafkaError, refused sockets) into one line and exit 70."""
    try:
        yield
    except (OSError, RuntimeError) as err:  # aiokafka's KafkaError derives from RuntimeError
        names = {cls.__name__ for cls in type(err).__mro__}
        if not names & {"KafkaError", "ConnectionError", "OSError"}:
            raise
        fail(f"cannot reach the Kafka broker at {current.bootstrap_servers} (KAFKA_BOOTSTRAP_SERVERS): "
             f"{one_line(err)}; start one with `distillery broker` or point KAFKA_BOOTSTRAP_SERVERS at a running "
             "cluster", EXIT_INTERNAL)
