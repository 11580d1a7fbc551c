"""The micro-batch frame every agent runs in, and the one `dead_letter()`: a handler turns consumed messages into
outputs (one group per input), the frame checks and produces them, dead-letters the ONE message whose outputs cannot
be encoded or sent, and leaves only broker-level failures to crash the worker. Kafka-free: tests drive it in memory
with `Inbound` messages and a `MemorySink`."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiokafka import errors as kafka_errors

from models.payload import sniff_id
from streams import records
from streams.errors import StreamsError

log = logging.getLogger("distillery.streams")


@dataclass(frozen=True)
class Inbound:
    """One consumed message as the agents see it (faust events are adapted to this; tests build it directly)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: records.Headers = ()


@dataclass(frozen=True)
class Outbound:
    """One message to produce."""

    topic: str
    key: bytes | None
    value: bytes
    headers: records.Headers = ()

    @property
    def size(self) -> int:
        """Bytes this record takes against the producer's limit (key + value + headers)."""
        return len(self.key or b"") + len(self.value) + records.headers_size(self.headers)


class Sink(Protocol):
    """Where outputs go: `send` produces messages and waits until each is acknowledged or failed."""

    async def send(self, messages: Sequence[Outbound]) -> list[BaseException | None]: ...


class MessageError(StreamsError):
    """An output of one message that cannot be produced (too large, not encodable): that message is dead-lettered."""


@dataclass
class MemorySink:
    """An in-memory Sink for tests: records what was sent; `fail(topic_or_key)` makes matching sends fail."""

    sent: list[Outbound] = field(default_factory=list)
    failures: dict[bytes | str, BaseException] = field(default_factory=dict)

    async def send(self, messages: Sequence[Outbound]) -> list[BaseException | None]:
        errors: list[BaseException | None] = []
        for m in messages:
            exc = self.failures.get(m.topic) or (self.failures.get(m.key) if m.key is not None else None)
            errors.append(exc)
            if exc is None:
                self.sent.append(m)
        return errors

    def on(self, topic: str) -> list[Outbound]:
        return [m for m in self.sent if m.topic == topic]


def is_message_error(exc: BaseException) -> bool:
    """True for failures of one record (size, encoding), False for the broker or the connection (crash the worker)."""
    if isinstance(exc, MessageError | ValueError | TypeError | RecursionError | UnicodeError | OverflowError):
        return True
    per_record = (kafka_errors.MessageSizeTooLargeError, kafka_errors.RecordTooLargeError,
                  kafka_errors.RecordListTooLargeError, kafka_errors.InvalidMessageError,
                  kafka_errors.CorruptRecordException)
    return isinstance(exc, per_record)


@dataclass
class Frame:
    """What the frame needs of a worker: topic names, where outputs go, the producer limit and the DLQ topic."""

    dlq_topic: str
    sink: Sink
    max_record_bytes: int = records.DEFAULT_MAX_RECORD_BYTES
    on_dead_letter: Callable[[str, str], None] = lambda stage, reason: None  # metrics hook

    def output(self, component: str, inbound: Inbound, topic: str, key: bytes | None, value: bytes) -> Outbound:
        """An output of `inbound` with the standard headers and the input's trace headers."""
        return Outbound(topic, key, value, records.output_headers(component, inbound.headers))

    def dead_letter(self, inbound: Inbound, stage: str, reason: str, error: str,
                    article_id: str | None = None) -> Outbound:
        """THE dead letter of one message: original key and headers kept, error headers added, payload cut to fit."""
        if article_id is None and isinstance(inbound.value, bytes | bytearray):
            article_id = sniff_id(inbound.value[:65536])
        headers = records.output_headers("dlq", inbound.headers)
        own = {name for name, _ in headers}  # the envelope's own content-type etc. replace the original's
        headers += tuple(h for h in inbound.headers if h[0] not in own)
        headers += records.error_headers(stage, reason, error, inbound.topic, inbound.partition, inbound.offset)
        key = records.dlq_key(article_id, inbound.topic, inbound.partition, inbound.offset, inbound.key)
        room = self.max_record_bytes - len(key) - records.headers_size(headers) - 512
        value = records.dlq_record(stage, error, inbound.value, inbound.topic, inbound.partition, inbound.offset,
                                   article_id, reason=reason, key=inbound.key, max_bytes=max(room, 4096))
        self.on_dead_letter(stage, reason)
        return Outbound(self.dlq_topic, key, value, headers)

    def guarded(self, inbound: Inbound, stage: str, build: Callable[[], list[Outbound]]) -> list[Outbound]:
        """`build()` the outputs of one message; if that fails (encoding, a bug for this message) or an output is over
        the producer limit, the message's outputs are its dead letter instead."""
        try:
            outputs = build()
        except Exception as exc:
            log.warning("%s: message %s:%d:%d failed: %r", stage, inbound.topic, inbound.partition, inbound.offset,
                        exc)
            return [self.dead_letter(inbound, stage, "output_failed", f"{stage} failed: {exc!r}")]
        too_big = [o for o in outputs if o.size > self.max_record_bytes]
        if too_big:
            o = too_big[0]
            return [self.dead_letter(inbound, stage, "too_large",
                                     f"output for {o.topic} is {o.size:,} bytes, over the producer limit of "
                                     f"{self.max_record_bytes:,} (DISTILLERY_MAX_RECORD_BYTES); lower "
                                     "DISTILLERY_MAX_ARTICLE_BYTES so such articles are refused at the input")]
        return outputs

    async def process(self, inputs: Sequence[Inbound], stage: str,
                      handle: Callable[[Sequence[Inbound]], Awaitable[list[list[Outbound]]]]) -> None:
        """Run one micro-batch: handler -> outputs per input -> send all -> dead-letter each input whose outputs
        failed on their own. Returns when every output (or dead letter) is acknowledged; raises on broker failure,
        and the caller then exits without acking so the batch is replayed."""
        groups = await handle(inputs)
        if len(groups) != len(inputs):
            raise RuntimeError(f"{stage}: handler gave {len(groups)} output groups for {len(inputs)} inputs")
        flat = [(i, out) for i, outs in enumerate(groups) for out in outs]
        errors = await self.sink.send([out for _, out in flat])
        failed: dict[int, BaseException] = {}
        for (i, _out), exc in zip(flat, errors, strict=True):
            if exc is None:
                continue
            if not is_message_error(exc):
                raise exc
            failed.setdefault(i, exc)
        if not failed:
            return
        letters = []
        for i, exc in failed.items():
            log.warning("%s: output of message %s:%d:%d refused: %r; dead-lettering it", stage, inputs[i].topic,
                        inputs[i].partition, inputs[i].offset, exc)
            letters.append(self.dead_letter(inputs[i], stage, "output_failed", f"sending the output failed: {exc!r}"))
        for exc in await self.sink.send(letters):
            if exc is not None:
                raise exc  # not even the dead letter could be produced: a broker problem


class FaustSink:
    """The Sink of a faust worker: sends through the app's topics and waits for every acknowledgement."""

    def __init__(self, channel: Callable[[str], Any]) -> None:
        self.channel = channel

    async def send(self, messages: Sequence[Outbound]) -> list[BaseException | None]:
        errors: list[BaseException | None] = [None] * len(messages)
        pending: list[tuple[int, Any]] = []
        for i, m in enumerate(messages):
            try:
                future = await self.channel(m.topic).send(key=m.key, value=m.value, headers=list(m.headers))
            except Exception as exc:
                if not is_message_error(exc):
                    raise
                errors[i] = exc
                continue
            pending.append((i, future))
        outcomes = await asyncio.gather(*(f for _, f in pending), return_exceptions=True)
        for (i, _), outcome in zip(pending, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                errors[i] = outcome
        return errors


def inbound(event: Any) -> Inbound:
    """A faust event as an Inbound message (raw key, value and headers)."""
    msg = event.message
    raw_headers = getattr(msg, "headers", None) or ()
    items = raw_headers.items() if isinstance(raw_headers, dict) else raw_headers
    headers = tuple((str(k), bytes(v) if v is not None else b"") for k, v in items)
    value = event.value if isinstance(event.value, bytes) else bytes(event.value or b"")
    return Inbound(msg.topic, msg.partition, msg.offset, msg.key, value, headers)
