"""Locust scenarios of the heating-fee payment peak, through the gateway (docs/capacity.md is the model
they implement; loadtests/README.md how to run them; ``LOADTEST_*`` knobs in loadtests/settings.py).

- :class:`Resident` (the bulk): one task is one resident's visit to the app. Sign in by SMS code (the code
  read from the development SMS adapter's log line, matched by request id), look at the amount due, the
  bill list; when something is owed, a share of residents pay it all by WeChat Pay or Alipay: the order,
  the provider's signed notification to the gateway's callback path (this process plays the provider,
  through the provider simulator and the stack's keys), sometimes a second notification; then the app
  refreshes the amount due until the payment shows settled. Think times between screens.
- :class:`Agent` (a small share): a service agent signed in by password searches the customer archive
  (by account number, phone or name; weighted) and opens the 360° view of what it found.
- :class:`BankStream` (one user, a constant rate): a bank's direct-connect channel collecting at its
  counters and online banking: it looks the account up as a partner, creates the order (the dues, or a
  prepaid top-up once nothing is owed) and posts its signed notification.
- :class:`BareCeiling`: a bare GET on a constant endpoint, for the framework's ceiling in the same run.

Each resident session, agent and the bank's API client use an address of their own (loadtests/clients.py);
providers' notifications come from 127.0.0.1 (the gateway's callback allow-list).
"""

from __future__ import annotations

import base64
import collections
import json
import random
import time
import uuid
from typing import Any
from urllib.parse import urlencode

import gevent
from locust import FastHttpUser, between, constant, constant_throughput, events, task

from loadtests.clients import next_address, session_from
from loadtests.settings import Knobs

KNOBS = Knobs.from_env()
MOBILE_APP, STAFF_CONSOLE = "mobile-app", "staff-console"
SMS_OTP = "urn:utilis:params:oauth:grant-type:sms-otp"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
TOKEN_REUSE_SECONDS = 600  # access tokens live 900 s; staff and the bank sign in again before that
SMS_COOLDOWN = 61  # the gateway sends one code per phone per 60 s


class Residents:
    """The residents of the pool, each signed in by one session at a time and at most once a minute."""

    def __init__(self, residents: list[dict[str, str]]) -> None:
        self.idle: collections.deque[tuple[float, dict[str, str]]] = collections.deque(
            (0.0, r) for r in residents
        )

    def take(self) -> dict[str, str]:
        while True:
            if self.idle and self.idle[0][0] <= time.monotonic():
                return self.idle.popleft()[1]
            gevent.sleep(0.2)

    def give_back(self, resident: dict[str, str], taken_at: float) -> None:
        self.idle.append((taken_at + SMS_COOLDOWN, resident))


class Shared:
    """What the users of this process share, made on first use (the bare run needs none of it)."""

    _made: Shared | None = None

    def __init__(self) -> None:
        from loadtests.provider import Providers
        from loadtests.sms import SmsInbox

        pool = json.loads(KNOBS.pool.read_text(encoding="utf-8"))
        self.pool = pool
        self.residents = Residents(pool["residents"])
        self.bank_accounts = collections.deque(pool["bank_accounts"])
        self.agents = collections.deque(pool["agents"])
        self.sms = SmsInbox(KNOBS.sms_log)
        self.providers = Providers(KNOBS.provider_keys, renotify_share=KNOBS.renotify_share)

    @classmethod
    def get(cls) -> Shared:
        if cls._made is None:
            cls._made = Shared()
        return cls._made


def claims(access_token: str) -> dict[str, Any]:
    """The JWT's payload, unverified (the gateway and the services verify it; the app only reads it)."""
    payload = access_token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def fire(user: FastHttpUser, name: str, started: float, error: str | None = None) -> None:
    """A step that is not one HTTP request (an SMS arriving, a payment seen settled) in Locust's stats."""
    user.environment.events.request.fire(
        request_type="STEP",
        name=name,
        response_time=(time.perf_counter() - started) * 1000,
        response_length=0,
        exception=Exception(error) if error else None,
        context={},
    )


def expect(response: Any, status: int) -> bool:
    if response.status_code == status:
        response.success()
        return True
    response.failure(f"{response.status_code} {(response.text or '')[:300]}")
    return False


def amount_due(response: Any) -> int | None:
    try:
        return int(response.json()["amount_due"]["amount_fen"])
    except (ValueError, KeyError, TypeError):
        return None


def signed_in(user, form: dict[str, str], name: str) -> dict[str, str]:
    """A staff or partner user's bearer header, from a token grant reused for ``TOKEN_REUSE_SECONDS``
    (``user`` keeps ``client``, ``auth`` and ``signed_in_at``)."""
    if time.monotonic() - user.signed_in_at > TOKEN_REUSE_SECONDS:
        with user.client.post(
            "/oauth/token", data=urlencode(form), headers=FORM, name=name, catch_response=True
        ) as r:
            if expect(r, 200):
                user.auth = {"Authorization": f"Bearer {r.json()['access_token']}"}
                user.signed_in_at = time.monotonic()
    return user.auth


class Resident(FastHttpUser):
    weight = KNOBS.resident_weight
    wait_time = between(KNOBS.think_min, KNOBS.think_max)

    @task
    def visit(self) -> None:
        shared = Shared.get()
        resident, taken_at = shared.residents.take(), time.monotonic()
        self.app = session_from(self, next_address())
        self.provider_side = getattr(self, "provider_side", None) or session_from(self, None)
        try:
            self.journey(shared, resident)
        finally:
            shared.residents.give_back(resident, taken_at)
            self.app.client.clientpool.close()

    def journey(self, shared: Shared, resident: dict[str, str]) -> None:
        no = resident["account_no"]
        auth = self.sign_in(shared, resident)
        if auth is None:
            return
        self.wait()
        with self.app.get(
            f"/api/billing/v1/accounts/{no}/balance",
            headers=auth,
            name="/api/billing/v1/accounts/[no]/balance",
            catch_response=True,
        ) as r:
            if not expect(r, 200):
                return
            due = amount_due(r)
        self.wait()
        with self.app.get(
            f"/api/billing/v1/accounts/{no}/bills",
            headers=auth,
            name="/api/billing/v1/accounts/[no]/bills",
            catch_response=True,
        ) as r:
            if not expect(r, 200):
                return
        if due and random.random() < KNOBS.pay_share:
            self.wait()
            self.pay(shared, no, due, auth)

    def sign_in(self, shared: Shared, resident: dict[str, str]) -> dict[str, str] | None:
        request_id = str(uuid.uuid4())
        with self.app.post(
            "/oauth/sms-codes",
            data=urlencode({"phone": resident["phone"], "client_id": MOBILE_APP}),
            headers={**FORM, "X-Request-ID": request_id},
            catch_response=True,
        ) as r:
            if not expect(r, 202):
                return None
            # The id the gateway logged the code under is the one it answers with (it keeps ours).
            echoed = r.headers.get("x-request-id") or request_id
        started = time.perf_counter()
        code = shared.sms.code_for(echoed)
        fire(self, "SMS code delivered (development adapter's log)", started, None if code else "no code")
        if code is None:
            return None
        self.wait()  # reading the SMS, typing the code
        with self.app.post(
            "/oauth/token",
            data=urlencode(
                {"grant_type": SMS_OTP, "phone": resident["phone"], "code": code, "client_id": MOBILE_APP}
            ),
            headers=FORM,
            name="/oauth/token (resident, SMS code)",
            catch_response=True,
        ) as r:
            if not expect(r, 200):
                return None
            token = r.json()["access_token"]
            if resident["account_no"] not in (claims(token).get("account_nos") or []):
                r.failure(f"account {resident['account_no']} not bound to the resident's phone")
                return None
        return {"Authorization": f"Bearer {token}"}

    def pay(self, shared: Shared, no: str, due: int, auth: dict[str, str]) -> None:
        channel = "wechat" if random.random() < KNOBS.wechat_share else "alipay"
        with self.app.post(
            "/api/payment/v1/payment-orders",
            json={"account_no": no, "purpose": "dues", "amount_fen": due, "channel": channel},
            headers={**auth, "Idempotency-Key": str(uuid.uuid4())},
            name="/api/payment/v1/payment-orders (resident)",
            catch_response=True,
        ) as r:
            if not expect(r, 201):
                return
            order = r.json()
        self.wait()  # paying in the WeChat / Alipay app
        providers = shared.providers
        entry = providers.confirm(channel, order)
        if not providers.notify(self.provider_side, entry):
            return
        acknowledged = time.perf_counter()
        providers.maybe_notify_again(self.provider_side, entry)
        # The app refreshes the amount due until the payment shows: billing settles it from the payment
        # service's event (outbox, Kafka, billing's consumer) and drops the cached statement.
        deadline = time.monotonic() + KNOBS.settle_timeout
        while True:
            gevent.sleep(KNOBS.poll_seconds)
            with self.app.get(
                f"/api/billing/v1/accounts/{no}/balance",
                headers=auth,
                name="/api/billing/v1/accounts/[no]/balance (after paying)",
                catch_response=True,
            ) as r:
                if not expect(r, 200):
                    return
                if amount_due(r) == 0:
                    break
            if time.monotonic() > deadline:
                fire(self, "payment seen settled by the resident", acknowledged, "not settled in time")
                return
        fire(self, "payment seen settled by the resident", acknowledged)
        with self.app.get(
            f"/api/billing/v1/accounts/{no}/bills",
            headers=auth,
            name="/api/billing/v1/accounts/[no]/bills (after paying)",
            catch_response=True,
        ) as r:
            if expect(r, 200) and any(
                b["status"] != "paid" for b in r.json()["items"] if b["kind"] == "bill"
            ):
                r.failure("a bill still unpaid after the amount due showed zero")


class Agent(FastHttpUser):
    weight = KNOBS.agent_weight
    wait_time = between(KNOBS.agent_think_min, KNOBS.agent_think_max)

    def on_start(self) -> None:
        shared = Shared.get()
        self.who = shared.agents[0]
        shared.agents.rotate(-1)
        self.search = shared.pool["search"]
        self.client = session_from(self, next_address())
        self.auth: dict[str, str] = {}
        self.signed_in_at = 0.0

    def headers(self) -> dict[str, str]:
        return signed_in(
            self,
            {
                "grant_type": "password",
                "username": self.who["username"],
                "password": self.who["password"],
                "client_id": STAFF_CONSOLE,
            },
            "/oauth/token (staff, password)",
        )

    def find_and_view(self, query: dict[str, str], name: str) -> None:
        with self.client.get(
            "/api/customer/v1/customers?" + urlencode({**query, "limit": 10}),
            headers=self.headers(),
            name=f"/api/customer/v1/customers?{name}=",
            catch_response=True,
        ) as r:
            if not expect(r, 200):
                return
            items = r.json()["items"]
        if not items:
            return
        self.wait()
        with self.client.get(
            f"/api/customer/v1/customers/{items[0]['id']}/view",
            headers=self.headers(),
            name="/api/customer/v1/customers/[id]/view",
            catch_response=True,
        ) as r:
            expect(r, 200)

    @task(5)
    def by_account_no(self) -> None:
        self.find_and_view({"account_no": random.choice(self.search["account_nos"])}, "account_no")

    @task(3)
    def by_phone(self) -> None:
        self.find_and_view({"phone": random.choice(self.search["phones"])}, "phone")

    @task(2)
    def by_name(self) -> None:
        self.find_and_view({"name": random.choice(self.search["names"])}, "name")


class BankStream(FastHttpUser):
    fixed_count = 1 if KNOBS.bank_rate > 0 else 0
    wait_time = constant_throughput(KNOBS.bank_rate or 1.0)

    def on_start(self) -> None:
        shared = Shared.get()
        self.partner = shared.pool["partner"]
        self.client = session_from(self, next_address(), concurrency=4)  # the bank's own network
        self.provider_side = session_from(self, None)
        self.auth: dict[str, str] = {}
        self.signed_in_at = 0.0

    def headers(self) -> dict[str, str]:
        return signed_in(
            self,
            {
                "grant_type": "client_credentials",
                "client_id": self.partner["client_id"],
                "client_secret": self.partner["secret"],
            },
            "/oauth/token (bank, client credentials)",
        )

    @task
    def collect(self) -> None:
        shared = Shared.get()
        no = shared.bank_accounts[0]
        shared.bank_accounts.rotate(-1)
        with self.client.get(
            f"/api/billing/v1/accounts/{no}/balance",
            headers=self.headers(),
            name="/api/billing/v1/accounts/[no]/balance (bank)",
            catch_response=True,
        ) as r:
            if not expect(r, 200):
                return
            due = amount_due(r)
        body = (
            {"account_no": no, "purpose": "dues", "amount_fen": due}
            if due
            else {"account_no": no, "purpose": "prepaid", "amount_fen": random.randint(100, 2000) * 100}
        )
        channel = f"bank:{KNOBS.bank_code}"
        with self.client.post(
            "/api/payment/v1/payment-orders",
            json={**body, "channel": channel},
            headers={**self.headers(), "Idempotency-Key": str(uuid.uuid4())},
            name="/api/payment/v1/payment-orders (bank)",
            catch_response=True,
        ) as r:
            if not expect(r, 201):
                return
            order = r.json()
        entry = shared.providers.confirm(channel, order)
        shared.providers.notify(self.provider_side, entry)


class BareCeiling(FastHttpUser):
    """The framework's ceiling: a bare FastAPI GET returning a constant (loadtests/bare.py)."""

    wait_time = constant(0)

    @task
    def get(self) -> None:
        self.client.get("/")


@events.test_stop.add_listener
def _providers_settle_up(environment: Any, **_: Any) -> None:
    """Providers notify until acknowledged: payments whose notification was cut off by the end of the test
    are notified again; then the providers' ledger is written for the audit."""
    shared = Shared._made
    if shared is None:
        return
    from geventhttpclient import HTTPClient

    host = environment.host or shared.pool["gateway"]
    client = HTTPClient.from_url(host, connection_timeout=10, network_timeout=60)
    providers = shared.providers
    for _attempt in range(3):
        for entry in providers.unacknowledged():
            cb = providers.notification(entry)
            try:
                response = client.request("POST", cb.path, body=cb.body, headers=cb.headers)
                entry.acknowledged = response.status_code == 200
                response.read()
            except OSError:
                pass
    client.close()
    written = providers.write_ledger(KNOBS.out / "ledger.jsonl")
    left = len(providers.unacknowledged())
    print(f"[providers] {written} payments confirmed, {left} never acknowledged; ledger in {KNOBS.out}")
    sms = shared.sms
    if sms.missed:
        print(f"[sms] {sms.missed} codes not seen in time, {sms.found_late} found later, lost {sms.lost[:5]}")
    shared.sms.close()
