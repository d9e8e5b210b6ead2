"""Bank withholding (代扣) without anyone downloading or uploading a file: the scheduler's job.

The hand-off with the banks is a directory (``withholding_exchange_dir``, a volume mounted into the
scheduler): whatever moves files to and from each bank (an SFTP client, the bank's front-end machine
前置机 share) takes request files from ``<dir>/<bank>/out/`` and puts the bank's result files into
``<dir>/<bank>/in/``. The transfer itself is not this service's. Each round:

1. **Batches.** On each withholding day (``withholding_days``: days of the month, Asia/Shanghai), once the
   local time has passed ``withholding_run_after``, every bank in ``withholding_banks`` gets its batch of
   the day (``withholding.create_batch`` by ``system:withholding``: the same bank and day is the same
   batch, so a second round or a second replica finds it); a bank with nothing to withhold gets none.
   Once the batch is committed, its request file is written as ``out/<batch_no>.csv`` (to a hidden
   temporary name, then renamed, so the transfer never picks up half a file), then the batch records
   ``request_handed_over_at``: a file the transfer has taken away is never written again. (A crash
   between the write and that record writes the same file again on the next round: the bank sees the
   same batch number twice, which banks refuse as a duplicate.)
2. **Results.** Every ``*.csv`` in ``in/`` (not a hidden name, and unchanged for ``STABLE_SECONDS``: a
   file the transfer is still writing is left for a later round) is applied to the batch its header names
   (``withholding.apply_result``: each success settled once, each failure closed with the bank's reason;
   the same file again changes nothing), then moved to ``processed/``. A refused file moves to
   ``rejected/`` with ``<name>.reason.txt`` beside it (the problem's code and detail) for people to look
   at; nothing of it was applied.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import async_sessionmaker

from payment import metrics as payment_metrics
from payment.adapters.orm_withholding import WithholdingBatch
from payment.adapters.providers.withholding import batch_no_of
from payment.domain.withholding import batch_no
from payment.service_layer import withholding
from payment.settings import Settings
from utilis_shared.db import UnitOfWork
from utilis_shared.errors import Problem
from utilis_shared.timeutil import BUSINESS_TZ

log = logging.getLogger(__name__)
RUN_BY = "system:withholding"
STABLE_SECONDS = 60  # a result file modified more recently may still be being written by the transfer


@dataclass
class ExchangeSummary:
    batches_written: int = 0
    results_applied: int = 0
    results_replayed: int = 0
    results_rejected: int = 0

    def count(self, outcome: str) -> None:
        """One result file more with this outcome (``applied``, ``replayed``, ``rejected``)."""
        setattr(self, f"results_{outcome}", getattr(self, f"results_{outcome}") + 1)

    @property
    def files(self) -> int:
        """Files written or taken this round."""
        return self.batches_written + self.results_applied + self.results_replayed + self.results_rejected


def _write(path: Path, data: bytes) -> None:
    """``data`` as ``path``: a hidden temporary file first, then an atomic rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.part")
    temporary.write_bytes(data)
    os.replace(temporary, path)


def _move(path: Path, folder: str) -> Path:
    """``path`` into ``<bank>/<folder>/`` (a name handled before is kept: the new one gets a time suffix)."""
    target = path.parent.parent / folder / path.name
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        target = target.with_name(f"{path.stem}.{datetime.now(BUSINESS_TZ):%Y%m%d%H%M%S%f}{path.suffix}")
    with contextlib.suppress(FileNotFoundError):  # another replica handled it first
        os.replace(path, target)
    return target


def _reject(path: Path, reason: str) -> None:
    target = _move(path, "rejected")
    target.with_name(f"{target.name}.reason.txt").write_text(reason, encoding="utf-8")


def _arrived(inbox: Path, now: datetime) -> list[Path]:
    """The result files in ``inbox`` the transfer has finished writing, oldest name first."""
    out = []
    for path in sorted(inbox.glob("*.csv")):
        try:
            settled = now.timestamp() - path.stat().st_mtime >= STABLE_SECONDS
        except FileNotFoundError:  # taken by another replica meanwhile
            continue
        if settled and not path.name.startswith("."):
            out.append(path)
    return out


def withholding_day(settings: Settings, now: datetime) -> date | None:
    """Today (Asia/Shanghai) if it is a withholding day and the run time has passed; else None."""
    local = now.astimezone(BUSINESS_TZ)
    if local.day in settings.withholding_days and local.time() >= settings.withholding_run_after:
        return local.date()
    return None


async def exchange(
    session_factory: async_sessionmaker, settings: Settings, *, now: datetime
) -> ExchangeSummary:
    """One round of the job (module docstring); a no-op without ``withholding_exchange_dir``."""
    summary = ExchangeSummary()
    if not settings.withholding_exchange_dir:
        return summary
    root = Path(settings.withholding_exchange_dir)
    day = withholding_day(settings, now)
    for bank in sorted(settings.withholding_banks):
        if day is not None:
            summary.batches_written += await _batch(session_factory, settings, root, bank, day, now)
        for path in await asyncio.to_thread(_arrived, root / bank / "in", now):
            try:
                data = await asyncio.to_thread(path.read_bytes)
            except FileNotFoundError:  # another replica took it
                continue
            summary.count(await _result(session_factory, settings, path, data, now))
    return summary


async def _batch(
    session_factory: async_sessionmaker, settings: Settings, root: Path, bank: str, day: date, now: datetime
) -> int:
    async with session_factory() as session:  # the usual case after the first round: nothing to do
        handed = await session.scalar(
            select(WithholdingBatch.request_handed_over_at).where(
                WithholdingBatch.batch_no == batch_no(bank, day)
            )
        )
    if handed is not None:
        return 0
    uow = UnitOfWork(session_factory, settings)
    async with uow:
        try:
            result = await withholding.create_batch(
                uow,
                banks=settings.withholding_banks,
                bank_code=bank,
                day=day,
                by=RUN_BY,
                now=now,
                result_ttl=timedelta(days=settings.withholding_result_days),
            )
        except withholding.BatchEmpty:
            return 0
        await uow.commit()
    payment_metrics.observe_committed(uow.committed_events)
    batch = result.batch
    if batch.request_handed_over_at is not None:  # another replica wrote it meanwhile
        return 0
    await asyncio.to_thread(_write, root / bank / "out" / f"{batch.batch_no}.csv", batch.request_file)
    async with session_factory() as session, session.begin():
        await session.execute(
            update(WithholdingBatch)
            .where(WithholdingBatch.id == batch.id, WithholdingBatch.request_handed_over_at.is_(None))
            .values(request_handed_over_at=now)
        )
    log.info(
        "withholding request file written",
        extra={"batch_no": batch.batch_no, "items": batch.item_count, "new_batch": result.created},
    )
    return 1


async def _result(
    session_factory: async_sessionmaker, settings: Settings, path: Path, data: bytes, now: datetime
) -> str:
    batch_no = batch_no_of(data)
    try:
        if batch_no is None:
            raise withholding.ResultRejected("The file has no header naming its batch (H,<batch_no>,…).")
        uow = UnitOfWork(session_factory, settings)
        async with uow:
            result = await withholding.apply_result(uow, batch_no=batch_no, data=data, by=RUN_BY, now=now)
            await uow.commit()
        payment_metrics.observe_committed(uow.committed_events)
    except Problem as exc:
        await asyncio.to_thread(_reject, path, f"{exc.code}: {exc.detail}\n")
        log.warning("withholding result file rejected", extra={"file": path.name, "code": exc.code})
        return "rejected"
    await asyncio.to_thread(_move, path, "processed")
    log.info(
        "withholding result file applied",
        extra={"batch_no": batch_no, "replayed": not result.applied, "outcomes": result.outcomes},
    )
    return "applied" if result.applied else "replayed"
