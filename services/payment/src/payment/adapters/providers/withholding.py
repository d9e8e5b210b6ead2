"""Bank withholding (代扣): the batch request file we send to the bank and the result file it sends back.
Pure: bytes in, values out. Files are UTF-8 (no BOM), comma-separated (``csv`` quoting), ``\\n`` line ends.

**Request file** (ours)::

    H,<batch_no>,<merchant_no>,<bank_code>,<created YYYYMMDDHHMMSS Beijing>
    D,<seq 1..n>,<order_no>,<account_no>,<bank_account_masked>,<amount_fen>
    ...
    T,<count>,<sum_fen>

``account_no`` is our customer account (the bank holds the withholding agreement 代扣协议 under it);
``bank_account_masked`` is the card as the agreement shows it (``6222****1234``: at most the first 6 and
the last 4 digits visible: a full card number is refused, it never goes into a file). Amounts are positive
integer fen; an order appears once per batch; the trailer's count and sum are the rows'.

**Result file** (the bank's)::

    H,<batch_no>,<merchant_no>,<bank_code>,<processed YYYYMMDDHHMMSS Beijing>
    D,<order_no>,<SUCCESS|FAILED>,<bank_serial_no>,<amount_fen>,<failure_reason>
    ...
    T,<count>,<sum_fen>,<success_count>,<success_sum_fen>

Validation of a result file (every problem listed, then :class:`WithholdingFileRejected`): header and
trailer present and well formed, the header's batch / merchant / bank as expected; each row well formed
(a ``SUCCESS`` row has a bank serial no, a ``FAILED`` row a reason); no order and no bank serial twice;
trailer count and sums equal the rows'; against the request (when given): every row's order is in the
batch with the requested amount, and every requested order has a row. Rows become notices: ``SUCCESS`` ->
``succeeded`` (dedupe key: the bank serial no; ``paid_at``: the processing time), ``FAILED`` -> ``failed``
(dedupe key ``<batch_no>:<order_no>:failed``).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from payment.adapters.providers.base import (
    CallbackNotice,
    CallbackRejected,
    require_aware,
    shanghai_time,
    to_shanghai,
)

TIME_FORMAT = "%Y%m%d%H%M%S"
_MASKED = re.compile(r"[0-9]{0,6}\*{2,}[0-9]{0,4}")
_FEN = re.compile(r"[1-9][0-9]{0,13}")
_COUNT = re.compile(r"0|[1-9][0-9]{0,8}")
_SUM = re.compile(r"0|[1-9][0-9]{0,15}")


@dataclass(frozen=True)
class WithholdingItem:
    order_no: str
    account_no: str
    bank_account_masked: str
    amount_fen: int

    def __post_init__(self) -> None:
        if isinstance(self.amount_fen, bool) or not isinstance(self.amount_fen, int) or self.amount_fen <= 0:
            raise ValueError("amount_fen must be a positive int")
        if not _MASKED.fullmatch(self.bank_account_masked):
            raise ValueError("bank_account_masked must be masked (e.g. 6222****1234)")
        if not self.order_no or not self.account_no:
            raise ValueError("order_no and account_no are required")


@dataclass(frozen=True)
class WithholdingBatch:
    batch_no: str
    merchant_no: str
    bank_code: str
    created_at: datetime
    items: tuple[WithholdingItem, ...]

    @property
    def total_fen(self) -> int:
        return sum(i.amount_fen for i in self.items)


@dataclass(frozen=True)
class WithholdingResult:
    batch_no: str
    processed_at: datetime
    notices: tuple[CallbackNotice, ...]  # one per row, in file order

    @property
    def succeeded_fen(self) -> int:
        return sum(n.amount_fen for n in self.notices if n.status == "succeeded")


class WithholdingFileRejected(ValueError):
    """A result file that must not be applied; ``errors`` lists every problem (``line n: reason``)."""

    def __init__(self, errors: Sequence[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = list(errors)


def _write(rows: Iterable[Sequence[object]]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue().encode("utf-8")


def _read(data: bytes) -> list[list[str]]:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise WithholdingFileRejected(["line 0: not UTF-8"]) from None
    return [row for row in csv.reader(io.StringIO(text)) if row]


def batch_no_of(data: bytes) -> str | None:
    """The batch a request or result file names in its header (``H,<batch_no>,…``); None if it has none."""
    try:
        rows = _read(data.split(b"\n", 1)[0])
    except WithholdingFileRejected:
        return None
    if not rows or len(rows[0]) < 2 or rows[0][0] != "H" or not rows[0][1]:
        return None
    return rows[0][1]


def build_request_file(
    batch_no: str, merchant_no: str, bank_code: str, items: Sequence[WithholdingItem], *, now: datetime
) -> tuple[WithholdingBatch, bytes]:
    """The batch and its request file (format in the module docstring)."""
    if not items:
        raise ValueError("a batch has at least one item")
    orders = [i.order_no for i in items]
    if len(set(orders)) != len(orders):
        raise ValueError("an order appears once per batch")
    batch = WithholdingBatch(batch_no, merchant_no, bank_code, require_aware(now), tuple(items))
    rows: list[Sequence[object]] = [["H", batch_no, merchant_no, bank_code, to_shanghai(now, TIME_FORMAT)]]
    rows += [
        ["D", n, i.order_no, i.account_no, i.bank_account_masked, i.amount_fen]
        for n, i in enumerate(items, 1)
    ]
    rows.append(["T", len(items), batch.total_fen])
    return batch, _write(rows)


def parse_request_file(data: bytes) -> WithholdingBatch:
    """The bank's side of :func:`build_request_file` (the simulator uses it); refuses a file whose trailer
    does not match its rows."""
    rows = _read(data)
    if len(rows) < 3 or rows[0][0] != "H" or rows[-1][0] != "T" or len(rows[0]) != 5:
        raise WithholdingFileRejected(["line 1: not a withholding request file"])
    _, batch_no, merchant_no, bank_code, created = rows[0]
    items = []
    for no, row in enumerate(rows[1:-1], 2):
        if len(row) != 6 or row[0] != "D" or row[1] != str(no - 1) or not _FEN.fullmatch(row[5]):
            raise WithholdingFileRejected([f"line {no}: malformed row"])
        items.append(WithholdingItem(row[2], row[3], row[4], int(row[5])))
    if rows[-1][1:] != [str(len(items)), str(sum(i.amount_fen for i in items))]:
        raise WithholdingFileRejected([f"line {len(rows)}: trailer totals do not match the rows"])
    return WithholdingBatch(
        batch_no, merchant_no, bank_code, shanghai_time(created, TIME_FORMAT), tuple(items)
    )


@dataclass(frozen=True)
class ResultLine:
    """One row of a result file (what the bank, or the simulator, writes)."""

    order_no: str
    status: str  # SUCCESS | FAILED
    bank_serial_no: str
    amount_fen: int
    failure_reason: str = ""


def build_result_file(
    batch_no: str, merchant_no: str, bank_code: str, lines: Sequence[ResultLine], *, processed_at: datetime
) -> bytes:
    """The bank's result file (the simulator's side)."""
    ok = [x for x in lines if x.status == "SUCCESS"]
    rows: list[Sequence[object]] = [
        ["H", batch_no, merchant_no, bank_code, to_shanghai(processed_at, TIME_FORMAT)]
    ]
    rows += [["D", x.order_no, x.status, x.bank_serial_no, x.amount_fen, x.failure_reason] for x in lines]
    rows.append(["T", len(lines), sum(x.amount_fen for x in lines), len(ok), sum(x.amount_fen for x in ok)])
    return _write(rows)


def parse_result_file(
    data: bytes,
    *,
    batch: WithholdingBatch,
    provider: str | None = None,
) -> WithholdingResult:
    """Validate the bank's result file against ``batch`` (see the module docstring) and turn its rows into
    notices for ``provider`` (default ``bank:<bank code>``)."""
    provider = provider or f"bank:{batch.bank_code}"
    rows = _read(data)
    errors: list[str] = []
    if not rows or rows[0][0] != "H" or len(rows[0]) != 5:
        raise WithholdingFileRejected(["line 1: missing header"])
    if rows[-1][0] != "T" or len(rows[-1]) != 5:
        raise WithholdingFileRejected([f"line {len(rows)}: missing trailer"])
    _, batch_no, merchant_no, bank_code, processed = rows[0]
    if (batch_no, merchant_no, bank_code) != (batch.batch_no, batch.merchant_no, batch.bank_code):
        errors.append("line 1: the header is not this batch's")
    try:
        processed_at = shanghai_time(processed, TIME_FORMAT)
    except CallbackRejected:
        raise WithholdingFileRejected([*errors, "line 1: processing time"]) from None
    requested = {i.order_no: i.amount_fen for i in batch.items}
    orders: dict[str, int] = {}
    serials: dict[str, int] = {}
    notices: list[CallbackNotice] = []
    count = total = ok_count = ok_total = 0
    for no, row in enumerate(rows[1:-1], 2):
        if len(row) != 6 or row[0] != "D":
            errors.append(f"line {no}: malformed row")
            continue
        _, order_no, status, serial, amount_text, reason = row
        if not _FEN.fullmatch(amount_text):
            errors.append(f"line {no}: amount {amount_text!r} is not positive integer fen")
            continue
        amount = int(amount_text)
        count, total = count + 1, total + amount
        if order_no in orders:
            errors.append(f"line {no}: order {order_no} already on line {orders[order_no]}")
            continue
        orders[order_no] = no
        if order_no not in requested:
            errors.append(f"line {no}: order {order_no} is not in the batch")
        elif requested[order_no] != amount:
            errors.append(f"line {no}: amount {amount} differs from the requested {requested[order_no]}")
        if status == "SUCCESS":
            ok_count, ok_total = ok_count + 1, ok_total + amount
            if not serial:
                errors.append(f"line {no}: a SUCCESS row needs the bank serial no")
                continue
            if serial in serials:
                errors.append(f"line {no}: bank serial {serial} already on line {serials[serial]}")
                continue
            serials[serial] = no
            txn, state, paid_at = serial, "succeeded", processed_at
        elif status == "FAILED":
            if not reason:
                errors.append(f"line {no}: a FAILED row needs a reason")
            txn, state, paid_at = f"{batch.batch_no}:{order_no}:failed", "failed", None
        else:
            errors.append(f"line {no}: status {status!r}")
            continue
        notices.append(
            CallbackNotice(
                provider=provider,
                provider_txn_id=txn,
                order_no=order_no,
                amount_fen=amount,
                status=state,  # type: ignore[arg-type]
                paid_at=paid_at,
                nonce=None,
                timestamp=None,
                raw={
                    "batch_no": batch.batch_no,
                    "line": no,
                    "status": status,
                    "bank_serial_no": serial,
                    "failure_reason": reason,
                },
                failure_reason=reason or None,
            )
        )
    trailer = rows[-1][1:]
    if not all(_SUM.fullmatch(x) for x in trailer):
        errors.append(f"line {len(rows)}: malformed trailer")
    elif [int(x) for x in trailer] != [count, total, ok_count, ok_total]:
        errors.append(
            f"line {len(rows)}: trailer says {'/'.join(trailer)} but the rows are "
            f"{count}/{total}/{ok_count}/{ok_total}"
        )
    missing = sorted(set(requested) - set(orders))
    if missing:
        errors.append(f"line 0: no result for {', '.join(missing)}")
    if errors:
        raise WithholdingFileRejected(errors)
    return WithholdingResult(batch.batch_no, processed_at, tuple(notices))
