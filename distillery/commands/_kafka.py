"""Kafka access for the shell's client commands: settings from the environment and one-line broker failures."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Iterator
from contextlib import contextmanager

from distillery.errors import EXIT_INTERNAL, EXIT_USAGE, fail
from streams.security import SecurityError, check_security
from streams.settings import ENV_PREFIXES, Settings, SettingsError

# aiokafka logs every refused connection and asyncio reports the client a failed start left open: both would
# print extra lines around the one-line error, so client commands keep them quiet while they talk to the broker.
NOISY_LOGGERS = ("aiokafka", "asyncio")


def settings() -> Settings:
    """Settings from the environment with their security checked; a bad variable is an input mistake (exit 2)."""
    try:
        current = Settings.from_env()
        check_security(current, ENV_PREFIXES)  # every Kafka command of the shell checks security here, at start
    except (SettingsError, SecurityError) as err:
        fail(str(err), EXIT_USAGE)
    return current


@contextmanager
def broker_errors(current: Settings) -> Iterator[None]:
    """Turn "the broker cannot be reached" (aiokafka's KafkaError, refused sockets) into one line and exit 70."""
    loggers = [logging.getLogger(name) for name in NOISY_LOGGERS]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    try:
        yield
    except (OSError, RuntimeError) as err:  # aiokafka's KafkaError derives from RuntimeError
        names = {cls.__name__ for cls in type(err).__mro__}
        if not names & {"KafkaError", "OSError"}:
            raise
        if err.__traceback__ is not None:
            traceback.clear_frames(err.__traceback__)  # free the half-started client now, while its logs are quiet
        if isinstance(err, ConnectionError):  # streams' own message: it names the address and the fix
            message = str(err)
        else:
            message = (f"cannot reach Kafka at {current.bootstrap_servers}: {err}; "
                       "start `distillery broker` or set KAFKA_BOOTSTRAP_SERVERS")
        fail(message, EXIT_INTERNAL)
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)
