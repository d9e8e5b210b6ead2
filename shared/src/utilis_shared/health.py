"""Health: ``/livez`` says the process runs; ``/readyz`` checks what it depends on.

A check is *critical* when the process cannot do its job without it (an API without its database); a
non-critical failure is reported but keeps the pod in service (an API keeps taking writes into its outbox
while Kafka is away: taking every API pod out of rotation would turn a broker blip into an outage).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiokafka.client import AIOKafkaClient
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request
from starlette.responses import JSONResponse

from utilis_shared.metrics import DEPENDENCY_UP

Check = Callable[[], Awaitable[None]]


@dataclass
class HealthCheck:
    name: str
    check: Check
    critical: bool = True
    timeout: float = 2.0


def database_check(engine: AsyncEngine) -> Check:
    async def check() -> None:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    return check


def redis_check(redis: Redis) -> Check:
    async def check() -> None:
        await redis.ping()

    return check


class KafkaProbe:
    """Asks the broker for cluster metadata, at most every few seconds (readiness is polled often)."""

    def __init__(self, bootstrap: str, cache_seconds: float = 5.0) -> None:
        self.client = AIOKafkaClient(bootstrap_servers=bootstrap, client_id="readiness-probe")
        self.cache_seconds = cache_seconds
        self._ok_until = 0.0
        self._started = False

    async def check(self) -> None:
        if time.monotonic() < self._ok_until:
            return
        if not self._started:
            await self.client.bootstrap()
            self._started = True
        metadata = await self.client.fetch_all_metadata()
        if not metadata.brokers():
            raise RuntimeError("no broker in cluster metadata")
        self._ok_until = time.monotonic() + self.cache_seconds

    async def close(self) -> None:
        await self.client.close()


async def run_checks(checks: list[HealthCheck]) -> tuple[bool, dict[str, dict[str, object]]]:
    async def one(hc: HealthCheck) -> tuple[str, dict[str, object]]:
        started = time.perf_counter()
        try:
            await asyncio.wait_for(hc.check(), timeout=hc.timeout)
            status = "ok"
            error = None
        except Exception as exc:
            status = "failed"
            error = type(exc).__name__
        result: dict[str, object] = {
            "status": status,
            "critical": hc.critical,
            "duration_ms": round((time.perf_counter() - started) * 1000, 1),
        }
        if error:
            result["error"] = error
        return hc.name, result

    results = dict(await asyncio.gather(*(one(hc) for hc in checks)))
    for name, result in results.items():
        DEPENDENCY_UP.labels(name).set(1 if result["status"] == "ok" else 0)
    ready = all(r["status"] == "ok" for r in results.values() if r["critical"])
    return ready, results


async def livez(_: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


def readyz_endpoint(get_checks: Callable[[Request], list[HealthCheck]]):
    async def readyz(request: Request) -> JSONResponse:
        ready, results = await run_checks(get_checks(request))
        return JSONResponse(
            {"status": "ok" if ready else "unavailable", "checks": results}, status_code=200 if ready else 503
        )

    return readyz
