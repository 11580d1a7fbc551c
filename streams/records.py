"""Wire records: orjson encoding of the pipeline records with a `schema_version` on every message, their headers,
and dead letters that always fit under the producer's size limit."""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import orjson

from filters.timeutil import now_iso
from models.records import Prepared, Rejection, Result, Stage2Request
from streams.errors import StreamsError

SCHEMA_VERSION = 1
_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS
CONTENT_TYPE = "application/json"
DEFAULT_MAX_RECORD_BYTES = 1_000_000  # the producer's max_request_size (faust's default): key + value + headers
MAX_ERROR_CHARS = 2_000
# Input headers passed through to every output: W3C trace context, baggage and every `x-*` header
# (x-correlation-id, x-request-id, ...). Matched case-insensitively; see docs/streaming.md "Record headers".
PASS_THROUGH = ("traceparent", "tracestate", "baggage")
ERROR_HEADER_PREFIX = "distillery.errors."

Headers = tuple[tuple[str, bytes], ...]


class WireError(StreamsError, ValueError):
    """A message that is not a JSON object of the expected kind; the message says what was wrong."""


def _default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return str(value)


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


# ----- headers --------------------------------------------------------------------------------------------------


def _is_passed_through(name: str) -> bool:
    lowered = name.lower()
    return lowered in PASS_THROUGH or lowered.startswith("x-")


def passed_headers(inbound: Iterable[tuple[str, bytes]]) -> Headers:
    """The input headers that every output of a message carries on (trace context, correlation ids)."""
    return tuple((k, bytes(v)) for k, v in inbound if _is_passed_through(k))


def output_headers(component: str, inbound: Iterable[tuple[str, bytes]] = ()) -> Headers:
    """Headers of every produced record: content type, schema version, producing component, passed-through trace."""
    own = (("content-type", CONTENT_TYPE.encode()), ("distillery-schema-version", str(SCHEMA_VERSION).encode()),
           ("distillery-producer", f"distillery/{component}".encode()))
    return own + passed_headers(inbound)


def error_headers(stage: str, reason: str, error: str, topic: str, partition: int, offset: int) -> Headers:
    """Where and why a message failed, as headers (Kafka Connect's `__connect.errors.*` convention, our prefix)."""
    p = ERROR_HEADER_PREFIX
    return ((f"{p}topic", topic.encode()), (f"{p}partition", str(partition).encode()),
            (f"{p}offset", str(offset).encode()), (f"{p}stage", stage.encode()), (f"{p}reason", reason.encode()),
            (f"{p}exception.message", error[:500].encode("utf-8", "replace")))


def headers_size(headers: Sequence[tuple[str, bytes]]) -> int:
    return sum(len(k.encode("utf-8", "replace")) + len(v) + 8 for k, v in headers)


# ----- articles.dlq ---------------------------------------------------------------------------------------------


def _raw_bytes(payload: Any) -> bytes:
    if isinstance(payload, bytes | bytearray | memoryview):
        return bytes(payload)
    if isinstance(payload, str):
        return payload.encode("utf-8", "surrogatepass")
    try:
        return encode_json(payload)
    except (TypeError, orjson.JSONEncodeError):
        return repr(payload).encode("utf-8", "replace")


def _prefix_text(raw: bytes, n: int) -> tuple[str, str]:
    """The first `n` bytes as text (a UTF-8 character cut at the end is dropped) or base64."""
    head = raw[:n]
    try:
        return head.decode("utf-8"), "utf-8"
    except UnicodeDecodeError as err:
        if n < len(raw) and err.reason == "unexpected end of data":  # the cut split a character
            try:
                return head[:err.start].decode("utf-8"), "utf-8"
            except UnicodeDecodeError:
                pass
        return base64.b64encode(head).decode("ascii"), "base64"


def dlq_record(
    stage: str, error: str, payload: Any, topic: str = "", partition: int = -1, offset: int = -1,
    article_id: str | None = None, *, reason: str = "error", key: bytes | None = None,
    max_bytes: int = DEFAULT_MAX_RECORD_BYTES,
) -> bytes:
    """A typed dead letter: where it failed (`stage`, `source`), why (`reason` code, `error` text), the original key
    and message. A message too large to repeat is cut to fit `max_bytes` (`payload_truncated`), with its full size,
    sha256 and source offset so the original can be found; the record never exceeds `max_bytes`."""
    raw = _raw_bytes(payload)
    key_text, key_encoding = payload_text(key) if key is not None else (None, None)
    body: dict[str, Any] = {
        "stage": stage,
        "reason": reason,
        "error": error if len(error) <= MAX_ERROR_CHARS else error[:MAX_ERROR_CHARS] + " …",
        "article_id": article_id,
        "key": key_text,
        "key_encoding": key_encoding,
        "payload": "",
        "payload_encoding": "utf-8",
        "payload_bytes": len(raw),
        "payload_sha256": hashlib.sha256(raw).hexdigest(),
        "payload_truncated": False,
        "source": {"topic": topic, "partition": partition, "offset": offset},
        "failed_at": now_iso(),
    }
    frame = len(encode("dead_letter", body))
    if frame > max_bytes:  # a huge key or error: drop them rather than the guarantee
        body.update(key=None, error=body["error"][:200])
        frame = len(encode("dead_letter", body))
    budget = max(0, max_bytes - frame)
    n = min(len(raw), budget)
    for _ in range(40):
        text, encoding = _prefix_text(raw, n)
        body.update(payload=text, payload_encoding=encoding, payload_truncated=n < len(raw))
        record = encode("dead_letter", body)
        if len(record) <= max_bytes:
            return record
        n = max(0, min(n - 1, int(n * budget / (len(record) - frame + 1) * 0.95)))  # escaping made it grow
    body.update(payload="", payload_truncated=True)
    return encode("dead_letter", body)


def dlq_key(article_id: str | None, topic: str, partition: int, offset: int, original: bytes | None = None) -> bytes:
    """The original message's key when it had one (as Kafka Connect's DLQ keeps it), else the article id, else
    `topic:partition:offset`."""
    if original:
        return original
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
        "content_hash": rejection.content_hash,
        "duplicate_of": rejection.duplicate_of,
        "title": str(payload.get("title", "")),
        "url": str(payload.get("url", "")),
        "blocked_at": now_iso(),
    })


# ----- articles.embedded ----------------------------------------------------------------------------------------


def _vector_to_wire(vector: np.ndarray) -> str:
    return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")


def _vector_from_wire(text: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype="<f4").astype(np.float32)


def embedded_record(prepared: Prepared) -> bytes:
    """Cleaned article, content hash, its one embedding (float32 little-endian, base64) and the arrival time."""
    return encode("embedded", {
        "article": prepared.article,
        "content_hash": prepared.content_hash,
        "embedding": _vector_to_wire(prepared.embedding),
        "embedding_dim": int(np.asarray(prepared.embedding).shape[-1]),
        "commerce_probability": prepared.commerce_probability,
        "received_at": prepared.received_at,
    })


def embedded_from_wire(data: bytes) -> Prepared:
    """The Prepared article (with its arrival time) from an `embedded` record."""
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
            received_at=float(value.get("received_at") or time.time()),
        )
    except (KeyError, TypeError, ValueError) as err:
        raise WireError(f"malformed embedded record: {err!r}") from None
    return prepared


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
