"""Fixtures for residents' account bindings: the customer service's own event models (its catalog, so a
change of its payloads shows up here), delivery through the gateway consumer's real handler path (inbox
included) into the real test database, and signed-in residents."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from itertools import count

import httpx
import pytest
from aiokafka import ConsumerRecord
from sqlalchemy import select

from customer import events as ev
from gateway.adapters.orm import ResidentAccount
from gateway.entrypoints.workers import make_consumer
from gateway.service_layer.residents import bound_accounts
from utilis_shared.events import Event
from utilis_shared.pii import PiiCipher, mask_phone

SMS_OTP = "urn:utilis:params:oauth:grant-type:sms-otp"
MOBILE_APP = "mobile-app"


def new_phone() -> str:
    return f"137{secrets.randbelow(10**8):08d}"


def new_account_no() -> str:
    return f"1{secrets.randbelow(10**10):010d}"


class CustomerEvents:
    """Builds ``customer.events`` envelopes with the customer service's catalog; ``at`` sets event time."""

    def __init__(self, cipher: PiiCipher) -> None:
        self.cipher = cipher
        self.clock = datetime.now(UTC)

    def tick(self) -> datetime:
        self.clock += timedelta(seconds=1)
        return self.clock

    def contacts(self, phones: list[str]) -> list[ev.ContactRef]:
        return [
            ev.ContactRef(
                kind="mobile" if p.startswith("1") else "landline",
                label=None,
                phone_masked=mask_phone(p),
                phone_enc=self.cipher.encrypt(p, field="phone"),
                is_primary=i == 0,
            )
            for i, p in enumerate(phones)
        ]

    def _build(self, payload, subject: str, at: datetime | None) -> Event:
        event = ev.catalog.build(payload, subject=subject)
        return event.model_copy(update={"time": at or self.tick()})

    def registered(self, customer_id, name: str, phones: list[str], at=None) -> Event:
        payload = ev.CustomerRegistered(
            customer_id=customer_id,
            customer_no=f"C{secrets.randbelow(10**8):08d}",
            kind="person",
            name=name,
            id_type="resident_id",
            id_number_masked="230***********0028",
            contacts=self.contacts(phones),
            tags=[],
        )
        return self._build(payload, str(customer_id), at)

    def updated(self, customer_id, name: str, phones: list[str], at=None, changed=("contacts",)) -> Event:
        payload = ev.CustomerUpdated(
            customer_id=customer_id,
            customer_no="C00000001",
            changed_fields=list(changed),
            name=name,
            contacts=self.contacts(phones),
            tags=[],
        )
        return self._build(payload, str(customer_id), at)

    def opened(self, account_no: str, customer_id, phones: list[str], at=None) -> Event:
        payload = ev.AccountOpened(
            account_no=account_no,
            customer_id=customer_id,
            customer_no="C00000001",
            utility="heating",
            customer_class="residential",
            household_size=3,
            opened_on=date(2026, 10, 15),
            premise=ev.PremiseRef(
                premise_id=uuid.uuid4(),
                district="南岗区",
                community="学府小区",
                building="3",
                unit="2",
                room="501",
                address="南岗区学府小区3号楼2单元501",
                heated_area_m2=Decimal("86.50"),
                latitude=None,
                longitude=None,
            ),
            meters=[],
            contacts=self.contacts(phones),
        )
        return self._build(payload, account_no, at)

    def transferred(self, account_no: str, from_id, to_id, phones: list[str], at=None) -> Event:
        payload = ev.AccountTransferred(
            account_no=account_no,
            from_customer_id=from_id,
            to_customer_id=to_id,
            to_customer_no="C00000002",
            effective_on=date(2026, 11, 22),
            reason="房屋买卖",
            document_refs=["DOC-1"],
            contacts=self.contacts(phones),
        )
        return self._build(payload, account_no, at)

    def closed(self, account_no: str, at=None) -> Event:
        payload = ev.AccountClosed(
            account_no=account_no,
            utility="heating",
            closed_on=date(2026, 11, 22),
            final_reading=None,
            reason="拆迁",
        )
        return self._build(payload, account_no, at)

    def merged(self, survivor, duplicate, moved: list[str], at=None) -> Event:
        payload = ev.CustomersMerged(
            customer_id=survivor, merged_customer_id=duplicate, moved_account_nos=moved
        )
        return self._build(payload, str(survivor), at)


@pytest.fixture
def cipher(settings) -> PiiCipher:
    return PiiCipher.from_settings(settings)


@pytest.fixture
def events(cipher) -> CustomerEvents:
    return CustomerEvents(cipher)


_offsets = count(1)


@pytest.fixture
async def deliver(settings, session_factory) -> AsyncIterator[Callable[[Event], Awaitable[str]]]:
    """Hand an event to the gateway consumer as Kafka would (a record of ``customer.events``): inbox
    dedupe, the real handler, one transaction. Returns the outcome (processed, duplicate, ...)."""
    consumer = make_consumer(settings, session_factory)

    async def handle(event: Event) -> str:
        value = event.to_bytes()
        record = ConsumerRecord(
            topic=settings.topic("customer.events"),
            partition=0,
            offset=next(_offsets),
            timestamp=0,
            timestamp_type=0,
            key=event.subject.encode(),
            value=value,
            checksum=None,
            serialized_key_size=len(event.subject),
            serialized_value_size=len(value),
            headers=(),
        )
        return await consumer.handle_record(record)

    yield handle
    await consumer.close()  # never started: releases the clients' resources


@pytest.fixture
def phone_bidx(cipher) -> Callable[[str], str]:
    return lambda phone: cipher.blind_index(phone, field="phone")


@pytest.fixture
def accounts_of(session_factory, settings, phone_bidx) -> Callable[[str], Awaitable[tuple[str, ...]]]:
    """What a token for ``phone`` would carry now (``residents.bound_accounts``)."""
    from utilis_shared.db import UnitOfWork

    async def read(phone: str) -> tuple[str, ...]:
        uow = UnitOfWork(session_factory, settings)
        async with uow:
            return await bound_accounts(uow, phone_bidx(phone))

    return read


@pytest.fixture
def bindings_of(session_factory, phone_bidx) -> Callable[[str], Awaitable[dict[str, str]]]:
    """Every ``resident_accounts`` row of ``phone`` (closed accounts included): account -> source."""

    async def read(phone: str) -> dict[str, str]:
        async with session_factory() as s:
            rows = await s.execute(
                select(ResidentAccount.account_no, ResidentAccount.source).where(
                    ResidentAccount.phone_bidx == phone_bidx(phone)
                )
            )
            return {a: source for a, source in rows}

    return read


@pytest.fixture
async def app_client(app) -> AsyncIterator[httpx.AsyncClient]:
    """The resident app, from its own network address (the SMS per-IP limit is per test)."""
    ip = f"10.{secrets.randbelow(256)}.{secrets.randbelow(256)}.{secrets.randbelow(254) + 1}"
    transport = httpx.ASGITransport(app=app, client=(ip, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as c:
        yield c


@pytest.fixture
def sign_in_resident(app, app_client) -> Callable[[str], Awaitable[dict]]:
    """Phone + SMS code through the real endpoints: the token response (access and refresh token)."""

    async def run(phone: str) -> dict:
        sent = await app_client.post("/oauth/sms-codes", data={"phone": phone, "client_id": MOBILE_APP})
        assert sent.status_code == 202, sent.text
        code = app.state.sms_sender.last_code(phone)
        form = {"grant_type": SMS_OTP, "phone": phone, "code": code, "client_id": MOBILE_APP}
        response = await app_client.post("/oauth/token", data=form)
        assert response.status_code == 200, response.text
        return response.json()

    return run


@pytest.fixture
def refresh(app_client) -> Callable[[str], Awaitable[dict]]:
    async def run(refresh_token: str) -> dict:
        form = {"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": MOBILE_APP}
        response = await app_client.post("/oauth/token", data=form)
        assert response.status_code == 200, response.text
        return response.json()

    return run
