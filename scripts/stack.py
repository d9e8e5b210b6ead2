"""The local platform on top of the infrastructure that scripts/infra.sh runs: databases, topics,
migrations, development keys, demo data and every service process declared in deploy/platform.yaml.

    uv run python scripts/stack.py up [--demo-accounts N] [--api-workers W]
                                                            idempotent: starts only what is not running
    uv run python scripts/stack.py restart-apis [--api-workers W]
                                                            restarts the running API processes (W uvicorn
                                                            workers each, the caller's environment)
    uv run python scripts/stack.py down                     stops the processes it started (pid files)
    uv run python scripts/stack.py status
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from utilis_shared import devstack

RUN_DIR = devstack.LOCAL_DIR / "run"
LOG_DIR = devstack.LOCAL_DIR / "logs"

app = typer.Typer(add_completion=False, no_args_is_help=True)


def _say(msg: str) -> None:
    typer.echo(f"[stack] {msg}")


def _all_processes(platform: devstack.Platform) -> list[tuple[devstack.ServiceSpec, devstack.ManagedProcess]]:
    return [
        (spec, proc)
        for spec in platform.services.values()
        for proc in devstack.processes_for(spec, RUN_DIR, LOG_DIR)
    ]


API_WORKERS_HELP = "uvicorn worker processes of each API process (env STACK_API_WORKERS)"


def _workers_file(proc: devstack.ManagedProcess) -> Path:
    return proc.pid_file.with_suffix(".workers")


def _start(spec: devstack.ServiceSpec, proc: devstack.ManagedProcess, platform, api_workers: int) -> None:
    command, extra = devstack.process_command(spec, proc, api_workers=api_workers)
    proc.start(command, devstack.service_env(spec, extra=extra, platform=platform))
    if proc.kind == "api":
        _workers_file(proc).write_text(str(api_workers))
    _say(f"{proc.name}: started (pid {proc.pid()}, log {proc.log_file})")


@app.command()
def up(
    demo_accounts: Annotated[
        int, typer.Option(help="demo accounts to load on first start (0: none)")
    ] = 10_000,
    api_workers: Annotated[int, typer.Option(min=1, envvar="STACK_API_WORKERS", help=API_WORKERS_HELP)] = 1,
) -> None:
    """Create databases and topics, migrate, load demo data, start every service, wait until ready."""
    started = time.monotonic()
    platform = devstack.load_platform()
    created = asyncio.run(devstack.ensure_topics(devstack.kafka_bootstrap(), platform.topics))
    _say(f"topics: {len(platform.topics)} declared, {len(created)} created")
    for spec in platform.services.values():
        asyncio.run(devstack.create_database(spec.database))
        env = devstack.service_env(spec, platform=platform)
        subprocess.run([devstack.venv_bin(spec.command), "migrate"], env=env, check=True)
        if spec.setup:
            subprocess.run([devstack.venv_bin(spec.command), *spec.setup], env=env, check=True)
        marker = RUN_DIR / f"{spec.name}.demo-loaded"
        if demo_accounts > 0 and not marker.exists() and spec.demo:
            _say(f"{spec.name}: loading demo data (first start only)")
            subprocess.run(
                [devstack.venv_bin(spec.command), *(arg.format(accounts=demo_accounts) for arg in spec.demo)],
                env=env,
                check=True,
            )
            RUN_DIR.mkdir(parents=True, exist_ok=True)
            marker.write_text(str(demo_accounts))
    waiting = []
    for spec, proc in _all_processes(platform):
        if proc.pid() is not None:
            _say(f"{proc.name}: already running (pid {proc.pid()})")
        else:
            _start(spec, proc, platform, api_workers)
        waiting.append(proc)

    async def wait_all() -> None:
        await asyncio.gather(*(p.wait_ready(within_seconds=90) for p in waiting))

    asyncio.run(wait_all())
    _say(f"ready in {time.monotonic() - started:.1f}s")
    typer.echo("")
    for spec, proc in _all_processes(platform):
        if proc.kind == "api":
            typer.echo(
                f"  {spec.name} API        {proc.base_url}/docs   (OpenAPI: {proc.base_url}/openapi.json)"
            )
        typer.echo(f"  {proc.name:<20} {proc.base_url}/metrics   {proc.base_url}/readyz")
    typer.echo("")
    gateway = devstack.gateway_url(platform)
    if gateway:
        typer.echo(f"  Every API through the gateway: {gateway}/api/<service>/...   docs: {gateway}/api/docs")
        typer.echo(
            "  A staff token (demo data):  curl -d grant_type=password -d username=agent01 "
            f"-d password=utilis-dev-2026 -d client_id=staff-console {gateway}/oauth/token"
        )


@app.command("restart-apis")
def restart_apis(
    api_workers: Annotated[int, typer.Option(min=1, envvar="STACK_API_WORKERS", help=API_WORKERS_HELP)] = 1,
) -> None:
    """Stop every API process gracefully and start it again with ``--api-workers`` and this command's
    environment (e.g. raised ``UTILIS_RATE_LIMIT_*`` for a load test); waits until each is ready. Relays,
    consumers and schedulers are left alone."""
    platform = devstack.load_platform()
    restarted = []
    for spec, proc in _all_processes(platform):
        if proc.kind != "api":
            continue
        if proc.stop():
            _say(f"{proc.name}: stopped")
        _start(spec, proc, platform, api_workers)
        restarted.append(proc)

    async def wait_all() -> None:
        await asyncio.gather(*(p.wait_ready(within_seconds=90) for p in restarted))

    asyncio.run(wait_all())
    _say(f"{len(restarted)} API processes ready, {api_workers} worker(s) each")


@app.command()
def down() -> None:
    """Stop every process started by `up` (by pid file), gracefully."""
    platform = devstack.load_platform()
    for _, proc in _all_processes(platform):
        if proc.stop():
            _say(f"{proc.name}: stopped")


@app.command()
def status() -> None:
    """Say which platform processes run."""
    platform = devstack.load_platform()
    for _, proc in _all_processes(platform):
        pid = proc.pid()
        state = f"running  pid={pid}" if pid else "stopped"
        workers = _workers_file(proc)
        if pid and proc.kind == "api" and workers.exists() and workers.read_text().strip() != "1":
            state += f" workers={workers.read_text().strip()}"
        typer.echo(f"{proc.name:<22} {state:<20} port={proc.port}")


if __name__ == "__main__":
    sys.exit(app())
