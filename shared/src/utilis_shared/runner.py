"""Running the process kinds of a service: ``api``, ``relay``, ``consumer``; each with graceful shutdown.

- ``api``: uvicorn; on SIGTERM it stops accepting, finishes in-flight requests (up to the graceful
  timeout) and exits.
- ``relay`` / ``consumer``: a worker loop plus a small management server on its own port (``/livez``,
  ``/readyz``, ``/metrics``) for Kubernetes probes and Prometheus. On SIGTERM the worker finishes the batch
  or message at hand (and commits it), then both stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable
from typing import Protocol

import uvicorn
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.routing import Route

from utilis_shared.db import create_engine
from utilis_shared.health import HealthCheck, KafkaProbe, database_check, livez, readyz_endpoint
from utilis_shared.logging import configure_logging
from utilis_shared.metrics import metrics_endpoint
from utilis_shared.settings import ServiceSettings

log = logging.getLogger(__name__)


class Worker(Protocol):
    async def start(self) -> None: ...
    async def run_forever(self) -> None: ...
    def stop(self) -> None: ...
    async def close(self) -> None: ...


KEEP_ALIVE_SECONDS = 75


def run_api(app_factory: str, *, host: str, port: int, workers: int = 1, graceful_seconds: int = 20) -> None:
    uvicorn.run(
        app_factory,
        factory=True,
        host=host,
        port=port,
        workers=workers,
        loop="uvloop",
        http="httptools",
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=graceful_seconds,
        # Idle keep-alive connections live longer here than in the gateway's pool (httpx drops them after
        # 5 s): with both at 5 s, the gateway could send a request on a connection this server was closing
        # (a 502 on a POST it cannot retry; seen in the load test).
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
        server_header=False,
    )


async def serve_worker(worker: Worker, *, checks: list[HealthCheck], host: str, port: int) -> None:
    """Run ``worker`` and its management server until SIGTERM/SIGINT, then stop both cleanly."""
    mgmt = Starlette(
        routes=[
            Route("/livez", livez),
            Route("/readyz", readyz_endpoint(lambda _: checks)),
            Route("/metrics", metrics_endpoint),
        ]
    )
    server = uvicorn.Server(
        uvicorn.Config(mgmt, host=host, port=port, log_config=None, access_log=False, lifespan="off")
    )
    # We own the signals: the management server keeps serving /metrics and /readyz while the worker finishes
    # the work at hand, and stops after it. (uvicorn >= 0.29 takes SIGTERM in Server.capture_signals, which
    # would stop it at once; older versions in install_signal_handlers.)
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign]

    loop = asyncio.get_running_loop()

    def stop() -> None:
        log.info("stop requested; finishing the work at hand")
        worker.stop()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop)

    server_task = asyncio.create_task(server.serve())
    try:
        await worker.run_forever()
    finally:
        server.should_exit = True
        await server_task
    log.info("worker stopped")


def run(coro_factory: Callable[[], Awaitable[None]]) -> None:
    import uvloop

    uvloop.run(coro_factory())


async def run_worker(
    settings: ServiceSettings, kind: str, make_worker: Callable[[AsyncEngine], Worker]
) -> None:
    """Run one background process of a service (``relay``, ``consumer``): its own small connection pool,
    readiness on the database and the broker, the management server, graceful stop on SIGTERM."""
    configure_logging(f"{settings.service_name}-{kind}", settings.log_level)
    engine = create_engine(settings, pool_size=2, max_overflow=2)
    probe = KafkaProbe(settings.kafka_bootstrap)
    worker = make_worker(engine)
    await worker.start()
    try:
        await serve_worker(
            worker,
            checks=[HealthCheck("database", database_check(engine)), HealthCheck("broker", probe.check)],
            host=settings.http_host,
            port=settings.management_port,
        )
    finally:
        await worker.close()
        await probe.close()
        await engine.dispose()
