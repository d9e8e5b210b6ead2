"""Development and test tooling around ``deploy/platform.yaml``: databases, topics, and the platform's
processes run locally (what ``make up`` starts and the end-to-end tests start for themselves).

Not used by the services at run time.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import yaml
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

REPO_ROOT = Path(os.environ.get("UTILIS_REPO_ROOT", Path(__file__).resolve().parents[3]))
PLATFORM_FILE = REPO_ROOT / "deploy" / "platform.yaml"
LOCAL_DIR = Path(os.environ.get("UTILIS_LOCAL_DIR", REPO_ROOT / ".local"))
TOPIC_ALREADY_EXISTS = 36


def pg_port() -> int:
    return int(os.environ.get("UTILIS_PG_PORT", "55432"))


def kafka_bootstrap() -> str:
    return os.environ.get(
        "UTILIS_KAFKA_BOOTSTRAP", f"127.0.0.1:{os.environ.get('UTILIS_KAFKA_PORT', '59092')}"
    )


def redis_url() -> str:
    return os.environ.get(
        "UTILIS_REDIS_URL", f"redis://127.0.0.1:{os.environ.get('UTILIS_REDIS_PORT', '56379')}/0"
    )


def database_url(name: str) -> str:
    return f"postgresql+asyncpg://app@127.0.0.1:{pg_port()}/{name}"


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    command: str
    database: str
    processes: dict[str, int]
    demo: tuple[str, ...] = ()  # arguments of its console script that load its demo data
    # Arguments of its console script run on every local start after the migration (idempotent), e.g.
    # development keys its processes need.
    setup: tuple[str, ...] = ()
    # The gateway publishes the service's API under /api/<route>/ (default: the service's name).
    route: str = ""

    @property
    def api_route(self) -> str:
        return self.route or self.name


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    retention_ms: int


@dataclass(frozen=True)
class Platform:
    services: dict[str, ServiceSpec]
    topics: list[TopicSpec]


def load_platform(path: Path = PLATFORM_FILE) -> Platform:
    data: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    services = {
        name: ServiceSpec(
            name=name,
            command=spec["command"],
            database=spec["database"],
            processes={k: int(v) for k, v in spec["processes"].items()},
            demo=tuple(str(a) for a in spec.get("demo") or ()),
            setup=tuple(str(a) for a in spec.get("setup") or ()),
            route=str(spec.get("route") or ""),
        )
        for name, spec in (data.get("services") or {}).items()
    }
    topics = [
        TopicSpec(t["name"], int(t["partitions"]), int(t["retention_ms"])) for t in data.get("topics") or []
    ]
    names = [t.name for t in topics]
    if len(set(names)) != len(names):
        raise ValueError(f"{path}: duplicate topic names")
    return Platform(services=services, topics=topics)


async def ensure_topics(
    bootstrap: str, topics: list[TopicSpec], *, prefix: str = "", replication_factor: int = 1
) -> list[str]:
    """Create the declared topics that are missing (with ``prefix``); return the names created."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in topics if prefix + t.name not in existing]
        if not missing:
            return []
        response = await admin.create_topics(
            [
                NewTopic(
                    name=prefix + t.name,
                    num_partitions=t.partitions,
                    replication_factor=replication_factor,
                    topic_configs={"retention.ms": str(t.retention_ms)},
                )
                for t in missing
            ],
            timeout_ms=30000,
        )
        created, errors = [], []
        for topic_error in response.topic_errors:
            name, code = topic_error[0], topic_error[1]
            if code == 0:
                created.append(name)
            elif code != TOPIC_ALREADY_EXISTS:
                errors.append(f"{name}: error code {code}")
        if errors:
            raise RuntimeError("create_topics failed: " + "; ".join(errors))
        return created
    finally:
        await admin.close()


async def create_database(name: str, *, drop_first: bool = False) -> None:
    conn = await asyncpg.connect(host="127.0.0.1", port=pg_port(), user="app", database="postgres")
    try:
        if drop_first:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


async def drop_database(name: str) -> None:
    conn = await asyncpg.connect(host="127.0.0.1", port=pg_port(), user="app", database="postgres")
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


GATEWAY = "gateway"


def gateway_url(platform: Platform) -> str | None:
    spec = platform.services.get(GATEWAY)
    if spec is None or "api" not in spec.processes:
        return None
    return f"http://127.0.0.1:{spec.processes['api']}"


def service_env(
    spec: ServiceSpec,
    *,
    database: str | None = None,
    extra: dict[str, str] | None = None,
    platform: Platform | None = None,
) -> dict[str, str]:
    """The environment of one of ``spec``'s processes on the local stack. With ``platform``, the wiring
    between services too: every service trusts the gateway's JWKS (the gateway issues every token), and the
    gateway routes ``/api/<name>/`` to each service's API port."""
    env = dict(os.environ)
    jwks = f"file://{LOCAL_DIR / 'keys' / 'jwks.json'}"
    gateway = gateway_url(platform) if platform else None
    if gateway:
        jwks = f"{gateway}/.well-known/jwks.json"
    env.update(
        {
            "UTILIS_ENVIRONMENT": env.get("UTILIS_ENVIRONMENT", "development"),
            "UTILIS_DATABASE_URL": database_url(database or spec.database),
            "UTILIS_KAFKA_BOOTSTRAP": kafka_bootstrap(),
            "UTILIS_REDIS_URL": redis_url(),
            "UTILIS_JWKS_URL": env.get("UTILIS_JWKS_URL", jwks),
            # The payment providers' simulator key bundle (development only; see the payment service), and
            # its merchant side in the production format, which the payment processes load
            # (`payment dev-keys` writes both).
            "UTILIS_PROVIDER_KEYS_FILE": str(LOCAL_DIR / "keys" / "payment-providers.json"),
            "UTILIS_PROVIDERS_FILE": str(LOCAL_DIR / "keys" / "payment-merchant.json"),
        }
    )
    if platform and spec.name == GATEWAY and gateway:
        upstreams = {
            other.api_route: f"http://127.0.0.1:{other.processes['api']}"
            for name, other in platform.services.items()
            if name != GATEWAY and "api" in other.processes
        }
        env["UTILIS_UPSTREAMS"] = json.dumps(upstreams)
        env["UTILIS_PUBLIC_URL"] = gateway
    env.update(extra or {})
    return env


def venv_bin(command: str) -> str:
    candidate = Path(sys.executable).parent / command
    return str(candidate) if candidate.exists() else command


@dataclass
class ManagedProcess:
    """One platform process started in the background, with a pid file and a log file."""

    service: str
    kind: str
    port: int
    pid_file: Path
    log_file: Path
    popen: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return f"{self.service}-{self.kind}"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            return pid
        return pid

    def port_in_use(self) -> bool:
        import socket

        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            return sock.connect_ex(("127.0.0.1", self.port)) == 0

    def start(self, command: list[str], env: dict[str, str]) -> None:
        if self.port_in_use():
            raise RuntimeError(
                f"{self.name}: port {self.port} is taken by a process we did not start; "
                "stop it or change deploy/platform.yaml"
            )
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            self.popen = subprocess.Popen(
                command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.pid_file.write_text(str(self.popen.pid))

    def signal(self, sig: int) -> None:
        pid = self.pid()
        if pid is not None:
            os.kill(pid, sig)

    def stop(self, timeout: float = 30.0) -> bool:
        """SIGTERM, wait for a graceful exit, SIGKILL after ``timeout``. True if it had been running."""
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen is not None and self.popen.poll() is not None:
                break
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        else:
            os.kill(pid, signal.SIGKILL)
        if self.popen is not None:
            self.popen.wait(timeout=5)
        self.pid_file.unlink(missing_ok=True)
        return True

    async def wait_ready(self, within_seconds: float = 60.0) -> None:
        deadline = time.monotonic() + within_seconds
        last = "no answer"
        async with httpx.AsyncClient(timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self.popen is not None and self.popen.poll() is not None:
                    raise RuntimeError(
                        f"{self.name} exited with {self.popen.returncode}; see {self.log_file}"
                    )
                try:
                    response = await client.get(f"{self.base_url}/readyz")
                    if response.status_code == 200:
                        return
                    last = f"{response.status_code} {response.text[:200]}"
                except httpx.HTTPError as exc:
                    last = type(exc).__name__
                await asyncio.sleep(0.2)
        raise TimeoutError(f"{self.name} not ready after {within_seconds}s ({last}); see {self.log_file}")


def processes_for(
    spec: ServiceSpec, run_dir: Path, log_dir: Path, *, ports: dict[str, int] | None = None
) -> list[ManagedProcess]:
    return [
        ManagedProcess(
            service=spec.name,
            kind=kind,
            port=(ports or spec.processes)[kind],
            pid_file=run_dir / f"{spec.name}-{kind}.pid",
            log_file=log_dir / f"{spec.name}-{kind}.log",
        )
        for kind in spec.processes
    ]


def process_command(
    spec: ServiceSpec, proc: ManagedProcess, *, api_workers: int = 1
) -> tuple[list[str], dict[str, str]]:
    """The command line and extra environment of one process. ``api_workers``: uvicorn worker processes
    of an ``api`` process (the local stand-in for replicas of its Deployment; ``make loadtest REPLICAS=``)."""
    port_var = "UTILIS_HTTP_PORT" if proc.kind == "api" else "UTILIS_MANAGEMENT_PORT"
    command = [venv_bin(spec.command), proc.kind]
    if proc.kind == "api" and api_workers > 1:
        command += ["--workers", str(api_workers)]
    return command, {port_var: str(proc.port)}


async def delete_topics(bootstrap: str, prefix: str) -> None:
    """Remove every topic whose name starts with ``prefix`` (a test run's own topics)."""
    if not prefix:
        raise ValueError("refusing to delete topics without a prefix")
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30000)
    await admin.start()
    try:
        names = [t for t in await admin.list_topics() if t.startswith(prefix)]
        if names:
            await admin.delete_topics(names, timeout_ms=30000)
    finally:
        await admin.close()


@asynccontextmanager
async def throwaway_database(name: str, migrations: Path) -> AsyncIterator[str]:
    """A freshly created and migrated database for a test session or a benchmark; dropped afterwards."""
    from utilis_shared.migrations import run_migrations

    await create_database(name, drop_first=True)
    url = database_url(name)
    await asyncio.to_thread(run_migrations, migrations, url)
    try:
        yield url
    finally:
        await drop_database(name)


# ---------------------------------------------------------------------------------------------------
# Test helpers for event flows on the real broker (integration tests of every service use them).
async def publish(bootstrap: str, topic: str, *messages: Any, key: str | None = None) -> None:
    """Publish in order to ``topic`` (the broker-side name). A message is an :class:`Event` (its bytes,
    keyed by its subject) or raw bytes (keyed by ``key``, default ``garbage``)."""
    from aiokafka import AIOKafkaProducer

    from utilis_shared.events import Event

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for m in messages:
            value = m.to_bytes() if isinstance(m, Event) else m
            key_bytes = (key or (m.subject if isinstance(m, Event) else "garbage")).encode()
            await producer.send_and_wait(topic, value=value, key=key_bytes)
    finally:
        await producer.stop()


async def run_until(worker: Any, condition: Any, seconds: float = 60.0) -> None:
    """Start ``worker`` (an ``EventConsumer``, a relay: ``start / run_forever / stop / close``), run it
    until ``await condition()`` is true, then stop it cleanly. Fails if it takes longer or the worker dies."""
    await worker.start()
    task = asyncio.create_task(worker.run_forever())
    try:
        deadline = time.monotonic() + seconds
        while not await condition():
            assert time.monotonic() < deadline, "the worker did not get there in time"
            assert not task.done(), task.exception()
            await asyncio.sleep(0.1)
    finally:
        worker.stop()
        await asyncio.wait_for(task, 30)
        await worker.close()
