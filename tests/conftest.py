"""End-to-end tests: against the platform processes that `make test` (like `make up`) started, through
the gateway's real HTTP port, with tokens the gateway issues (the services trust only its JWKS).
They fail, not skip, when the stack is not running: run `make test`.

Staff and partner accounts are created per test session with the gateway's administration use cases
(what its CLI runs); residents sign in by SMS code, read from the development SMS adapter's log line (the
only place a development code goes), from a loopback address of their own so the per-IP SMS limit is per
session.
"""

from __future__ import annotations

import asyncio
import json
import random
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from utilis_shared import devstack
from utilis_shared.pii import mask_phone

MOBILE_APP = "mobile-app"
STAFF_CONSOLE = "staff-console"
SMS_OTP = "urn:utilis:params:oauth:grant-type:sms-otp"


TESTS_DIR = Path(__file__).resolve().parent
# Offline checks of the deployment artefacts: no stack needed, not integration tests.
OFFLINE_DIRS = (TESTS_DIR / "deploy",)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # This hook sees every collected item of the session (the services' and shared/'s too): mark only
    # the ones under tests/ that need the running stack.
    for item in items:
        path = Path(item.path).resolve()
        if TESTS_DIR in path.parents and not any(d in path.parents for d in OFFLINE_DIRS):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def platform() -> devstack.Platform:
    return devstack.load_platform()


@pytest.fixture(scope="session")
def run_id() -> str:
    return uuid.uuid4().hex[:8]


@pytest.fixture(scope="session")
def gateway_url(platform) -> str:
    url = devstack.gateway_url(platform)
    assert url, "deploy/platform.yaml declares no gateway"
    return url


async def _ready(client: httpx.AsyncClient, what: str) -> None:
    try:
        ready = await client.get("/readyz")
    except httpx.ConnectError as exc:
        raise AssertionError(f"{what} is not running: start the stack with `make test`") from exc
    assert ready.status_code == 200, ready.text


@pytest.fixture(scope="session")
async def gateway_api(gateway_url) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=gateway_url, timeout=15) as client:
        await _ready(client, "the gateway")
        yield client


@pytest.fixture(scope="session")
async def customer_api(gateway_url, platform) -> AsyncIterator[httpx.AsyncClient]:
    """The customer service's API as clients reach it: through the gateway, under /api/customer."""
    port = platform.services["customer"].processes["api"]
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as direct:
        await _ready(direct, "the customer API")
    async with httpx.AsyncClient(base_url=f"{gateway_url}/api/customer", timeout=15) as client:
        yield client


@pytest.fixture(scope="session")
async def gateway_admin(platform) -> AsyncIterator[Callable[..., Awaitable[Any]]]:
    """``await gateway_admin(admin.add_staff, username=..., ...)``: the gateway's administration use cases
    (what ``gateway add-staff`` / ``add-client`` run) against the stack's gateway database, in-process."""
    from gateway.adapters.crypto import SecretHasher
    from gateway.settings import Settings
    from utilis_shared.db import UnitOfWork, create_engine, create_session_factory

    env = devstack.service_env(platform.services["gateway"], platform=platform)
    settings = Settings(environment="development", database_url=env["UTILIS_DATABASE_URL"])
    engine = create_engine(settings)
    factory, hasher = create_session_factory(engine), SecretHasher()

    async def run(use_case: Callable[..., Awaitable[Any]], **kwargs: Any) -> Any:
        async with UnitOfWork(factory, settings) as uow:
            result = await use_case(uow, hasher, **kwargs)
            await uow.commit()
            return result

    yield run
    await engine.dispose()


@pytest.fixture(scope="session")
def new_staff(gateway_admin, run_id) -> Callable[[str], Awaitable[tuple[str, str]]]:
    """``username, password = await new_staff("agent")``: a new staff account with that role."""
    from gateway.service_layer import admin

    async def make(role: str) -> tuple[str, str]:
        username, password = f"e2e-{role}-{run_id}-{secrets.token_hex(3)}", f"pw-{secrets.token_hex(8)}"
        await gateway_admin(admin.add_staff, username=username, roles=[role], password=password)
        return username, password

    return make


@pytest.fixture(scope="session")
def staff_login(new_staff, gateway_api) -> Callable[[str], Awaitable[dict[str, str]]]:
    """``headers = await staff_login("agent")``: a staff member with that role (created once per session
    and role) signed in by the password grant."""
    created: dict[str, tuple[str, str]] = {}
    lock = asyncio.Lock()

    async def login(role: str) -> dict[str, str]:
        async with lock:
            if role not in created:
                created[role] = await new_staff(role)
        username, password = created[role]
        issued = await gateway_api.post(
            "/oauth/token",
            data={
                "grant_type": "password",
                "username": username,
                "password": password,
                "client_id": STAFF_CONSOLE,
            },
        )
        assert issued.status_code == 200, issued.text
        return {"Authorization": f"Bearer {issued.json()['access_token']}"}

    return login


@pytest.fixture(scope="session")
def partner_client(gateway_admin, run_id) -> Callable[..., Awaitable[tuple[str, str]]]:
    """``client_id, secret = await partner_client("accounts:read")``: a confidential bank client."""
    from gateway.service_layer import admin

    async def make(*scopes: str) -> tuple[str, str]:
        client_id, secret = f"e2e-bank-{run_id}-{secrets.token_hex(3)}", f"secret-{secrets.token_hex(12)}"
        await gateway_admin(
            admin.add_client, client_id=client_id, scopes=list(scopes), secret=secret, channel="bank"
        )
        return client_id, secret

    return make


def new_mobile() -> str:
    return f"15{secrets.randbelow(10)}{secrets.randbelow(10**8):08d}"


@pytest.fixture(scope="session")
async def resident_app(gateway_url) -> AsyncIterator[httpx.AsyncClient]:
    """The resident mobile app, calling from a loopback address of its own (127.x.y.z)."""
    address = f"127.{secrets.randbelow(200) + 20}.{secrets.randbelow(256)}.{secrets.randbelow(250) + 2}"
    transport = httpx.AsyncHTTPTransport(local_address=address)
    async with httpx.AsyncClient(transport=transport, base_url=gateway_url, timeout=15) as client:
        yield client


def sms_code_from_log(phone: str, *, within: float = 10.0) -> str:
    """The development SMS adapter's last code for ``phone`` (a fresh number per test), from the gateway
    API's log: development codes go nowhere else."""
    log_file = devstack.LOCAL_DIR / "logs" / "gateway-api.log"
    masked = mask_phone(phone)
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        found = None
        for line in log_file.read_text(encoding="utf-8", errors="replace").splitlines()[-2000:]:
            if '"code"' not in line or masked not in line:
                continue
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if record.get("phone") == masked and record.get("code"):
                found = record["code"]
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"no development SMS code for {masked} in {log_file}")


@pytest.fixture(scope="session")
def resident_login(resident_app) -> Callable[[str], Awaitable[dict[str, Any]]]:
    """``tokens = await resident_login(phone)``: SMS code requested, read from the log, exchanged."""

    async def login(phone: str) -> dict[str, Any]:
        sent = await resident_app.post("/oauth/sms-codes", data={"phone": phone, "client_id": MOBILE_APP})
        assert sent.status_code == 202, sent.text
        code = await asyncio.to_thread(sms_code_from_log, phone)
        issued = await resident_app.post(
            "/oauth/token",
            data={"grant_type": SMS_OTP, "phone": phone, "code": code, "client_id": MOBILE_APP},
        )
        assert issued.status_code == 200, issued.text
        return issued.json()

    return login


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def account_nos(access_token: str) -> list[str]:
    import jwt

    return list(jwt.decode(access_token, options={"verify_signature": False}).get("account_nos") or [])


@pytest.fixture(scope="session")
def resident_for(resident_login, resident_app) -> Callable[..., Awaitable[dict[str, str]]]:
    """``headers = await resident_for(phone, account_no)``: the resident signed in by SMS code, once the
    gateway's consumer has bound ``account_no`` to ``phone`` from the customer service's events (the
    refresh grant re-reads the bindings, so waiting costs no further SMS)."""

    async def login(phone: str, account_no: str, *, within: float = 30.0) -> dict[str, str]:
        tokens = await resident_login(phone)
        deadline = time.monotonic() + within
        while account_no not in account_nos(tokens["access_token"]):
            assert time.monotonic() < deadline, f"{account_no} never bound to the resident's phone"
            await asyncio.sleep(0.3)
            refreshed = await resident_app.post(
                "/oauth/token",
                data={
                    "grant_type": "refresh_token",
                    "refresh_token": tokens["refresh_token"],
                    "client_id": MOBILE_APP,
                },
            )
            assert refreshed.status_code == 200, refreshed.text
            tokens = refreshed.json()
        return bearer(tokens["access_token"])

    return login


@pytest.fixture(scope="session")
def sms_code() -> Callable[[str], str]:
    return sms_code_from_log


@pytest.fixture(scope="session")
def phone() -> Callable[[], str]:
    """A fresh mainland mobile number per call."""
    return new_mobile


def resident_id() -> str:
    """A valid mainland resident ID number (checksum included) for a person born 1950–1999 in Harbin."""
    from customer.domain.identity import resident_id_check_char

    born = f"{random.randint(1950, 1999)}0{random.randint(1, 9)}1{random.randint(0, 9)}"
    body = f"230103{born}{random.randint(0, 999):03d}"
    return body + resident_id_check_char(body)


async def _open_account(customer_api: httpx.AsyncClient, agent: dict[str, str], phone: str) -> str:
    """A heating account (72.30 m², 香坊区) for a new customer with ``phone``, opened through the gateway."""
    opened = await customer_api.post(
        "/v1/accounts",
        headers={**agent, "Idempotency-Key": str(uuid.uuid4())},
        json={
            "customer": {"name": "赵桂兰", "id_number": resident_id(), "contacts": [{"phone": phone}]},
            "premise": {
                "district": "香坊区",
                "community": f"和平小区GW{uuid.uuid4().hex[:6]}",
                "building": "7",
                "unit": "2",
                "room": "301",
                "heated_area_m2": "72.30",
            },
            "utility": "heating",
        },
    )
    assert opened.status_code == 201, opened.text
    return opened.json()["account_no"]


@pytest.fixture(scope="session")
def open_account() -> Callable[[httpx.AsyncClient, dict[str, str], str], Awaitable[str]]:
    """``no = await open_account(customer_api, agent_headers, phone)``."""
    return _open_account
