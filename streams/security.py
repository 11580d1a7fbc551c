"""Start-up checks of the Kafka security settings: missing credentials and unreadable CA/cert/key files.

Called once when settings are read (`check_security(settings)`), so a worker or client fails at start with one
line naming the variable and the file, instead of a TLS or SASL error from deep inside aiokafka minutes later.
"""

from __future__ import annotations

import os
import ssl
from pathlib import Path

from streams.settings import ENV_PREFIXES, Settings, SettingsError


class SecurityError(SettingsError):
    """Kafka security settings that cannot work; the message names each variable and file and the fix."""


def _var(field: str) -> str:
    return ENV_PREFIXES[field]


def _file_problem(field: str, value: str) -> str | None:
    """Why the file named by `field` cannot be used, or None when it is a readable file."""
    path = Path(value).expanduser()
    if not path.exists():
        return f"{_var(field)}={value}: no such file; point it at the PEM file"
    if not path.is_file():
        return f"{_var(field)}={value}: not a file; point it at the PEM file"
    if not os.access(path, os.R_OK):
        return f"{_var(field)}={value}: not readable by this user; fix its permissions"
    return None


def security_problems(settings: Settings) -> list[str]:
    """Every problem of the security settings, one line each (empty when they can work)."""
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
            problem = _file_problem(field, value) if value else None
            if problem:
                problems.append(problem)
        if settings.ssl_keyfile and not settings.ssl_certfile:
            problems.append(f"{_var('ssl_keyfile')} is set without {_var('ssl_certfile')}: "
                            "a client key needs its certificate")
        if not problems:
            problems.extend(_tls_problems(settings))
    else:
        stray = [_var(f) for f in files if getattr(settings, f)]
        if stray:
            problems.append(f"{', '.join(stray)} set but {_var('security_protocol')}={protocol} does not use TLS; "
                            "set it to SSL or SASL_SSL, or unset them")
    return problems


def _tls_problems(settings: Settings) -> list[str]:
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


def check_security(settings: Settings) -> Settings:
    """`settings` unchanged when its security settings can work; SecurityError listing every problem otherwise."""
    problems = security_problems(settings)
    if problems:
        raise SecurityError("invalid Kafka security settings: " + "; ".join(problems))
    return settings
