"""Async oracle client: one provider over httpx with a concurrency limit and retries with backoff + jitter."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx

from models.errors import ModelsError
from models.oracle.providers import Provider, Reply, ReplyShapeError

RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504, 520, 522, 524, 529}


class OracleCallError(ModelsError, RuntimeError):
    """A call that failed for good (non-retryable status, or retries exhausted); `kind` is for the summary."""

    def __init__(self, kind: str, message: str, attempts: int) -> None:
        super().__init__(message)
        self.kind = kind
        self.attempts = attempts


@dataclass(frozen=True)
class Completion:
    """One successful call: the provider's reply plus how many attempts and seconds it took."""

    reply: Reply
    attempts: int
    latency_s: float


class OracleClient:
    """Calls one provider/model; at most `concurrency` requests in flight; retries 429, 5xx and timeouts.

    Backoff before retry k (1-based) is `backoff_base * 2**(k-1)` scaled by a jitter factor in [0.5, 1.5),
    capped at `backoff_max`; a `Retry-After` header (seconds) is honoured when it asks for longer.
    """

    def __init__(
        self,
        provider: Provider,
        model: str,
        *,
        concurrency: int = 8,
        max_retries: int = 4,
        backoff_base: float = 1.0,
        backoff_max: float = 60.0,
        timeout: float = 120.0,
        http: httpx.AsyncClient | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        seed: int | None = None,
        requests_per_minute: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        self.provider = provider
        self.model = model
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self._own_http = http is None
        self._http = http or httpx.AsyncClient(timeout=timeout)
        self._limit = asyncio.Semaphore(concurrency)
        self._sleep = sleep
        self._rng = random.Random(seed)
        self._interval = 60.0 / requests_per_minute if requests_per_minute else 0.0
        self._clock = clock
        self._next_slot = 0.0
        self._pace_lock = asyncio.Lock()

    async def _pace(self) -> None:
        """Space request starts `60 / requests_per_minute` seconds apart (a provider's RPM tier), retries included."""
        if not self._interval:
            return
        async with self._pace_lock:
            now = self._clock()
            wait = self._next_slot - now
            self._next_slot = max(now, self._next_slot) + self._interval
        if wait > 0:
            await self._sleep(wait)

    def backoff(self, retry: int, retry_after: float | None = None) -> float:
        delay = min(self.backoff_max, self.backoff_base * 2 ** (retry - 1) * (0.5 + self._rng.random()))
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.backoff_max))
        return delay

    async def complete(self, prompt: str) -> Completion:
        url, headers, body = self.provider.request(prompt, self.model)
        start = time.perf_counter()
        attempt = 0
        async with self._limit:
            while True:
                attempt += 1
                retry_after: float | None = None
                await self._pace()
                try:
                    response = await self._http.post(url, headers=headers, json=body)
                except httpx.TimeoutException as err:
                    problem, kind = f"timeout ({type(err).__name__})", "timeout"
                except httpx.TransportError as err:
                    problem, kind = f"connection error ({err})", "connection"
                else:
                    if response.status_code == 200:
                        try:
                            reply = self.provider.parse(response.json())
                        except (ValueError, ReplyShapeError) as err:
                            raise OracleCallError("bad_reply", f"{self.provider.name}: {err}", attempt) from None
                        return Completion(reply, attempt, time.perf_counter() - start)
                    snippet = response.text[:300].replace("\n", " ")
                    problem, kind = f"HTTP {response.status_code}: {snippet}", f"http_{response.status_code}"
                    if response.status_code not in RETRY_STATUS:
                        raise OracleCallError(kind, f"{self.provider.name} {url}: {problem}", attempt)
                    retry_after = _retry_after(response)
                if attempt > self.max_retries:
                    raise OracleCallError(
                        kind, f"{self.provider.name}: gave up after {attempt} attempts; last: {problem}", attempt
                    )
                await self._sleep(self.backoff(attempt, retry_after))

    async def aclose(self) -> None:
        if self._own_http:
            await self._http.aclose()


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
