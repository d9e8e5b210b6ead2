"""The services behind the gateway: one pooled HTTP client, a circuit breaker per service, retries.

- One ``httpx.AsyncClient`` for every upstream (keep-alive pool bounded by settings), with separate
  connect / read / write / pool timeouts.
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
import itertools
import time
from dataclasses import dataclass

import httpx
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    retry_if_result,
    stop_after_attempt,
    wait_exponential_jitter,
)

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
    max_connections: int = 200
    max_keepalive: int = 64
    pool_shards: int = 8
    attempts: int = 3
    backoff_initial: float = 0.05
    backoff_max: float = 0.5
    breaker_failures: int = 5
    breaker_reset_seconds: float = 10.0


class Upstreams:
    def __init__(self, base_urls: dict[str, str], config: UpstreamConfig) -> None:
        self.base_urls = {name: url.rstrip("/") for name, url in base_urls.items()}
        self.config = config
        # Several small pools instead of one large one, taken in turn: httpcore's pool re-examines every
        # connection it holds (a readability check, a system call each) whenever a request starts or ends,
        # so its cost per request grows with the pool; at 32 concurrent requests one pool of 32 spent more
        # CPU on that than on the requests themselves.
        shards = max(1, config.pool_shards)
        per_shard = max(1, -(-config.max_connections // shards))
        self.clients = [
            httpx.AsyncClient(
                timeout=httpx.Timeout(
                    connect=config.connect_timeout,
                    read=config.read_timeout,
                    write=config.write_timeout,
                    pool=config.pool_timeout,
                ),
                limits=httpx.Limits(
                    max_connections=per_shard,
                    max_keepalive_connections=max(1, -(-config.max_keepalive // shards)),
                ),
                follow_redirects=False,
                trust_env=False,
            )
            for _ in range(shards)
        ]
        self._turn = itertools.cycle(self.clients)
        self.breakers = {
            name: CircuitBreaker(name, config.breaker_failures, config.breaker_reset_seconds)
            for name in self.base_urls
        }

    def knows(self, upstream: str) -> bool:
        return upstream in self.base_urls

    @property
    def client(self) -> httpx.AsyncClient:
        """A client for the gateway's own calls to the services (their OpenAPI documents)."""
        return self.clients[0]

    async def aclose(self) -> None:
        for client in self.clients:
            await client.aclose()

    async def send(
        self,
        upstream: str,
        method: str,
        path: str,
        *,
        query: bytes,
        headers: list[tuple[str, str]],
        body: bytes,
        retry_safe: bool,
    ) -> httpx.Response:
        """Send the request to ``upstream`` and return its (fully read) response. Raises ``CircuitOpen``
        or ``UpstreamFailed``; a 502/503/504 that survives the retries is returned as the answer."""
        breaker = self.breakers[upstream]
        client = next(self._turn)
        url = httpx.URL(self.base_urls[upstream] + path, query=query or None)

        def retryable_error(exc: BaseException) -> bool:
            if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout):
                return True  # never reached the service
            return retry_safe and isinstance(exc, httpx.TimeoutException | httpx.RemoteProtocolError)

        def retryable_answer(response: httpx.Response) -> bool:
            return retry_safe and response.status_code in RETRYABLE_STATUSES

        def count_retry(state: RetryCallState) -> None:
            UPSTREAM_RETRIES.labels(upstream).inc()

        async def attempt() -> httpx.Response:
            breaker.before_call()
            try:
                response = await client.request(method, url, headers=headers, content=body)
            except httpx.HTTPError:
                breaker.record(ok=False)
                raise
            breaker.record(ok=response.status_code not in RETRYABLE_STATUSES)
            return response

        try:  # the first attempt outside tenacity: most requests need no retry machinery at all
            first = await attempt()
        except httpx.HTTPError as exc:
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
        except httpx.HTTPError as exc:
            raise self._failure(upstream, exc) from exc

    @staticmethod
    def _failure(upstream: str, exc: httpx.HTTPError) -> UpstreamFailed:
        if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
            return UpstreamFailed(upstream, "connect")
        if isinstance(exc, httpx.TimeoutException):
            return UpstreamFailed(upstream, "timeout")
        return UpstreamFailed(upstream, "protocol")
