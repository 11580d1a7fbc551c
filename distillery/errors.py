"""The one CLI error path: every command failure becomes one line on stderr and one of three exit codes.

| code | meaning |
|---|---|
| 0 | success |
| 1 | a check ran and failed (e.g. `filters validate` found invalid specs, the demo missed an outcome) |
| 2 | a usage or input mistake: bad flag, missing or malformed file, invalid spec, bad setting |
| 70 | an internal or broker failure: Kafka unreachable, a port taken, a bug (EX_SOFTWARE) |

Exceptions are classified by the names of the classes in their MRO, so the shell needs no import of a heavy
package (torch comes with models.pipeline) just to recognise that package's error.
"""

from __future__ import annotations

import os
import sys
import traceback
from typing import Any, NoReturn

import typer
from typer.core import TyperGroup

EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 70

DEBUG_ENV = "DISTILLERY_DEBUG"

# Package roots (filters.errors.FiltersError, models.errors.ModelsError, monitoring.errors.MonitoringError) and the
# specific classes that exist before every package's errors subclass its root. All are input mistakes.
USAGE_ERRORS = frozenset({
    "FiltersError", "ModelsError", "MonitoringError", "SettingsError", "SecurityError",
    "SpecError", "ArticleError",
    "ArtifactError", "PipelineError", "DataError", "DataFileError", "PrepareError", "ActiveError", "BatchError",
    "LabelingError", "ProviderError", "StudentError", "EncoderError",
    "MonitorReferenceError", "StateError", "TopicNotFoundError",
    "FileNotFoundError", "IsADirectoryError", "NotADirectoryError", "PermissionError", "UnicodeDecodeError",
})
# Failures of the outside world the worker or a client depends on: the broker, a port, the network.
INTERNAL_ERRORS = frozenset({
    "BrokerError", "ConnectionError", "KafkaError", "KafkaConnectionError", "OracleCallError", "MetricsPortError",
    "TimeoutError",
})


class CliError(Exception):
    """A failure a command reports itself: `message` is the one line, `code` one of the EXIT_* codes."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.exit_code = code


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """Stop the command with `error: <message>` on stderr and `code` (2 = input mistake unless told)."""
    raise CliError(message, code)


def exit_code_for(err: BaseException) -> int | None:
    """The exit code of a known failure, or None for an unexpected exception (a bug)."""
    if isinstance(err, CliError):
        return err.exit_code
    names = {cls.__name__ for cls in type(err).__mro__}
    if names & INTERNAL_ERRORS:
        return EXIT_INTERNAL
    if names & USAGE_ERRORS:
        return EXIT_USAGE
    if isinstance(err, OSError):  # e.g. "address already in use" from a server socket
        return EXIT_INTERNAL
    return None


def one_line(err: BaseException) -> str:
    """The exception's message on one line (multi-line messages keep their lines, indented)."""
    text = str(err).strip() or type(err).__name__
    return text.replace("\n", "\n  ")


class ShellGroup(TyperGroup):
    """The root command group: turns any exception escaping a command into `error: ...` and an exit code."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.TyperException, typer.Exit, typer.Abort):
            raise  # typer's own: usage errors (exit 2, with the usage line), explicit exits
        except KeyboardInterrupt:
            typer.echo("interrupted", err=True)
            raise typer.Exit(130) from None
        except Exception as err:
            code = exit_code_for(err)
            if code is None:
                # A bug: keep the traceback (it is what a maintainer needs), then one line for the user.
                traceback.print_exc(file=sys.stderr)
                typer.echo(f"internal error: {type(err).__name__}: {one_line(err)} (please report it with the "
                           "traceback above)", err=True)
                raise typer.Exit(EXIT_INTERNAL) from None
            if os.environ.get(DEBUG_ENV):
                traceback.print_exc(file=sys.stderr)
            typer.echo(f"error: {one_line(err)}", err=True)
            raise typer.Exit(code) from None
