"""Kafka security settings are checked at start: each problem names the variable and the file."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from streams.security import SecurityError, check_security, security_problems
from streams.settings import ENV_PREFIXES, Settings


def test_plaintext_without_security_settings_is_fine():
    assert security_problems(Settings(), ENV_PREFIXES) == []
    check_security(Settings(), ENV_PREFIXES)


def test_sasl_needs_username_and_password():
    problems = security_problems(Settings(security_protocol="SASL_PLAINTEXT", sasl_username="svc"), ENV_PREFIXES)
    assert problems == ["KAFKA_SASL_PASSWORD is empty but KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT (PLAIN) needs it"]


def test_missing_and_invalid_tls_files_name_the_variable_and_file(tmp_path):
    missing = tmp_path / "ca.pem"
    with pytest.raises(SecurityError, match=f"KAFKA_SSL_CAFILE={missing}: no such file") as err:
        check_security(Settings(security_protocol="SSL", ssl_cafile=str(missing)), ENV_PREFIXES)
    assert isinstance(err.value, ValueError)  # an input mistake: the CLI exits 2
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    problems = security_problems(Settings(security_protocol="SASL_SSL", sasl_username="u", sasl_password="p",
                                          ssl_cafile=str(garbage)), ENV_PREFIXES)
    assert len(problems) == 1 and problems[0].startswith(f"KAFKA_SSL_CAFILE={garbage}: not a usable CA certificate")
    assert security_problems(Settings(security_protocol="SSL", ssl_cafile=str(tmp_path)), ENV_PREFIXES) == [
        f"KAFKA_SSL_CAFILE={tmp_path}: not a file; point it at the PEM file"]


def test_key_without_certificate_and_tls_files_without_tls(tmp_path):
    key = tmp_path / "client.key"
    key.write_text("x")
    problems = security_problems(Settings(security_protocol="SSL", ssl_keyfile=str(key)), ENV_PREFIXES)
    assert problems == ["KAFKA_SSL_KEYFILE is set without KAFKA_SSL_CERTFILE: a client key needs its certificate"]
    problems = security_problems(Settings(ssl_cafile=str(key)), ENV_PREFIXES)
    assert problems == ["KAFKA_SSL_CAFILE set but KAFKA_SECURITY_PROTOCOL=PLAINTEXT does not use TLS; set it to SSL "
                        "or SASL_SSL, or unset them"]


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command to make a test certificate")
def test_a_real_certificate_and_key_pass(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=test",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True, timeout=60)
    settings = Settings(security_protocol="SSL", ssl_cafile=str(cert), ssl_certfile=str(cert), ssl_keyfile=str(key))
    assert security_problems(settings, ENV_PREFIXES) == []
    wrong = Settings(security_protocol="SSL", ssl_cafile=str(cert), ssl_certfile=str(key), ssl_keyfile=str(key))
    (problem,) = security_problems(wrong, ENV_PREFIXES)
    assert problem.startswith(f"KAFKA_SSL_CERTFILE/KAFKA_SSL_KEYFILE ({key} / {key}): not a usable certificate")
