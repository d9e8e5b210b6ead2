"""Data for a load test, through the gateway like any client (plus the gateway's administration use cases,
what its CLI runs, for the staff and partner accounts the run signs in with).

Two sources of residents:

- ``demo``: the stack's demo customer base (``make up``'s ``DEMO_ACCOUNTS``). The customer service's demo
  generator is deterministic, so the same rows give each account's holder phone; the gateway's consumer
  bound those phones to the accounts from the import's events.
- ``create``: ``n`` new heating accounts opened through the customer API by an agent (each with a new
  holder and a new phone), as the smoke test in ``make test`` does (its stack has no demo data).

Either way a new tariff plan is published and one billing run issues a bill of a new cycle to every
account of the run (the demo source: every residential heating account), so residents owe something; then
the pipeline is drained (the payment service knows what each account owes) before the load starts.

The result is the *pool* (JSON) the Locust process reads: residents (phone, account), the bank stream's
accounts, staff and partner credentials, search terms.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import asyncpg
import httpx

from loadtests.audit import wait_drained
from utilis_shared import devstack
from utilis_shared.timeutil import business_today

STAFF_CONSOLE = "staff-console"
PERIOD = ("2026-10-20", "2027-04-21")  # a Harbin heating season (period_end excluded)
MOBILE = re.compile(r"1[3-9]\d{9}")
SURNAMES = "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗"
GIVEN = ("桂兰", "建国", "秀英", "志强", "海燕", "晓东", "丽华", "文斌", "淑珍", "国庆", "雪梅", "振华")
DISTRICTS = ("道里区", "南岗区", "道外区", "香坊区", "平房区", "松北区")


@dataclass
class Prepared:
    pool: dict[str, Any]
    cycle: str
    accounts: list[str]  # every account the run may pay for (residents' and the bank stream's)
    seconds: float


def log(msg: str) -> None:
    print(f"[prepare] {msg}", flush=True)


def new_mobile() -> str:
    return f"15{secrets.randbelow(10)}{secrets.randbelow(10**8):08d}"


def resident_id() -> str:
    from customer.domain.identity import resident_id_check_char

    born = f"{random.randint(1950, 1999)}0{random.randint(1, 9)}1{random.randint(0, 9)}"
    body = f"230103{born}{random.randint(0, 999):03d}"
    return body + resident_id_check_char(body)


def new_cycle() -> str:
    """A cycle of its own per run (``^[0-9]{4}[0-9A-Z]{1,8}$``): every run bills every account again."""
    alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    stamp = int(time.time()) % 36**6
    tail = "".join(alphabet[stamp // 36**i % 36] for i in reversed(range(6)))
    return f"2026L{tail}{secrets.choice(alphabet)}"


# ------------------------------------------------------------------------------------- administration
async def _gateway_admin(platform: devstack.Platform, run: Callable[..., Awaitable[Any]]) -> Any:
    from gateway.adapters.crypto import SecretHasher
    from gateway.settings import Settings
    from utilis_shared.db import UnitOfWork, create_engine, create_session_factory

    env = devstack.service_env(platform.services["gateway"], platform=platform)
    settings = Settings(environment="development", database_url=env["UTILIS_DATABASE_URL"])
    engine = create_engine(settings)
    try:
        factory, hasher = create_session_factory(engine), SecretHasher()

        async def in_uow(use_case: Callable[..., Awaitable[Any]], **kwargs: Any) -> Any:
            async with UnitOfWork(factory, settings) as uow:
                created = await use_case(uow, hasher, **kwargs)
                await uow.commit()
                return created

        return await run(in_uow)
    finally:
        await engine.dispose()


async def staff_and_partner(platform: devstack.Platform, tag: str, agents: int) -> dict[str, Any]:
    """Staff accounts (``agents`` agents for the Locust agents, one each: the per-user rate limit is
    per staff member; one agent and one billing clerk for the preparation) and a bank partner client."""
    from gateway.service_layer import admin

    async def run(in_uow: Callable[..., Awaitable[Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {"agents": []}
        for i in range(agents + 1):
            username, password = f"lt-agent-{tag}-{i:03d}", f"pw-{secrets.token_hex(8)}"
            await in_uow(admin.add_staff, username=username, roles=["agent"], password=password)
            out["agents"].append({"username": username, "password": password})
        username, password = f"lt-clerk-{tag}", f"pw-{secrets.token_hex(8)}"
        await in_uow(admin.add_staff, username=username, roles=["billing_clerk"], password=password)
        out["clerk"] = {"username": username, "password": password}
        client_id, secret = f"lt-bank-{tag}", f"secret-{secrets.token_hex(12)}"
        await in_uow(
            admin.add_client,
            client_id=client_id,
            scopes=["accounts:read", "bills:read", "payments:write", "payments:read"],
            secret=secret,
            channel="bank",
        )
        out["partner"] = {"client_id": client_id, "secret": secret}
        return out

    return await _gateway_admin(platform, run)


async def staff_token(gw: httpx.AsyncClient, who: dict[str, str]) -> dict[str, str]:
    r = await gw.post(
        "/oauth/token",
        data={
            "grant_type": "password",
            "username": who["username"],
            "password": who["password"],
            "client_id": STAFF_CONSOLE,
        },
    )
    r.raise_for_status()
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


# ------------------------------------------------------------------------------------------- accounts
async def open_accounts(gw: httpx.AsyncClient, agent: dict[str, str], n: int) -> list[dict[str, Any]]:
    """``n`` heating accounts for new customers (new phones), opened through the gateway by an agent."""
    sem = asyncio.Semaphore(4)

    async def one(i: int) -> dict[str, Any]:
        phone, name = new_mobile(), random.choice(SURNAMES) + random.choice(GIVEN)
        area = f"{random.randint(450, 1300) / 10:.2f}"
        async with sem:
            r = await gw.post(
                "/api/customer/v1/accounts",
                headers={**agent, "Idempotency-Key": str(uuid.uuid4())},
                json={
                    "customer": {"name": name, "id_number": resident_id(), "contacts": [{"phone": phone}]},
                    "premise": {
                        "district": DISTRICTS[i % len(DISTRICTS)],
                        "community": f"压测小区{uuid.uuid4().hex[:8]}",
                        "building": str(1 + i % 30),
                        "unit": str(1 + i % 4),
                        "room": f"{1 + i % 6}0{1 + i % 2}",
                        "heated_area_m2": area,
                    },
                    "utility": "heating",
                },
            )
        if r.status_code != 201:
            raise RuntimeError(f"opening an account failed: {r.status_code} {r.text[:300]}")
        return {"phone": phone, "account_no": r.json()["account_no"], "name": name}

    return list(await asyncio.gather(*(one(i) for i in range(n))))


def demo_rows(accounts: int) -> list[dict[str, Any]]:
    """The stack's demo archive rows (the same generator and seed as ``customer demo-data``): account,
    holder name and the holder's first mobile number."""
    from customer.domain.demo import generate_rows

    out = []
    for row in generate_rows(accounts, seed=2026):
        phone = MOBILE.search(re.sub(r"[\s-]", "", str(row["联系电话"] or "")))
        if phone and row["户号"]:
            out.append({"phone": phone.group(0), "account_no": str(row["户号"]), "name": str(row["姓名"])})
    return out


def demo_accounts_loaded() -> int:
    marker = devstack.LOCAL_DIR / "run" / "customer.demo-loaded"
    return int(marker.read_text().strip()) if marker.exists() else 0


# -------------------------------------------------------------------------------------------- billing
async def bill(
    gw: httpx.AsyncClient, clerk: dict[str, str], tag: str, cycle: str, selection: dict[str, Any]
) -> dict[str, Any]:
    """A tariff plan of the run's own and one billing run of ``cycle``; waits for the scheduler."""
    code = f"lt-heat-{tag}"
    plan = {
        "code": code,
        "name": "压测 居民 按面积计收采暖费",
        "utility": "heating",
        "customer_class": "residential",
        "region": "哈尔滨市",
        "effective_from": "2020-10-01",
        "components": [
            {
                "kind": "area_season",
                "price_per_m2": "29.80",
                "season_starts_on": "10-20",
                "season_ends_on": "04-20",
            }
        ],
    }
    r = await gw.post(
        "/api/billing/v1/tariff-plans", json=plan, headers={**clerk, "Idempotency-Key": str(uuid.uuid4())}
    )
    if r.status_code != 201:
        raise RuntimeError(f"publishing the plan failed: {r.status_code} {r.text[:300]}")
    r = await gw.post(
        "/api/billing/v1/billing-runs",
        headers={**clerk, "Idempotency-Key": str(uuid.uuid4())},
        json={
            "cycle": cycle,
            "tariff_plan_code": code,
            "period_start": PERIOD[0],
            "period_end": PERIOD[1],
            "issue_date": business_today().isoformat(),
            "due_date": (business_today() + timedelta(days=30)).isoformat(),
            "selection": selection,
        },
    )
    if r.status_code != 202:
        raise RuntimeError(f"requesting the billing run failed: {r.status_code} {r.text[:300]}")
    run_id, deadline = r.json()["id"], time.monotonic() + 300
    while True:
        status = (await gw.get(f"/api/billing/v1/billing-runs/{run_id}", headers=clerk)).json()
        if status["status"] == "completed":
            return status
        if status["status"] == "failed" or time.monotonic() > deadline:
            raise RuntimeError(f"billing run {run_id}: {status}")
        await asyncio.sleep(0.3)


async def billed_accounts(platform: devstack.Platform, cycle: str) -> set[str]:
    dsn = devstack.database_url(platform.services["metering-and-billing"].database)
    conn = await asyncpg.connect(dsn.replace("postgresql+asyncpg", "postgresql"))
    try:
        rows = await conn.fetch("SELECT account_no FROM bills WHERE cycle = $1 AND kind = 'bill'", cycle)
    finally:
        await conn.close()
    return {r["account_no"] for r in rows}


async def drained(platform: devstack.Platform, what: str, within: float) -> None:
    state = await wait_drained(platform, within=within)
    if not state.drained:
        raise RuntimeError(f"the pipeline did not drain {what} within {within:.0f}s: {state}")


# --------------------------------------------------------------------------------------------- the pool
async def prepare(
    platform: devstack.Platform,
    *,
    source: str,
    accounts: int,
    agents: int,
    bank_share: float = 0.05,
    tag: str | None = None,
) -> Prepared:
    """Staff, partner, accounts with a bill owed (``source`` ``demo`` or ``create``: see the module
    docstring; ``accounts``: how many to create, or at most how many demo accounts to use), the pool."""
    started = time.monotonic()
    tag = tag or uuid.uuid4().hex[:8]
    gateway = devstack.gateway_url(platform)
    assert gateway, "deploy/platform.yaml declares no gateway"
    creds = await staff_and_partner(platform, tag, agents)
    log(f"{agents} agents, a billing clerk and bank client {creds['partner']['client_id']} created")
    cycle = new_cycle()
    async with httpx.AsyncClient(base_url=gateway, timeout=60) as gw:
        agent, clerk = await staff_token(gw, creds["agents"][-1]), await staff_token(gw, creds["clerk"])
        if source == "create":
            people = await open_accounts(gw, agent, accounts)
            log(f"{len(people)} accounts opened through the customer API")
            await drained(platform, "after opening the accounts", 60)
            selection: dict[str, Any] = {"kind": "accounts", "account_nos": [p["account_no"] for p in people]}
        elif source == "demo":
            loaded = demo_accounts_loaded()
            if not loaded:
                raise RuntimeError("no demo data on this stack: start it with `make up` (DEMO_ACCOUNTS)")
            people = demo_rows(loaded)[:accounts] if accounts else demo_rows(loaded)
            selection = {"kind": "all"}
        else:
            raise ValueError(f"unknown source {source!r}")
        done = await bill(gw, clerk, tag, cycle, selection)
        log(f"billing run {cycle}: {done['bills_issued']} bills, {done['billed']['amount_fen']} fen")
    billed = await billed_accounts(platform, cycle)
    await drained(platform, "after the billing run", 300)
    log(f"pipeline drained ({time.monotonic() - started:.1f}s so far)")

    # One resident per phone; accounts split between residents and the bank stream, no account in both.
    rng = random.Random(tag)
    by_phone: dict[str, dict[str, Any]] = {}
    for p in people:
        if p["account_no"] in billed:
            by_phone.setdefault(p["phone"], p)
    holders = list(by_phone.values())
    rng.shuffle(holders)
    n_bank = max(1, round(len(holders) * bank_share))
    bank, residents = holders[:n_bank], holders[n_bank:]
    if not residents:
        raise RuntimeError("no billed account with a holder's phone to sign in with")
    pool = {
        "tag": tag,
        "cycle": cycle,
        "gateway": gateway,
        "residents": [{"phone": r["phone"], "account_no": r["account_no"]} for r in residents],
        "bank_accounts": [b["account_no"] for b in bank],
        "agents": creds["agents"][:-1],
        "partner": creds["partner"],
        "search": {
            "account_nos": [r["account_no"] for r in holders[:2000]],
            "phones": [r["phone"] for r in holders[:2000]],
            "names": sorted({r["name"] for r in holders[:2000]}),
        },
    }
    accounts_paid = [r["account_no"] for r in residents] + [b["account_no"] for b in bank]
    return Prepared(pool=pool, cycle=cycle, accounts=accounts_paid, seconds=time.monotonic() - started)


def write_pool(prepared: Prepared, path) -> None:
    path.write_text(json.dumps(prepared.pool, ensure_ascii=False, indent=1), encoding="utf-8")
