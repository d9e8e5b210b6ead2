"""The services behind the gateway: one pooled HTTP client, a circuit breaker per service, retries.

- A keep-alive connection pool per upstream (``adapters/http1.py``: bounded by settings, separate
  connect / read / write / pool timeouts); httpx only for the gateway's rare calls of its own.
- Retries (tenacity, exponential back-off with jitter) only when repeating is safe: any request whose
  connection could not be opened (it never reached the service), and idempotent requests (or writes with an
  ``Idempotency-Key``) that timed out or were answered 502/503/504.
- A circuit breaker per upstream: after ``failure_threshold`` failures in a row (transport errors, timeouts,
  502/503/504) the gateway stops calling that service for ``reset_seconds`` and answers 503 at once, then
  lets one trial request through (half-open); its success closes the circuit. A failing service then costs
  its callers a fast 503 instead of a pile-up of waiting connections in the gateway.
  (Written here, ~40 lines: the maintained Python breakers are synchronous or tie themselves to one event
  loop library; this one is a few counters under the gateway's single event loop.)
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

import httpx
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    retry_if_result,
    stop_after_attempt,
    wait_exponential_jitter,
)

from gateway.adapters.http1 import Answer, Pool, PoolLimits, TransportError
from gateway.adapters.metrics import CIRCUIT_OPEN, UPSTREAM_RETRIES
from gateway.domain.forwarding import RETRYABLE_STATUSES


class CircuitOpen(Exception):
    def __init__(self, upstream: str, retry_after: float) -> None:
        super().__init__(f"circuit open for {upstream}")
        self.upstream = upstream
        self.retry_after = retry_after


class UpstreamFailed(Exception):
    """The service could not be reached or did not answer in time (after any retries)."""

    def __init__(self, upstream: str, reason: str) -> None:
        super().__init__(f"{upstream}: {reason}")
        self.upstream = upstream
        self.reason = reason  # connect | timeout | protocol


@dataclass
class CircuitBreaker:
    upstream: str
    failure_threshold: int
    reset_seconds: float
    failures: int = 0
    opened_at: float | None = None
    trial_in_flight: bool = False

    def before_call(self) -> None:
        if self.opened_at is None:
            return
        waited = time.monotonic() - self.opened_at
        if waited < self.reset_seconds or self.trial_in_flight:
            raise CircuitOpen(self.upstream, max(0.0, self.reset_seconds - waited))
        self.trial_in_flight = True  # half-open: this request is the trial

    def record(self, *, ok: bool) -> None:
        self.trial_in_flight = False
        if ok:
            if self.opened_at is not None:
                CIRCUIT_OPEN.labels(self.upstream).set(0)
            self.failures, self.opened_at = 0, None
            return
        self.failures += 1
        if self.opened_at is not None or self.failures >= self.failure_threshold:
            self.opened_at = time.monotonic()
            CIRCUIT_OPEN.labels(self.upstream).set(1)

    @property
    def is_open(self) -> bool:
        return self.opened_at is not None


@dataclass(frozen=True)
class UpstreamConfig:
    connect_timeout: float = 1.0
    read_timeout: float = 10.0
    write_timeout: float = 5.0
    pool_timeout: float = 2.0
    max_connections: int = 200  # per service
    max_keepalive: int = 64  # idle connections kept per service
    attempts: int = 3
    backoff_initial: float = 0.05
    backoff_max: float = 0.5
    breaker_failures: int = 5
    breaker_reset_seconds: float = 10.0


# What may stay literal in a request target's path (RFC 3986 pchar and "/"); the rest is percent-encoded,
# so the service sees exactly the (decoded) path the policy table matched.
_PATH_SAFE = "/:@!$&'()*+,;=-._~"


class Upstreams:
    def __init__(self, base_urls: dict[str, str], config: UpstreamConfig) -> None:
        self.base_urls = {name: url.rstrip("/") for name, url in base_urls.items()}
        self.config = config
        limits = PoolLimits(
            connect_timeout=config.connect_timeout,
            read_timeout=config.read_timeout,
            write_timeout=config.write_timeout,
            pool_timeout=config.pool_timeout,
            max_connections=config.max_connections,
            max_keepalive=config.max_keepalive,
        )
        self.pools = {name: Pool(url, limits) for name, url in self.base_urls.items()}
        self._base_paths = {name: urlsplit(url).path for name, url in self.base_urls.items()}
        self.breakers = {
            name: CircuitBreaker(name, config.breaker_failures, config.breaker_reset_seconds)
            for name in self.base_urls
        }
        self._client: httpx.AsyncClient | None = None

    def knows(self, upstream: str) -> bool:
        return upstream in self.base_urls

    @property
    def client(self) -> httpx.AsyncClient:
        """A client for the gateway's own, rare calls to the services (their OpenAPI documents)."""
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=httpx.Timeout(
                    connect=self.config.connect_timeout,
                    read=self.config.read_timeout,
                    write=self.config.write_timeout,
                    pool=self.config.pool_timeout,
                ),
                limits=httpx.Limits(max_connections=10, max_keepalive_connections=4),
                follow_redirects=False,
                trust_env=False,
            )
        return self._client

    async def aclose(self) -> None:
        for pool in self.pools.values():
            await pool.aclose()
        if self._client is not None:
            await self._client.aclose()

    def encode(
        self,
        upstream: str,
        method: str,
        path: str,
        query: bytes,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
    ) -> bytes:
        """The whole HTTP/1.1 request to ``upstream``: request line, ``Host``, ``headers`` (already free of
        hop-by-hop ones and of ``Host`` / ``Content-Length``), ``Content-Length`` when there is a body or
        the method carries one, and the body."""
        target = (self._base_paths[upstream] + quote(path, safe=_PATH_SAFE)).encode("ascii")
        if query:
            target += b"?" + query
        host = self.pools[upstream].host_header
        parts = [method.encode("ascii"), b" ", target, b" HTTP/1.1\r\nhost: ", host]
        for name, value in headers:
            parts += (b"\r\n", name, b": ", value)
        if body or method in ("POST", "PUT", "PATCH"):
            parts += (b"\r\ncontent-length: ", str(len(body)).encode("ascii"))
        parts += (b"\r\n\r\n", body)
        return b"".join(parts)

    async def send(
        self,
        upstream: str,
        method: str,
        path: str,
        *,
        query: bytes,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        retry_safe: bool,
    ) -> Answer:
        """Send the request to ``upstream`` and return its (fully read) answer. Raises ``CircuitOpen``
        or ``UpstreamFailed``; a 502/503/504 that survives the retries is returned as the answer."""
        breaker = self.breakers[upstream]
        pool = self.pools[upstream]
        data = self.encode(upstream, method, path, query, headers, body)
        head_only = method == "HEAD"

        def retryable_error(exc: BaseException) -> bool:
            if not isinstance(exc, TransportError):
                return False
            return not exc.reached or retry_safe  # never reached the service, or safe to repeat

        def retryable_answer(response: Answer) -> bool:
            return retry_safe and response.status_code in RETRYABLE_STATUSES

        def count_retry(state: RetryCallState) -> None:
            UPSTREAM_RETRIES.labels(upstream).inc()

        async def attempt() -> Answer:
            breaker.before_call()
            try:
                response = await pool.request(data, head_only=head_only)
            except TransportError:
                breaker.record(ok=False)
                raise
            breaker.record(ok=response.status_code not in RETRYABLE_STATUSES)
            return response

        try:  # the first attempt outside tenacity: most requests need no retry machinery at all
            first = await attempt()
        except TransportError as exc:
            if self.config.attempts == 1 or not retryable_error(exc):
                raise self._failure(upstream, exc) from exc
        else:
            if self.config.attempts == 1 or not retryable_answer(first):
                return first
        UPSTREAM_RETRIES.labels(upstream).inc()
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.config.attempts - 1),
            wait=wait_exponential_jitter(
                multiplier=self.config.backoff_initial,
                max=self.config.backoff_max,
                jitter=self.config.backoff_initial,
            ),
            retry=retry_if_exception(retryable_error) | retry_if_result(retryable_answer),
            before_sleep=count_retry,
            # Out of attempts: the last answer (a 502/503/504) is the answer, the last error is raised.
            retry_error_callback=lambda state: state.outcome.result(),  # type: ignore[union-attr]
        )
        await asyncio.sleep(self.config.backoff_initial)
        try:
            return await retrying(attempt)
        except TransportError as exc:
            raise self._failure(upstream, exc) from exc

    @staticmethod
    def _failure(upstream: str, exc: TransportError) -> UpstreamFailed:
        if exc.kind == "connect":
            return UpstreamFailed(upstream, "connect")
        if exc.kind in ("pool", "read", "write"):
            return UpstreamFailed(upstream, "timeout")
        return UpstreamFailed(upstream, "protocol")
