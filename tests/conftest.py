"""End-to-end tests: against the platform processes that `make test` (like `make up`) started, through
their real HTTP ports, with the development token issuer in .local/keys. (Through the gateway once it
lands.) They fail, not skip, when the stack is not running: run `make test`."""

from __future__ import annotations

import httpx
import pytest

from utilis_shared import devstack
from utilis_shared.devtokens import DevIssuer


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def platform() -> devstack.Platform:
    return devstack.load_platform()


@pytest.fixture(scope="session")
def issuer() -> DevIssuer:
    keys = devstack.LOCAL_DIR / "keys"
    assert (keys / "jwks.json").exists(), "no development keys: start the stack with `make test` or `make up`"
    return DevIssuer(keys)


@pytest.fixture(scope="session")
async def customer_api(platform) -> httpx.AsyncClient:
    port = platform.services["customer"].processes["api"]
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
        try:
            ready = await client.get("/readyz")
        except httpx.ConnectError as exc:
            raise AssertionError("the customer API is not running: start the stack with `make test`") from exc
        assert ready.status_code == 200, ready.text
        yield client
