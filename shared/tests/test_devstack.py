"""The local stack's process commands (scripts/stack.py): API worker processes for load tests."""

from __future__ import annotations

from pathlib import Path

from utilis_shared import devstack


def _spec() -> devstack.ServiceSpec:
    return devstack.ServiceSpec(
        name="billing", command="billing", database="billing", processes={"api": 8102, "consumer": 9302}
    )


def test_an_api_runs_one_worker_unless_asked_for_more(tmp_path: Path) -> None:
    api, consumer = devstack.processes_for(_spec(), tmp_path, tmp_path)
    command, env = devstack.process_command(_spec(), api)
    assert command[1:] == ["api"] and env == {"UTILIS_HTTP_PORT": "8102"}
    command, _ = devstack.process_command(_spec(), api, api_workers=3)
    assert command[1:] == ["api", "--workers", "3"]
    # Only the API is a uvicorn server: a consumer's command ignores the worker count.
    command, env = devstack.process_command(_spec(), consumer, api_workers=3)
    assert command[1:] == ["consumer"] and env == {"UTILIS_MANAGEMENT_PORT": "9302"}
