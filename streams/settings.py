"""Worker settings from the environment: Kafka address and security, topic prefix and partitions, batching, metrics."""

from __future__ import annotations

import os
import ssl
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

ENV_PREFIXES = {
    # field name -> environment variable
    "bootstrap_servers": "KAFKA_BOOTSTRAP_SERVERS",
    "security_protocol": "KAFKA_SECURITY_PROTOCOL",
    "sasl_mechanism": "KAFKA_SASL_MECHANISM",
    "sasl_username": "KAFKA_SASL_USERNAME",
    "sasl_password": "KAFKA_SASL_PASSWORD",
    "ssl_cafile": "KAFKA_SSL_CAFILE",
    "ssl_certfile": "KAFKA_SSL_CERTFILE",
    "ssl_keyfile": "KAFKA_SSL_KEYFILE",
    "topic_prefix": "DISTILLERY_TOPIC_PREFIX",
    "partitions": "DISTILLERY_PARTITIONS",
    "replication_factor": "DISTILLERY_REPLICATION_FACTOR",
    "batch_size": "DISTILLERY_BATCH_SIZE",
    "batch_within": "DISTILLERY_BATCH_WITHIN",
    "stage2_batch_size": "DISTILLERY_STAGE2_BATCH_SIZE",
    "dedupe_size": "DISTILLERY_DEDUPE_SIZE",
    "metrics_host": "DISTILLERY_METRICS_HOST",
    "metrics_port": "DISTILLERY_METRICS_PORT",
    "data_dir": "DISTILLERY_DATA_DIR",
    "device": "DISTILLERY_DEVICE",
    "group_id": "DISTILLERY_GROUP_ID",
    "auto_offset_reset": "DISTILLERY_AUTO_OFFSET_RESET",
    "broker_unreachable_timeout": "DISTILLERY_BROKER_UNREACHABLE_TIMEOUT",
    "shutdown_timeout": "DISTILLERY_SHUTDOWN_TIMEOUT",
    "health_port": "DISTILLERY_HEALTH_PORT",
    "retention_ms": "DISTILLERY_RETENTION_MS",
}


class SettingsError(ValueError):
    """A setting from the environment that cannot be used; the message names the variable."""


class Settings(BaseModel):
    """Everything a worker, producer or tail needs to reach Kafka; every field has an environment variable."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    bootstrap_servers: str = "127.0.0.1:9092"
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    sasl_username: str = ""
    sasl_password: str = ""
    ssl_cafile: str = ""
    ssl_certfile: str = ""
    ssl_keyfile: str = ""
    topic_prefix: str = ""
    partitions: int = Field(default=3, ge=1)
    replication_factor: int = Field(default=1, ge=1)
    batch_size: int = Field(default=32, ge=1)  # articles per prefilter/probe batch
    batch_within: float = Field(default=0.25, gt=0)  # seconds to wait for a batch to fill
    stage2_batch_size: int = Field(default=16, ge=1)
    dedupe_size: int = Field(default=100_000, ge=1)
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(default=0, ge=0, le=65535)  # 0 = no /metrics endpoint
    data_dir: str = ""  # faust's local state; empty = a fresh temporary folder
    device: str = ""  # torch device for Stage 2; empty = GPU when present
    group_id: str = ""  # consumer group; empty = derived from prefix, roles and filters
    auto_offset_reset: Literal["latest", "earliest"] = "latest"  # where a NEW consumer group starts
    broker_unreachable_timeout: float = Field(default=60.0, gt=0)  # seconds without the broker -> exit 70
    shutdown_timeout: float = Field(default=5.0, gt=0)  # SIGTERM -> exit within this many seconds
    health_port: int = Field(default=0, ge=0, le=65535)  # /healthz and /readyz on metrics_host; 0 = off
    retention_ms: int = Field(default=604_800_000, ge=-1)  # retention.ms of non-result topics (-1 = forever)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides: Any) -> Settings:
        """Read every field from its environment variable (see ENV_PREFIXES); keyword overrides win."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {f: env[var] for f, var in ENV_PREFIXES.items() if env.get(var, "") != ""}
        values.update({k: v for k, v in overrides.items() if v is not None})
        try:
            return cls(**values)
        except ValidationError as err:
            problems = "; ".join(
                f"{ENV_PREFIXES.get(str(e['loc'][0]), e['loc'][0])}: {e['msg']}" for e in err.errors()
            )
            raise SettingsError(f"invalid Kafka/worker settings: {problems}") from None

    @property
    def bootstrap_list(self) -> list[str]:
        return [s.strip() for s in self.bootstrap_servers.split(",") if s.strip()]

    def ssl_context(self) -> ssl.SSLContext | None:
        """TLS context for SSL / SASL_SSL, from the CA and client certificate files."""
        if "SSL" not in self.security_protocol:
            return None
        ctx = ssl.create_default_context(cafile=self.ssl_cafile or None)
        if self.ssl_certfile:
            ctx.load_cert_chain(self.ssl_certfile, self.ssl_keyfile or None)
        return ctx

    def aiokafka_kwargs(self) -> dict[str, Any]:
        """Connection keyword arguments for aiokafka producers, consumers and the admin client."""
        kwargs: dict[str, Any] = {"bootstrap_servers": self.bootstrap_list, "security_protocol": self.security_protocol}
        if self.security_protocol.startswith("SASL"):
            kwargs.update(
                sasl_mechanism=self.sasl_mechanism,
                sasl_plain_username=self.sasl_username,
                sasl_plain_password=self.sasl_password,
            )
        context = self.ssl_context()
        if context is not None:
            kwargs["ssl_context"] = context
        return kwargs

    def faust_credentials(self) -> Any:
        """faust `broker_credentials` for the configured security protocol (None for PLAINTEXT)."""
        import faust

        if self.security_protocol == "PLAINTEXT":
            return None
        if self.security_protocol == "SSL":
            return faust.SSLCredentials(self.ssl_context())
        return faust.SASLCredentials(
            username=self.sasl_username,
            password=self.sasl_password,
            mechanism=self.sasl_mechanism,
            ssl_context=self.ssl_context(),
        )

    def faust_broker(self) -> str:
        return ";".join(f"kafka://{server}" for server in self.bootstrap_list)
