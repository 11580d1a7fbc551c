"""Start-up checks of the Kafka security settings: missing credentials and unreadable CA/cert/key files.

Called once when settings are read (`check_security(settings, ENV_PREFIXES)`), so a worker or client fails at start
with one line naming the variable and the file, instead of a TLS or SASL error from deep inside aiokafka minutes
later. It imports nothing from streams.settings, so Settings.from_env can call it without an import cycle.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Protocol

from streams.errors import StreamsError


class SecurityError(StreamsError, ValueError):
    """Kafka security settings that cannot work; the message names each variable and file and the fix."""


class SecuritySettings(Protocol):
    """The fields of streams.settings.Settings this module reads (read-only)."""

    @property
    def security_protocol(self) -> str: ...
    @property
    def sasl_mechanism(self) -> str: ...
    @property
    def sasl_username(self) -> str: ...
    @property
    def sasl_password(self) -> str: ...
    @property
    def ssl_cafile(self) -> str: ...
    @property
    def ssl_certfile(self) -> str: ...
    @property
    def ssl_keyfile(self) -> str: ...


def _namer(env_names: Mapping[str, str] | None) -> Callable[[str], str]:
    """Field name -> the variable a user sets (`env_names`, e.g. streams.settings.ENV_PREFIXES; else the field)."""
    return lambda field: (env_names or {}).get(field, field)


def _file_problem(var: str, value: str) -> str | None:
    """Why the file `value` (set by variable `var`) cannot be used, or None when it is a readable file."""
    path = Path(value).expanduser()
    if not path.exists():
        return f"{var}={value}: no such file; point it at the PEM file"
    if not path.is_file():
        return f"{var}={value}: not a file; point it at the PEM file"
    if not os.access(path, os.R_OK):
        return f"{var}={value}: not readable by this user; fix its permissions"
    return None


def security_problems(settings: SecuritySettings, env_names: Mapping[str, str] | None = None) -> list[str]:
    """Every problem of the security settings, one line each (empty when they can work)."""
    _var = _namer(env_names)
    problems: list[str] = []
    protocol = settings.security_protocol
    if protocol.startswith("SASL"):
        for field in ("sasl_username", "sasl_password"):
            if not getattr(settings, field):
                problems.append(f"{_var(field)} is empty but {_var('security_protocol')}={protocol} "
                                f"({settings.sasl_mechanism}) needs it")
    files = ("ssl_cafile", "ssl_certfile", "ssl_keyfile")
    if "SSL" in protocol:
        for field in files:
            value = getattr(settings, field)
            problem = _file_problem(_var(field), value) if value else None
            if problem:
                problems.append(problem)
        if settings.ssl_keyfile and not settings.ssl_certfile:
            problems.append(f"{_var('ssl_keyfile')} is set without {_var('ssl_certfile')}: "
                            "a client key needs its certificate")
        if not problems:
            problems.extend(_tls_problems(settings, _var))
    else:
        stray = [_var(f) for f in files if getattr(settings, f)]
        if stray:
            problems.append(f"{', '.join(stray)} set but {_var('security_protocol')}={protocol} does not use TLS; "
                            "set it to SSL or SASL_SSL, or unset them")
    return problems


def _tls_problems(settings: SecuritySettings, _var: Callable[[str], str]) -> list[str]:
    """Load the CA and client certificate the way the clients will, naming the file that fails."""
    try:
        ssl.create_default_context(cafile=settings.ssl_cafile or None)
    except (ssl.SSLError, OSError) as err:
        return [f"{_var('ssl_cafile')}={settings.ssl_cafile}: not a usable CA certificate ({err})"]
    if settings.ssl_certfile:
        try:
            ssl.create_default_context().load_cert_chain(settings.ssl_certfile, settings.ssl_keyfile or None)
        except (ssl.SSLError, OSError) as err:
            files = settings.ssl_certfile + (f" / {settings.ssl_keyfile}" if settings.ssl_keyfile else "")
            return [f"{_var('ssl_certfile')}/{_var('ssl_keyfile')} ({files}): not a usable certificate and key "
                    f"({err})"]
    return []


def check_security(settings: SecuritySettings, env_names: Mapping[str, str] | None = None) -> None:
    """Nothing when the security settings can work; SecurityError listing every problem otherwise."""
    problems = security_problems(settings, env_names)
    if problems:
        raise SecurityError("invalid Kafka security settings: " + "; ".join(problems))
