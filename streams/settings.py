"""The one settings tree of a worker, read from the environment at process entry: Kafka address and security,
topics, batching, payload limits, faust tuning, threads, monitor and spot-check. Lower layers (models, monitoring)
never read the environment: they get the plain config objects built here (PayloadLimits, MonitorConfig, ...)."""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from models.payload import PayloadLimits
from monitoring.config import MonitorConfig
from streams.errors import StreamsError

if TYPE_CHECKING:
    from monitoring.metrics import Metrics
    from monitoring.spotcheck import SpotCheckRunner

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
    "max_article_bytes": "DISTILLERY_MAX_ARTICLE_BYTES",
    "max_json_depth": "DISTILLERY_MAX_JSON_DEPTH",
    "max_record_bytes": "DISTILLERY_MAX_RECORD_BYTES",
    "broker_unreachable_timeout": "DISTILLERY_BROKER_UNREACHABLE_TIMEOUT",
    "shutdown_timeout": "DISTILLERY_SHUTDOWN_TIMEOUT",
    "health_port": "DISTILLERY_HEALTH_PORT",
    "retention_ms": "DISTILLERY_RETENTION_MS",
    "pipeline_factory": "DISTILLERY_PIPELINE_FACTORY",
    "student": "DISTILLERY_STUDENT",
    "embedding_model": "DISTILLERY_EMBEDDING_MODEL",
}
# nested groups: field `faust.session_timeout` <- DISTILLERY_FAUST_SESSION_TIMEOUT, and so on
GROUP_PREFIXES = {
    "faust": "DISTILLERY_FAUST_",
    "threads": "DISTILLERY_THREADS_",
    "monitor": "DISTILLERY_MONITOR_",
    "spotcheck": "DISTILLERY_SPOTCHECK_",
}


class FaustTuning(BaseModel):
    """faust consumer/producer tuning: join a group in seconds, commit every second; a NEW consumer group starts at
    `auto_offset_reset` (DISTILLERY_FAUST_AUTO_OFFSET_RESET): `latest`, so a worker joining a running deployment or
    changing roles does not replay the topic history; the demo and the tests set `earliest`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rebalance_timeout: float = Field(default=6.0, gt=0)
    session_timeout: float = Field(default=6.0, gt=0)
    heartbeat_interval: float = Field(default=1.0, gt=0)
    commit_interval: float = Field(default=1.0, gt=0)
    commit_every: int = Field(default=100, ge=1)
    producer_acks: Literal[-1, 0, 1] = -1
    auto_offset_reset: Literal["earliest", "latest"] = "latest"

    def app_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of faust.App for these settings."""
        return {
            "broker_rebalance_timeout": self.rebalance_timeout, "broker_session_timeout": self.session_timeout,
            "broker_heartbeat_interval": self.heartbeat_interval, "broker_commit_interval": self.commit_interval,
            "broker_commit_every": self.commit_every, "producer_acks": self.producer_acks,
            "consumer_auto_offset_reset": self.auto_offset_reset,
        }


class ThreadSettings(BaseModel):
    """The process's thread policy, applied once at process entry (`apply`), never by library code."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    torch: int = Field(default=2, ge=1)  # intra-op threads of torch (model thread work; small matmuls)
    tokenizers_parallelism: bool = False
    hf_offline: bool = True  # models come from the local cache; a worker never downloads

    def apply(self, environ: Any = None) -> None:
        """Set the process environment (HF_HUB_OFFLINE, TOKENIZERS_PARALLELISM) and torch's thread count."""
        env = os.environ if environ is None else environ
        if self.hf_offline:
            env.setdefault("HF_HUB_OFFLINE", "1")
        env.setdefault("TOKENIZERS_PARALLELISM", "true" if self.tokenizers_parallelism else "false")
        try:
            import torch  # lazy: torch takes seconds to import; only processes that run models set its threads
        except ImportError:
            return
        torch.set_num_threads(self.torch)


class MonitorSettings(BaseModel):
    """The monitor agent: where and how often it writes its state; detector overrides for MonitorConfig."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    state: str = ""  # DISTILLERY_MONITOR_STATE; empty = $XDG_STATE_HOME/distillery/monitor_state.json
    state_home: str = ""  # XDG_STATE_HOME (read by Settings.from_env); empty = ~/.local/state
    state_interval: float = Field(default=5.0, gt=0)
    detector: dict[str, str] = Field(default_factory=dict)  # MonitorConfig field -> value (DISTILLERY_MONITOR_<F>)

    def config(self) -> MonitorConfig:
        """The plain monitoring MonitorConfig for these settings; a bad value names its variable."""
        labels = {k: GROUP_PREFIXES["monitor"] + k.upper() for k in self.detector}
        return MonitorConfig.from_mapping(dict(self.detector), labels=labels)

    def state_path(self) -> Path:
        """The monitor's state file."""
        from monitoring.state import default_state_path  # lazy: numpy & co.; keeps the 10 s healthcheck ~0.2 s

        return default_state_path(self.state or None, self.state_home or None)


class SpotCheckSettings(BaseModel):
    """The oracle spot-check of the monitor (off unless a provider is set)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    provider: str = ""
    model: str = ""
    k: int = Field(default=20, ge=1)
    period: float = Field(default=3_600.0, gt=0)
    margin: float = Field(default=0.3, ge=0)

    @model_validator(mode="after")
    def _model_with_provider(self) -> SpotCheckSettings:
        if self.provider and not self.model:
            raise ValueError(f"{GROUP_PREFIXES['spotcheck']}PROVIDER={self.provider} needs "
                             f"{GROUP_PREFIXES['spotcheck']}MODEL (the oracle's model id)")
        return self

    def runner(self, filters: Sequence[str], heldout_mae: Mapping[str, float],
               metrics: Metrics | None = None) -> SpotCheckRunner | None:
        """The spot-check runner for these settings; None when no provider is set."""
        if not self.provider:
            return None
        # lazy: the oracle client and prometheus would triple `python -m streams.health` (Docker's 10 s check)
        from monitoring.spotcheck import SpotCheckRunner

        return SpotCheckRunner.build(filters, heldout_mae, provider=self.provider, model=self.model, k=self.k,
                                     period_s=self.period, margin=self.margin, metrics=metrics)


def _variable(loc: tuple[Any, ...]) -> str:
    """The environment variable of a validation error's location (`('faust', 'commit_every')` -> its variable)."""
    if loc and loc[0] in GROUP_PREFIXES and len(loc) > 1:
        return f"{GROUP_PREFIXES[str(loc[0])]}{str(loc[1]).upper()}"
    return ENV_PREFIXES.get(str(loc[0]), str(loc[0])) if loc else "settings"


class SettingsError(StreamsError, ValueError):
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
    max_article_bytes: int = Field(default=512 * 1024, ge=1024)  # larger input messages go to the DLQ (too_large)
    max_json_depth: int = Field(default=32, ge=2, le=200)  # deeper input JSON -> DLQ (too_deep); orjson writes < 255
    max_record_bytes: int = Field(default=1_000_000, ge=10_000)  # the producer's limit; larger outputs are DLQ'd
    embedding_model: str = ""  # the shared embedding to TRAIN on; empty = models.embedding.DEFAULT_MODEL_ID
    student: str = "auto"  # the Stage-2 student: auto (Gemma on CUDA, MiniLM on CPU) or a name (models/student_select)
    pipeline_factory: str = ""  # "module:callable" replacing models.pipeline.Pipeline.load (tests)
    faust: FaustTuning = Field(default_factory=FaustTuning)
    threads: ThreadSettings = Field(default_factory=ThreadSettings)
    monitor: MonitorSettings = Field(default_factory=MonitorSettings)
    spotcheck: SpotCheckSettings = Field(default_factory=SpotCheckSettings)
    broker_unreachable_timeout: float = Field(default=60.0, gt=0)  # seconds without the broker -> exit 70
    shutdown_timeout: float = Field(default=5.0, gt=0)  # SIGTERM -> exit within this many seconds
    health_port: int = Field(default=0, ge=0, le=65535)  # /healthz and /readyz on metrics_host; 0 = off
    retention_ms: int = Field(default=604_800_000, ge=-1)  # retention.ms of non-result topics (-1 = forever)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read every field from its environment variable (ENV_PREFIXES, and GROUP_PREFIXES + FIELD for the nested
        groups); keyword overrides win."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {f: env[var] for f, var in ENV_PREFIXES.items() if env.get(var, "") != ""}
        for group, prefix in GROUP_PREFIXES.items():
            model = cls.model_fields[group].annotation
            names = set(getattr(model, "model_fields", {}))
            found = {k[len(prefix):].lower(): v for k, v in env.items() if k.startswith(prefix) and v != ""}
            if group == "monitor":  # every other DISTILLERY_MONITOR_<FIELD> is a detector override
                nested: dict[str, Any] = {k: v for k, v in found.items() if k in names and k != "xdg_state_home"}
                detector = {k: v for k, v in found.items() if k not in names}
                if detector:
                    nested["detector"] = detector
                if env.get("XDG_STATE_HOME"):
                    nested["state_home"] = env["XDG_STATE_HOME"]
            else:
                nested = {k: v for k, v in found.items() if k in names}
            if nested:
                values[group] = nested
        values.update({k: v for k, v in overrides.items() if v is not None})
        try:
            return cls(**values)
        except ValidationError as err:
            problems = "; ".join(f"{_variable(e['loc'])}: {e['msg']}" for e in err.errors())
            raise SettingsError(f"invalid Kafka/worker settings: {problems}") from None

    def payload_limits(self) -> PayloadLimits:
        """The pipeline's limits on one input message."""
        return PayloadLimits(max_bytes=self.max_article_bytes, max_depth=self.max_json_depth)

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
        import faust  # lazy: faust is heavy and only a worker needs its credentials; --help must not load it

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
