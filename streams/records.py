"""Wire records: orjson encoding of the pipeline records with a `schema_version` on every message."""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime
from typing import Any

import numpy as np
import orjson

from models.records import Prepared, Rejection, Result, Stage2Request

SCHEMA_VERSION = 1
_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


class WireError(ValueError):
    """A message that is not a JSON object of the expected kind; the message says what was wrong."""


def _default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return str(value)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def encode(kind: str, body: dict[str, Any]) -> bytes:
    """One record as JSON bytes: `schema_version` and `kind` first, then the body."""
    return orjson.dumps({"schema_version": SCHEMA_VERSION, "kind": kind, **body}, default=_default, option=_OPTIONS)


def encode_json(value: Any) -> bytes:
    """Any JSON-able value (used by `produce` for input articles, which carry no schema_version)."""
    return orjson.dumps(value, default=_default, option=_OPTIONS)


def decode(data: bytes | str, kind: str | None = None) -> dict[str, Any]:
    """Parse one record; with `kind`, also check that it is that kind of record and a known schema version."""
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as err:
        raise WireError(f"not valid JSON: {err}") from None
    if not isinstance(value, dict):
        raise WireError(f"expected a JSON object, got {type(value).__name__}")
    if kind is not None:
        if value.get("kind") != kind:
            raise WireError(f"expected a {kind!r} record, got kind={value.get('kind')!r}")
        version = value.get("schema_version")
        if not isinstance(version, int) or version > SCHEMA_VERSION:
            raise WireError(f"unsupported schema_version {version!r} (this worker reads <= {SCHEMA_VERSION})")
    return value


def payload_text(payload: Any) -> tuple[str, str]:
    """The original message as (text, encoding): UTF-8 text when possible, else base64."""
    if isinstance(payload, (bytes, bytearray, memoryview)):
        raw = bytes(payload)
        try:
            return raw.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            return base64.b64encode(raw).decode("ascii"), "base64"
    if isinstance(payload, str):
        return payload, "utf-8"
    return encode_json(payload).decode("utf-8"), "json"


# ----- articles.dlq ---------------------------------------------------------------------------------------------


def dlq_record(
    stage: str, error: str, payload: Any, topic: str = "", partition: int = -1, offset: int = -1,
    article_id: str | None = None,
) -> bytes:
    """A typed dead letter: where it failed, why, the original message and where it came from."""
    text, encoding = payload_text(payload)
    return encode("dead_letter", {
        "stage": stage,
        "error": error,
        "article_id": article_id,
        "payload": text,
        "payload_encoding": encoding,
        "source": {"topic": topic, "partition": partition, "offset": offset},
        "failed_at": now_iso(),
    })


def dlq_key(article_id: str | None, topic: str, partition: int, offset: int) -> bytes:
    return (article_id or f"{topic}:{partition}:{offset}").encode()


# ----- articles.blocked -----------------------------------------------------------------------------------------


def blocked_record(rejection: Rejection) -> bytes:
    """A commerce or duplicate decision with its reason (the article itself is not repeated)."""
    payload = rejection.payload
    if isinstance(payload, (bytes, bytearray, str)):
        try:
            payload = orjson.loads(payload)
        except orjson.JSONDecodeError:
            payload = {}
    payload = payload if isinstance(payload, dict) else {}
    return encode("blocked", {
        "article_id": rejection.article_id,
        "decision": rejection.kind,
        "reason": rejection.reason,
        "title": str(payload.get("title", "")),
        "url": str(payload.get("url", "")),
        "blocked_at": now_iso(),
    })


# ----- articles.embedded ----------------------------------------------------------------------------------------


def _vector_to_wire(vector: np.ndarray) -> str:
    return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")


def _vector_from_wire(text: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype="<f4").astype(np.float32)


def embedded_record(prepared: Prepared, received_at: float) -> bytes:
    """Cleaned article, content hash and its one embedding (float32 little-endian, base64)."""
    return encode("embedded", {
        "article": prepared.article,
        "content_hash": prepared.content_hash,
        "embedding": _vector_to_wire(prepared.embedding),
        "embedding_dim": int(np.asarray(prepared.embedding).shape[-1]),
        "commerce_probability": prepared.commerce_probability,
        "received_at": received_at,
    })


def embedded_from_wire(data: bytes) -> tuple[Prepared, float]:
    """(Prepared, received_at) from an `embedded` record."""
    value = decode(data, "embedded")
    try:
        vector = _vector_from_wire(value["embedding"])
        if vector.shape[0] != value["embedding_dim"]:
            raise WireError(f"embedding has {vector.shape[0]} values, record says {value['embedding_dim']}")
        prepared = Prepared(
            article=value["article"],
            content_hash=value["content_hash"],
            embedding=vector,
            commerce_probability=value.get("commerce_probability"),
        )
    except (KeyError, TypeError, ValueError) as err:
        raise WireError(f"malformed embedded record: {err!r}") from None
    return prepared, float(value.get("received_at") or time.time())


# ----- stage2.requests ------------------------------------------------------------------------------------------


def stage2_record(request: Stage2Request) -> bytes:
    """One (article, filter) pair that the filter's router sent to Stage 2, with the probe's scores."""
    return encode("stage2_request", {
        "article": request.article,
        "filter": request.filter,
        "filter_version": request.filter_version,
        "probe_scores": request.probe_scores,
        "probe_weighted_average": request.probe_weighted_average,
        "route_score": request.route_score,
        "received_at": request.received_at,
        "tier_logits": request.tier_logits,  # the tier model's Stage-1 logits (null without a tier model)
    })


def stage2_from_wire(data: bytes) -> Stage2Request:
    value = decode(data, "stage2_request")
    try:
        return Stage2Request(
            article=value["article"],
            filter=value["filter"],
            filter_version=int(value["filter_version"]),
            probe_scores={k: float(v) for k, v in value["probe_scores"].items()},
            probe_weighted_average=float(value["probe_weighted_average"]),
            route_score=float(value["route_score"]),
            received_at=float(value["received_at"]),
            tier_logits=None if value.get("tier_logits") is None else [float(v) for v in value["tier_logits"]],
        )
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise WireError(f"malformed stage2_request record: {err!r}") from None


def stage2_key(request: Stage2Request) -> bytes:
    return f"{request.article.get('id')}:{request.filter}:{request.filter_version}".encode()


# ----- scores.<filter> ------------------------------------------------------------------------------------------


def result_record(result: Result) -> bytes:
    """The published result; consumers key on `{article_id}:{filter}:{filter_version}` (see docs/streaming.md)."""
    return encode("result", result.as_dict())


def result_key(result: Result) -> bytes:
    return result.key.encode()


def result_from_wire(data: bytes) -> Result:
    value = decode(data, "result")
    fields = {k: v for k, v in value.items() if k in Result.__dataclass_fields__}
    try:
        return Result(**fields)
    except TypeError as err:
        raise WireError(f"malformed result record: {err}") from None
