"""Bank withholding (代扣) use cases: mandates, the batch for a bank and business day with its request file,
and the bank's result file applied exactly once. Use cases stage rows and events; the caller commits (the
unit of work). The rules are :mod:`payment.domain.withholding`; the files :mod:`..providers.withholding`.

* **Mandates.** ``sign_mandate`` stores an account's authorisation for one bank account at one bank: the
  number encrypted (``PiiCipher``, field ``bank_account``), its blind index and its masked form (the only
  form that leaves this module). One active mandate per account (a partial unique index; signing is
  serialised per account by an advisory lock): the same bank and number again returns the existing
  mandate, another one is 409 ``withholding_mandate_exists`` (revoke it first). ``revoke_mandate`` ends one.
* **Batch.** ``create_batch(bank, day)`` is idempotent: creations of one bank and day are serialised (an
  advisory lock) and the batch number is derived from both, so the same bank and day give the same batch
  and its stored request file, never a second one. A new batch takes the accounts of
  :func:`payment.domain.withholding.select_lines`, creates one ``pending`` ``dues`` order per account
  (channel ``withholding``, provider ``withholding:<bank>``, waiting ``withholding_result_days`` for the
  result before the expiry sweep may close it), the batch and its lines, and the request file, in one
  transaction with ``payment.payment.created`` per order and ``payment.withholding_batch.requested``.
* **Result.** ``apply_result(batch, file)`` locks the batch row (concurrent ingestions of a file queue on
  it), then: the file already applied (same sha256) answers the stored outcome and changes nothing; another
  file once a result is applied is 409 ``withholding_result_already_applied``. The file is validated whole
  against the batch (unknown orders, amounts that differ, missing or repeated lines, totals, a bank serial
  that already paid another order: 422 ``withholding_result_rejected`` with every line's error, nothing
  applied). Then every line is applied in the same transaction through
  :func:`payment.service_layer.orders.apply_notice` (the callbacks' path: the order row lock, the
  provider transaction id unique per provider, ``payment.payment.succeeded`` that billing settles; a
  success for an order closed meanwhile opens a refund case); a failed line fails its order
  (``payment.payment.failed``) and emits ``payment.withholding_item.failed`` with the bank's reason code.
"""

from __future__ import annotations

import base64
import hashlib
import re
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy import String, any_, bindparam, exists, func, or_, select, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import undefer

from payment.adapters.orm import AccountDues, PaymentOrder
from payment.adapters.orm_withholding import WithholdingBatch, WithholdingItem, WithholdingMandate
from payment.adapters.providers import withholding as files
from payment.domain import withholding as rules
from payment.domain.orders import OrderStatus, Outcome, Purpose
from payment.events import (
    WithholdingBatchCompleted,
    WithholdingBatchRequested,
    WithholdingItemFailed,
    WithholdingMandateRevoked,
    WithholdingMandateSigned,
    catalog,
)
from payment.service_layer import orders
from utilis_shared.db import UnitOfWork, advisory_lock
from utilis_shared.errors import Conflict, NotFound, UnprocessableEntity
from utilis_shared.pii import PiiCipher
from utilis_shared.timeutil import business_date_of

MAX_LIMIT = 500
PII_FIELD = "bank_account"


# --------------------------------------------------------------------------------------------- errors
class UnknownBank(UnprocessableEntity):
    code = "unknown_bank"


class InvalidBankAccount(UnprocessableEntity):
    code = "invalid_bank_account"


class MandateExists(Conflict):
    code = "withholding_mandate_exists"


class MandateNotFound(NotFound):
    code = "withholding_mandate_not_found"


class MandateNotActive(Conflict):
    code = "withholding_mandate_not_active"


class BatchNotFound(NotFound):
    code = "withholding_batch_not_found"


class BatchEmpty(UnprocessableEntity):
    code = "withholding_batch_empty"


class DayPast(UnprocessableEntity):
    code = "withholding_day_past"


class ResultRejected(UnprocessableEntity):
    code = "withholding_result_rejected"


class ResultAlreadyApplied(Conflict):
    code = "withholding_result_already_applied"


class InvalidCursor(UnprocessableEntity):
    code = "invalid_cursor"


def _check_bank(banks: Mapping[str, str], bank_code: str) -> str:
    """Our merchant number at ``bank_code``; 422 ``unknown_bank`` when we send no batches there."""
    merchant_no = banks.get(bank_code)
    if merchant_no is None:
        raise UnknownBank(
            f"No withholding agreement with bank {bank_code!r} is configured.",
            banks=sorted(banks),
        )
    return merchant_no


# ------------------------------------------------------------------------------------------- mandates
async def sign_mandate(
    uow: UnitOfWork,
    *,
    cipher: PiiCipher,
    banks: Mapping[str, str],
    account_no: str,
    bank_code: str,
    bank_account_no: str,
    agreement_no: str | None,
    signed_on: date,
    by: str,
) -> tuple[WithholdingMandate, bool]:
    """The account's active mandate (created: True when it is new); see the module docstring."""
    _check_bank(banks, bank_code)
    try:
        digits = rules.normalise_bank_account(bank_account_no)
    except rules.InvalidBankAccount as exc:
        raise InvalidBankAccount("The bank account number must be 12 to 30 digits.") from exc
    bidx = cipher.blind_index(digits, field=PII_FIELD)
    session = uow.session
    await advisory_lock(session, f"withholding-mandate:{account_no}")
    existing = await _active_mandate(session, account_no)
    if existing is not None:
        if existing.bank_code == bank_code and existing.bank_account_bidx == bidx:
            return existing, False
        raise MandateExists(
            f"Account {account_no} already has an active withholding mandate "
            f"({existing.bank_code}, {existing.bank_account_masked}); revoke it first.",
            mandate_id=str(existing.id),
        )
    mandate = WithholdingMandate(
        account_no=account_no,
        bank_code=bank_code,
        bank_account_enc=cipher.encrypt(digits, field=PII_FIELD),
        bank_account_bidx=bidx,
        bank_account_masked=rules.mask_bank_account(digits),
        agreement_no=agreement_no,
        signed_on=signed_on,
        status="active",
        created_by=by,
        version=1,
    )
    session.add(mandate)
    await session.flush()
    uow.emit(catalog.build(WithholdingMandateSigned(**_mandate_payload(mandate)), subject=account_no))
    return mandate, True


def _mandate_payload(m: WithholdingMandate) -> dict:
    return {
        "mandate_id": str(m.id),
        "account_no": m.account_no,
        "bank_code": m.bank_code,
        "bank_account_masked": m.bank_account_masked,
        "signed_on": m.signed_on,
        "status": m.status,
    }


async def _active_mandate(session: AsyncSession, account_no: str) -> WithholdingMandate | None:
    return (
        await session.execute(
            select(WithholdingMandate).where(
                WithholdingMandate.account_no == account_no, WithholdingMandate.status == "active"
            )
        )
    ).scalar_one_or_none()


async def get_mandate(
    session: AsyncSession, mandate_id: uuid.UUID, *, lock: bool = False
) -> WithholdingMandate:
    stmt = select(WithholdingMandate).where(WithholdingMandate.id == mandate_id)
    if lock:
        stmt = stmt.with_for_update()
    mandate = (await session.execute(stmt)).scalar_one_or_none()
    if mandate is None:
        raise MandateNotFound(f"No withholding mandate {mandate_id}.")
    return mandate


async def revoke_mandate(
    uow: UnitOfWork, *, mandate: WithholdingMandate, reason: str, by: str, now: datetime
) -> WithholdingMandate:
    """End an active mandate (``mandate`` locked by the caller). Lines already sent to the bank stay."""
    if mandate.status != "active":
        raise MandateNotActive(f"Withholding mandate {mandate.id} is {mandate.status}.")
    mandate.status, mandate.revoked_at, mandate.revoked_by = "revoked", now, by
    mandate.revoke_reason = reason
    mandate.version += 1
    await uow.session.flush()
    uow.emit(
        catalog.build(
            WithholdingMandateRevoked(**_mandate_payload(mandate), reason=reason, revoked_at=now),
            subject=mandate.account_no,
        )
    )
    return mandate


async def list_mandates(session: AsyncSession, account_no: str) -> list[WithholdingMandate]:
    return list(
        (
            await session.execute(
                select(WithholdingMandate)
                .where(WithholdingMandate.account_no == account_no)
                .order_by(WithholdingMandate.created_at.desc(), WithholdingMandate.id)
            )
        )
        .scalars()
        .all()
    )


# ---------------------------------------------------------------------------------------------- batch
@dataclass(frozen=True)
class BatchResult:
    batch: WithholdingBatch
    created: bool  # false: the bank and day already had this batch


async def create_batch(
    uow: UnitOfWork,
    *,
    banks: Mapping[str, str],
    bank_code: str,
    day: date,
    by: str,
    now: datetime,
    result_ttl: timedelta,
) -> BatchResult:
    """The batch of ``bank_code`` for the business day ``day`` (see the module docstring)."""
    merchant_no = _check_bank(banks, bank_code)
    number = rules.batch_no(bank_code, day)
    session = uow.session
    await advisory_lock(session, f"withholding-batch:{number}")
    existing = await _batch_row(session, number, with_files=True)
    if existing is not None:
        return BatchResult(existing, False)
    today = business_date_of(now)
    if day < today:
        raise DayPast(
            f"The business day {day.isoformat()} is over (today is {today.isoformat()}, Asia/Shanghai): "
            "a new batch is for today or a later day."
        )
    lines = rules.select_lines(await _candidates(session, bank_code))
    if not lines:
        raise BatchEmpty(f"No account with an active mandate at {bank_code} owes anything to withhold.")
    provider = rules.provider_for(bank_code)
    order_nos = await _order_numbers(session, len(lines), now)
    expires_at = now + result_ttl
    new_orders = [
        PaymentOrder(
            order_no=order_no,
            account_no=line.account_no,
            purpose=Purpose.DUES.value,
            bill_no=None,
            amount_fen=line.amount_fen,
            channel=rules.CHANNEL,
            provider=provider,
            status=OrderStatus.PENDING.value,
            refunded_fen=0,
            client_channel="withholding",
            created_by=by,
            expires_at=expires_at,
            version=1,
        )
        for order_no, line in zip(order_nos, lines, strict=True)
    ]
    items = [
        files.WithholdingItem(o.order_no, line.account_no, line.bank_account_masked, line.amount_fen)
        for o, line in zip(new_orders, lines, strict=True)
    ]
    request, data = files.build_request_file(number, merchant_no, bank_code, items, now=now)
    batch = WithholdingBatch(
        batch_no=number,
        bank_code=bank_code,
        business_day=day,
        merchant_no=merchant_no,
        status="requested",
        item_count=len(items),
        total_fen=request.total_fen,
        request_sha256=hashlib.sha256(data).hexdigest(),
        request_file=data,
        requested_at=request.created_at,
        created_by=by,
        succeeded_count=0,
        succeeded_fen=0,
        failed_count=0,
        failed_fen=0,
        version=1,
    )
    session.add_all(new_orders)
    session.add(batch)
    await session.flush()
    session.add_all(
        WithholdingItem(
            batch_id=batch.id,
            seq=seq,
            order_no=o.order_no,
            account_no=line.account_no,
            mandate_id=line.mandate_id,
            bank_account_masked=line.bank_account_masked,
            amount_fen=line.amount_fen,
            status="pending",
        )
        for seq, (o, line) in enumerate(zip(new_orders, lines, strict=True), 1)
    )
    await session.flush()
    for o in new_orders:
        uow.emit(orders.created_event(o))
    uow.emit(catalog.build(WithholdingBatchRequested(**_batch_payload(batch)), subject=number))
    return BatchResult(batch, True)


def _batch_payload(b: WithholdingBatch) -> dict:
    return {
        "batch_no": b.batch_no,
        "bank_code": b.bank_code,
        "business_day": b.business_day,
        "item_count": b.item_count,
        "total_fen": b.total_fen,
        "request_sha256": b.request_sha256,
        "status": b.status,
    }


async def _candidates(session: AsyncSession, bank_code: str) -> list[rules.Candidate]:
    pending = exists().where(
        PaymentOrder.account_no == WithholdingMandate.account_no,
        PaymentOrder.channel == rules.CHANNEL,
        PaymentOrder.status == OrderStatus.PENDING.value,
    )
    paid = exists().where(
        PaymentOrder.account_no == WithholdingMandate.account_no,
        PaymentOrder.status.in_((OrderStatus.SUCCEEDED.value, OrderStatus.REFUNDED.value)),
        # the provider's time or, if later, when the success was recorded here (a bank's file gives whole
        # seconds: a report within the same second must not hide the payment)
        or_(PaymentOrder.paid_at > AccountDues.as_of, PaymentOrder.updated_at > AccountDues.as_of),
    )
    rows = await session.execute(
        select(
            WithholdingMandate.account_no,
            WithholdingMandate.id,
            WithholdingMandate.bank_account_masked,
            AccountDues.owed_fen,
            AccountDues.late_fee_fen,
            pending,
            paid,
        )
        .join(AccountDues, AccountDues.account_no == WithholdingMandate.account_no)
        .where(
            WithholdingMandate.status == "active",
            WithholdingMandate.bank_code == bank_code,
            AccountDues.owed_fen + AccountDues.late_fee_fen > 0,
        )
    )
    return [rules.Candidate(*row) for row in rows.all()]


async def _order_numbers(session: AsyncSession, n: int, now: datetime) -> list[str]:
    """``n`` order numbers in the orders' format (``orders.next_order_no``), from one statement."""
    seqs = (
        await session.execute(
            text("SELECT nextval('payment_order_seq') FROM generate_series(1, :n)"), {"n": n}
        )
    ).scalars()
    return [orders.order_no_of(seq, now) for seq in seqs]


async def _batch_row(
    session: AsyncSession, batch_no: str, *, lock: bool = False, with_files: bool = False
) -> WithholdingBatch | None:
    stmt = select(WithholdingBatch).where(WithholdingBatch.batch_no == batch_no)
    if with_files:
        stmt = stmt.options(undefer(WithholdingBatch.request_file))
    if lock:
        stmt = stmt.with_for_update()
    return (await session.execute(stmt)).scalar_one_or_none()


async def get_batch(
    session: AsyncSession, batch_no: str, *, lock: bool = False, with_files: bool = False
) -> WithholdingBatch:
    batch = await _batch_row(session, batch_no, lock=lock, with_files=with_files)
    if batch is None:
        raise BatchNotFound(f"No withholding batch {batch_no}.")
    return batch


async def batch_items(session: AsyncSession, batch_id: uuid.UUID) -> list[WithholdingItem]:
    return list(
        (
            await session.execute(
                select(WithholdingItem)
                .where(WithholdingItem.batch_id == batch_id)
                .order_by(WithholdingItem.seq)
            )
        )
        .scalars()
        .all()
    )


@dataclass(frozen=True)
class ItemPage:
    items: list[WithholdingItem]
    next_cursor: str | None


def _cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"seq:{seq}".encode()).decode()


def _after(cursor: str | None) -> int:
    if cursor is None:
        return 0
    try:
        kind, _, value = base64.urlsafe_b64decode(cursor.encode()).decode().partition(":")
        if kind != "seq":
            raise ValueError(kind)
        return int(value)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidCursor("The cursor is not one this list gave.") from exc


async def list_items(
    session: AsyncSession, batch: WithholdingBatch, *, status: str | None, limit: int, cursor: str | None
) -> ItemPage:
    stmt = (
        select(WithholdingItem)
        .where(WithholdingItem.batch_id == batch.id, WithholdingItem.seq > _after(cursor))
        .order_by(WithholdingItem.seq)
        .limit(limit + 1)
    )
    if status is not None:
        stmt = stmt.where(WithholdingItem.status == status)
    rows = list((await session.execute(stmt)).scalars().all())
    more = len(rows) > limit
    rows = rows[:limit]
    return ItemPage(rows, _cursor(rows[-1].seq) if more and rows else None)


# --------------------------------------------------------------------------------------------- result
@dataclass(frozen=True)
class ApplyResult:
    batch: WithholdingBatch
    applied: bool  # false: this file was applied before; nothing changed
    outcomes: dict[str, int] = field(default_factory=dict)  # applied, duplicate, refund_case, ...


_LINE_ERROR = re.compile(r"line (\d+): (.*)", re.S)


def _line_errors(errors: Sequence[str]) -> list[dict]:
    out = []
    for error in errors:
        m = _LINE_ERROR.fullmatch(error)
        out.append({"line": int(m.group(1)), "message": m.group(2)} if m else {"line": 0, "message": error})
    return out


def _any(values: Sequence[str]):
    return any_(bindparam(None, list(values), type_=ARRAY(String())))


async def apply_result(uow: UnitOfWork, *, batch_no: str, data: bytes, by: str, now: datetime) -> ApplyResult:
    """Apply the bank's result file to its batch, exactly once (see the module docstring)."""
    session = uow.session
    sha = hashlib.sha256(data).hexdigest()
    batch = await get_batch(session, batch_no, lock=True)
    if batch.result_sha256 is not None:
        if batch.result_sha256 == sha:
            return ApplyResult(batch, False, await _outcomes(session, batch.id))
        raise ResultAlreadyApplied(
            f"Batch {batch_no} already has its result applied (a different file, sha256 "
            f"{batch.result_sha256[:12]}…); nothing was changed."
        )
    items = await batch_items(session, batch.id)
    request = files.WithholdingBatch(
        batch.batch_no,
        batch.merchant_no,
        batch.bank_code,
        batch.requested_at,
        tuple(
            files.WithholdingItem(i.order_no, i.account_no, i.bank_account_masked, i.amount_fen)
            for i in items
        ),
    )
    provider = rules.provider_for(batch.bank_code)
    try:
        result = files.parse_result_file(data, batch=request, provider=provider)
    except files.WithholdingFileRejected as exc:
        raise ResultRejected(
            f"The result file for batch {batch_no} was refused ({len(exc.errors)} errors); "
            "nothing was applied.",
            errors=_line_errors(exc.errors),
        ) from exc
    await _check_serials_unused(session, provider, result)
    by_order = {i.order_no: i for i in items}
    outcomes: Counter[str] = Counter()
    ok_count = ok_fen = failed_count = failed_fen = 0
    for notice in result.notices:
        item = by_order[notice.order_no]
        # a failure's time is the bank's processing time (the order's closed_at)
        outcome = await orders.apply_notice(uow, orders.Notice.of(notice, paid_at=result.processed_at))
        outcomes[outcome.value] += 1
        item.outcome, item.result_line = outcome.value, notice.raw["line"]
        if notice.status == "succeeded":
            item.status, item.bank_serial_no = "succeeded", notice.provider_txn_id
            ok_count, ok_fen = ok_count + 1, ok_fen + notice.amount_fen
        else:
            code = (notice.raw.get("failure_reason") or "UNKNOWN")[:64]
            item.status, item.failure_code = "failed", code
            failed_count, failed_fen = failed_count + 1, failed_fen + notice.amount_fen
            if outcome is Outcome.APPLIED:
                uow.emit(
                    catalog.build(
                        WithholdingItemFailed(
                            payment_id=item.order_no,
                            account_no=item.account_no,
                            batch_no=batch.batch_no,
                            bank_code=batch.bank_code,
                            amount_fen=item.amount_fen,
                            failure_code=code,
                            failure_text=rules.failure_text(code),
                        ),
                        subject=item.account_no,
                    )
                )
    batch.status, batch.result_sha256, batch.result_file = "completed", sha, data
    batch.processed_at, batch.result_applied_at, batch.result_applied_by = result.processed_at, now, by
    batch.succeeded_count, batch.succeeded_fen = ok_count, ok_fen
    batch.failed_count, batch.failed_fen = failed_count, failed_fen
    batch.version += 1
    await session.flush()
    uow.emit(
        catalog.build(
            WithholdingBatchCompleted(
                **_batch_payload(batch),
                result_sha256=sha,
                processed_at=result.processed_at,
                succeeded_count=ok_count,
                succeeded_fen=ok_fen,
                failed_count=failed_count,
                failed_fen=failed_fen,
            ),
            subject=batch.batch_no,
        )
    )
    return ApplyResult(batch, True, dict(outcomes))


async def _check_serials_unused(
    session: AsyncSession, provider: str, result: files.WithholdingResult
) -> None:
    """A bank serial that already paid another order of this bank's withholding refuses the whole file
    (applying it would break the provider transaction id's uniqueness half-way)."""
    wanted = {n.provider_txn_id: n for n in result.notices if n.status == "succeeded"}
    if not wanted:
        return
    rows = await session.execute(
        select(PaymentOrder.order_no, PaymentOrder.provider_txn_id).where(
            PaymentOrder.provider == provider, PaymentOrder.provider_txn_id == _any(sorted(wanted))
        )
    )
    errors = [
        {
            "line": wanted[txn].raw["line"],
            "message": f"bank serial {txn} already paid order {order_no}",
        }
        for order_no, txn in rows.all()
        if order_no != wanted[txn].order_no
    ]
    if errors:
        raise ResultRejected(
            f"The result file names bank serials that already paid other orders ({len(errors)}); "
            "nothing was applied.",
            errors=sorted(errors, key=lambda e: e["line"]),
        )


async def _outcomes(session: AsyncSession, batch_id: uuid.UUID) -> dict[str, int]:
    rows = await session.execute(
        select(WithholdingItem.outcome, func.count())
        .where(WithholdingItem.batch_id == batch_id, WithholdingItem.outcome.is_not(None))
        .group_by(WithholdingItem.outcome)
    )
    return {outcome: count for outcome, count in rows.all()}
