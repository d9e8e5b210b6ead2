"""Use cases on accounts (户号), premises and meters: open, transfer (过户), suspend/resume, close (销户),
change of details, meter installation and replacement, and merging duplicate customers."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select, text, update
from sqlalchemy.dialects.postgresql import insert

from customer import events as ev
from customer.adapters import repository
from customer.adapters.orm import (
    Account,
    AccountProjection,
    Contact,
    Customer,
    CustomerTagRow,
    DuplicateFlag,
    Meter,
    Premise,
)
from customer.api.schemas import (
    AccountOpen,
    AccountUpdate,
    ClosureCreate,
    MeterIn,
    MeterReplacementCreate,
    PremiseIn,
    PremiseUpdate,
    ResumptionCreate,
    SuspensionCreate,
    TransferCreate,
)
from customer.domain import accounts as rules
from customer.domain.accounts import AccountStatus
from customer.domain.premises import address_key, format_address
from customer.service_layer import audit, duplicates
from customer.service_layer.customers import contact_refs, holder_for, load_active, masked_snapshot
from customer.service_layer.errors import (
    AccountNotFound,
    DuplicateFlagNotFound,
    MeterNotFound,
    PremiseNotFound,
    conflict,
    invalid_field,
)
from utilis_shared.auth import Principal
from utilis_shared.db import UnitOfWork
from utilis_shared.ids import new_id
from utilis_shared.pii import PiiCipher
from utilis_shared.timeutil import business_today, utcnow


def premise_ref(p: Premise) -> ev.PremiseRef:
    return ev.PremiseRef(
        premise_id=p.id,
        district=p.district,
        community=p.community,
        building=p.building,
        unit=p.unit,
        room=p.room,
        address=p.address,
        heated_area_m2=p.heated_area_m2,
        latitude=p.latitude,
        longitude=p.longitude,
    )


def meter_ref(m: Meter) -> ev.MeterRef:
    return ev.MeterRef(
        meter_id=m.id,
        serial_no=m.serial_no,
        kind=m.kind,
        multiplier=m.multiplier,
        reading_mode=m.reading_mode,
        installed_on=m.installed_on,
        initial_reading=m.initial_reading,
    )


def account_snapshot(a: Account) -> dict[str, Any]:
    return {
        "customer_id": str(a.customer_id),
        "status": a.status,
        "status_reason": a.status_reason,
        "customer_class": a.customer_class,
        "household_size": a.household_size,
        "suspended_since": a.suspended_since,
        "closed_on": a.closed_on,
    }


async def outstanding_fen(uow: UnitOfWork, account_no: str) -> int | None:
    """What billing last reported this account owes (its balance event, projected here); None if unknown."""
    row = await uow.session.get(AccountProjection, (account_no, "balance", ""))
    if row is None:
        return None
    return int(row.data.get("owed_fen") or 0)


async def load_account(uow: UnitOfWork, account_no: str) -> Account:
    account = await repository.get_account(uow.session, account_no, for_update=True)
    if account is None:
        raise AccountNotFound(f"No account {account_no}.")
    return account


async def _premise_for(uow: UnitOfWork, data: PremiseIn) -> Premise:
    """The premise at this address: found, or created. ``ON CONFLICT DO NOTHING`` makes two requests that
    open accounts at a new address at the same moment agree on one premise instead of one failing."""
    key = address_key(data.district, data.community, data.building, data.unit, data.room)
    await uow.session.execute(
        insert(Premise)
        .values(
            id=new_id(),
            district=data.district,
            community=data.community,
            building=data.building,
            unit=data.unit,
            room=data.room,
            address=format_address(data.district, data.community, data.building, data.unit, data.room),
            address_key=key,
            heated_area_m2=data.heated_area_m2,
            property_cert_no=data.property_cert_no,
            latitude=data.latitude,
            longitude=data.longitude,
            version=1,
        )
        .on_conflict_do_nothing(index_elements=["address_key"])
    )
    return (await uow.session.execute(select(Premise).where(Premise.address_key == key))).scalar_one()


async def _new_meter(uow: UnitOfWork, data: MeterIn, field: str) -> Meter:
    taken = (
        await uow.session.execute(
            select(Meter.id).where(Meter.serial_no == data.serial_no, Meter.status == "installed")
        )
    ).first()
    if taken is not None:
        raise conflict(
            "meter_already_installed", f"Meter {data.serial_no} is installed on another account.", field=field
        )
    return Meter(
        id=new_id(),
        serial_no=data.serial_no,
        kind=data.kind,
        multiplier=data.multiplier,
        reading_mode=data.reading_mode,
        installed_on=data.installed_on,
        initial_reading=data.initial_reading,
        status="installed",
    )


async def open_account(uow: UnitOfWork, *, actor: Principal, cipher: PiiCipher, data: AccountOpen) -> Account:
    holder = await holder_for(
        uow,
        actor=actor,
        cipher=cipher,
        customer_id=data.customer_id,
        new_customer=data.customer,
        field_prefix="customer.",
    )
    premise = await _premise_for(uow, data.premise)
    await uow.session.flush()
    live = (
        await uow.session.execute(
            select(Account.account_no).where(
                Account.premise_id == premise.id,
                Account.utility == data.utility.value,
                Account.status != AccountStatus.CLOSED.value,
            )
        )
    ).scalar_one_or_none()
    if live is not None:
        raise conflict(
            "premise_already_has_account",
            f"This premise already has a live {data.utility.value} account.",
            account_no=live,
        )
    meters = [await _new_meter(uow, m, f"meters.{i}") for i, m in enumerate(data.meters)]
    seq = (await uow.session.execute(text("SELECT nextval('account_no_seq')"))).scalar_one()
    account = Account(
        id=new_id(),
        account_no=rules.issue_account_no(data.utility, seq),
        customer_id=holder.id,
        premise_id=premise.id,
        utility=data.utility.value,
        customer_class=data.customer_class,
        household_size=data.household_size,
        status=AccountStatus.ACTIVE.value,
        opened_on=data.opened_on or business_today(),
    )
    account.premise = premise
    account.meters = meters
    uow.session.add(account)
    await uow.session.flush()
    audit.record(
        uow,
        actor,
        "account.opened",
        "account",
        account.account_no,
        after=account_snapshot(account),
        premise=premise.address,
    )
    uow.emit(
        ev.catalog.build(
            ev.AccountOpened(
                account_no=account.account_no,
                customer_id=holder.id,
                customer_no=holder.customer_no,
                utility=account.utility,
                customer_class=account.customer_class,
                household_size=account.household_size,
                opened_on=account.opened_on,
                premise=premise_ref(premise),
                meters=[meter_ref(m) for m in meters],
                contacts=contact_refs(holder),
            ),
            subject=account.account_no,
        )
    )
    await duplicates.flag_for_customer(uow, holder.id)
    return account


async def transfer_account(
    uow: UnitOfWork, *, actor: Principal, cipher: PiiCipher, account_no: str, data: TransferCreate
) -> Account:
    account = await load_account(uow, account_no)
    new_holder = await holder_for(
        uow,
        actor=actor,
        cipher=cipher,
        customer_id=data.to_customer_id,
        new_customer=data.to_customer,
        field_prefix="to_customer.",
    )
    rules.check_transfer(
        AccountStatus(account.status),
        await outstanding_fen(uow, account_no),
        same_holder=new_holder.id == account.customer_id,
    )
    before = account_snapshot(account)
    previous = account.customer_id
    account.customer_id = new_holder.id
    await uow.session.flush()
    effective_on = data.effective_on or business_today()
    audit.record(
        uow,
        actor,
        "account.transferred",
        "account",
        account_no,
        before=before,
        after=account_snapshot(account),
        document_refs=data.document_refs,
        reason=data.reason,
    )
    uow.emit(
        ev.catalog.build(
            ev.AccountTransferred(
                account_no=account_no,
                from_customer_id=previous,
                to_customer_id=new_holder.id,
                to_customer_no=new_holder.customer_no,
                effective_on=effective_on,
                reason=data.reason,
                document_refs=data.document_refs,
                contacts=contact_refs(new_holder),
            ),
            subject=account_no,
        )
    )
    return account


async def suspend_account(
    uow: UnitOfWork, *, actor: Principal, account_no: str, data: SuspensionCreate
) -> Account:
    account = await load_account(uow, account_no)
    rules.check_suspend(AccountStatus(account.status))
    before = account_snapshot(account)
    account.status = AccountStatus.SUSPENDED.value
    account.status_reason = data.reason
    account.suspended_since = data.since or business_today()
    await uow.session.flush()
    audit.record(
        uow, actor, "account.suspended", "account", account_no, before=before, after=account_snapshot(account)
    )
    uow.emit(
        ev.catalog.build(
            ev.AccountSuspended(
                account_no=account_no,
                utility=account.utility,
                suspended_since=account.suspended_since,
                reason=data.reason,
            ),
            subject=account_no,
        )
    )
    return account


async def resume_account(
    uow: UnitOfWork, *, actor: Principal, account_no: str, data: ResumptionCreate
) -> Account:
    account = await load_account(uow, account_no)
    rules.check_resume(AccountStatus(account.status))
    before = account_snapshot(account)
    resumed_on = data.on or business_today()
    if account.suspended_since and resumed_on < account.suspended_since:
        raise invalid_field(
            "on", "resume_before_suspension", "An account cannot resume before it was suspended."
        )
    account.status = AccountStatus.ACTIVE.value
    account.status_reason = None
    account.suspended_since = None
    await uow.session.flush()
    audit.record(
        uow, actor, "account.resumed", "account", account_no, before=before, after=account_snapshot(account)
    )
    uow.emit(
        ev.catalog.build(
            ev.AccountResumed(account_no=account_no, utility=account.utility, resumed_on=resumed_on),
            subject=account_no,
        )
    )
    return account


async def close_account(
    uow: UnitOfWork, *, actor: Principal, account_no: str, data: ClosureCreate
) -> Account:
    account = await load_account(uow, account_no)
    rules.check_close(AccountStatus(account.status), await outstanding_fen(uow, account_no))
    installed = [m for m in account.meters if m.status == "installed"]
    if installed and data.final_reading is None:
        raise invalid_field(
            "final_reading",
            "final_reading_required",
            "Closing an account with a meter needs the final reading (销户需抄表).",
        )
    before = account_snapshot(account)
    closed_on = data.closed_on or business_today()
    for meter in installed:
        if data.final_reading is not None and data.final_reading < meter.initial_reading:
            raise invalid_field(
                "final_reading",
                "reading_below_initial",
                "The final reading is below the meter's initial reading.",
            )
        meter.status, meter.removed_on, meter.final_reading = "removed", closed_on, data.final_reading
    account.status = AccountStatus.CLOSED.value
    account.status_reason = data.reason
    account.closed_on = closed_on
    await uow.session.flush()
    audit.record(
        uow,
        actor,
        "account.closed",
        "account",
        account_no,
        before=before,
        after=account_snapshot(account),
        final_reading=data.final_reading,
    )
    uow.emit(
        ev.catalog.build(
            ev.AccountClosed(
                account_no=account_no,
                utility=account.utility,
                closed_on=closed_on,
                final_reading=data.final_reading,
                reason=data.reason,
            ),
            subject=account_no,
        )
    )
    return account


async def update_account(
    uow: UnitOfWork, *, actor: Principal, account_no: str, data: AccountUpdate
) -> Account:
    account = await load_account(uow, account_no)
    rules.check_can_change(AccountStatus(account.status))
    before = account_snapshot(account)
    changed = []
    for name in ("customer_class", "household_size"):
        value = getattr(data, name)
        if value is not None and value != getattr(account, name):
            setattr(account, name, value)
            changed.append(name)
    if not changed:
        return account
    await uow.session.flush()
    audit.record(
        uow, actor, "account.updated", "account", account_no, before=before, after=account_snapshot(account)
    )
    uow.emit(
        ev.catalog.build(
            ev.AccountUpdated(
                account_no=account_no,
                changed_fields=changed,
                customer_class=account.customer_class,
                household_size=account.household_size,
            ),
            subject=account_no,
        )
    )
    return account


async def update_premise(
    uow: UnitOfWork, *, actor: Principal, premise_id: uuid.UUID, data: PremiseUpdate
) -> Premise:
    premise = await uow.session.get(Premise, premise_id, with_for_update=True)
    if premise is None:
        raise PremiseNotFound("No premise with this id.")
    fields = data.model_dump(exclude_unset=True)
    before = {k: getattr(premise, k) for k in fields}
    changed = [k for k, v in fields.items() if v != getattr(premise, k)]
    if not changed:
        return premise
    for k in changed:
        setattr(premise, k, fields[k])
    await uow.session.flush()
    audit.record(
        uow,
        actor,
        "premise.updated",
        "premise",
        premise.id,
        before=before,
        after={k: getattr(premise, k) for k in fields},
    )
    account_nos = list(
        (
            await uow.session.execute(
                select(Account.account_no).where(Account.premise_id == premise.id, Account.status != "closed")
            )
        ).scalars()
    )
    for account_no in account_nos or [str(premise.id)]:
        uow.emit(
            ev.catalog.build(
                ev.PremiseUpdated(
                    account_nos=account_nos, premise=premise_ref(premise), changed_fields=changed
                ),
                subject=account_no,
            )
        )
        if not account_nos:
            break
    if "property_cert_no" in changed:
        holders = (
            (
                await uow.session.execute(
                    select(Account.customer_id).where(Account.premise_id == premise.id).distinct()
                )
            )
            .scalars()
            .all()
        )
        for holder in holders:
            await duplicates.flag_for_customer(uow, holder)
    return premise


async def install_meter(uow: UnitOfWork, *, actor: Principal, account_no: str, data: MeterIn) -> Account:
    account = await load_account(uow, account_no)
    rules.check_can_change(AccountStatus(account.status))
    meter = await _new_meter(uow, data, "serial_no")
    meter.account_id = account.id
    account.meters.append(meter)
    await uow.session.flush()
    audit.record(uow, actor, "meter.installed", "account", account_no, after={"serial_no": meter.serial_no})
    uow.emit(
        ev.catalog.build(ev.MeterInstalled(account_no=account_no, meter=meter_ref(meter)), subject=account_no)
    )
    return account


async def replace_meter(
    uow: UnitOfWork, *, actor: Principal, account_no: str, serial_no: str, data: MeterReplacementCreate
) -> Account:
    account = await load_account(uow, account_no)
    rules.check_can_change(AccountStatus(account.status))
    old = next((m for m in account.meters if m.serial_no == serial_no and m.status == "installed"), None)
    if old is None:
        raise MeterNotFound(f"No installed meter {serial_no} on account {account_no}.")
    if data.final_reading < old.initial_reading:
        raise invalid_field(
            "final_reading",
            "reading_below_initial",
            "The old meter's final reading is below its initial reading.",
        )
    if data.removed_on < old.installed_on or data.new_meter.installed_on < data.removed_on:
        raise invalid_field(
            "removed_on",
            "replacement_dates_out_of_order",
            "Removal must follow installation, and the new meter must follow the removal.",
        )
    old.status, old.removed_on, old.final_reading = "removed", data.removed_on, data.final_reading
    await uow.session.flush()  # frees the serial before the new meter (possibly the same serial) goes in
    new = await _new_meter(uow, data.new_meter, "new_meter.serial_no")
    new.account_id = account.id
    account.meters.append(new)
    await uow.session.flush()
    old.replaced_by_id = new.id
    await uow.session.flush()
    audit.record(
        uow,
        actor,
        "meter.replaced",
        "account",
        account_no,
        before={"serial_no": old.serial_no},
        after={"serial_no": new.serial_no},
        final_reading=data.final_reading,
    )
    uow.emit(
        ev.catalog.build(
            ev.MeterReplaced(
                account_no=account_no,
                old_meter_id=old.id,
                old_serial_no=old.serial_no,
                removed_on=data.removed_on,
                final_reading=data.final_reading,
                new_meter=meter_ref(new),
            ),
            subject=account_no,
        )
    )
    return account


async def merge_customers(
    uow: UnitOfWork, *, actor: Principal, target_id: uuid.UUID, source_id: uuid.UUID
) -> Customer:
    """Merge a duplicate record into the survivor: accounts, contacts and tags move; the source is marked
    merged (kept, for the audit trail); open duplicate flags between the two close as merged."""
    if target_id == source_id:
        raise invalid_field(
            "source_customer_id", "merge_into_self", "A customer cannot be merged into itself."
        )
    # Lock both in id order so two opposite merges cannot deadlock.
    first, second = sorted([target_id, source_id])
    locked = {first: await load_active(uow, first), second: await load_active(uow, second)}
    target, source = locked[target_id], locked[source_id]
    before = {"target": masked_snapshot(target), "source": masked_snapshot(source)}
    moved = list(
        (
            await uow.session.execute(
                update(Account)
                .where(Account.customer_id == source.id)
                .values(customer_id=target.id, version=Account.version + 1)
                .returning(Account.account_no)
            )
        ).scalars()
    )
    have = {c.phone_bidx for c in target.contacts}
    for contact in list(source.contacts):
        if contact.phone_bidx not in have:
            target.contacts.append(
                Contact(
                    id=new_id(),
                    kind=contact.kind,
                    label=contact.label,
                    phone_enc=contact.phone_enc,
                    phone_bidx=contact.phone_bidx,
                    phone_masked=contact.phone_masked,
                    is_primary=False,
                )
            )
            have.add(contact.phone_bidx)
    tags = {t.tag for t in target.tags}
    for tag in source.tags:
        if tag.tag not in tags:
            target.tags.append(CustomerTagRow(tag=tag.tag, created_by=actor.audit_actor))
    source.status = "merged"
    source.merged_into_id = target.id
    # The merged record gives up its identity document so the unique index keeps one live holder.
    if target.id_number_bidx is None and source.id_number_bidx is not None:
        target.id_number_enc, target.id_number_bidx, target.id_number_masked = (
            source.id_number_enc,
            source.id_number_bidx,
            source.id_number_masked,
        )
    await uow.session.execute(
        update(DuplicateFlag)
        .where(
            DuplicateFlag.status == "open",
            ((DuplicateFlag.customer_id == source.id) & (DuplicateFlag.duplicate_of_id == target.id))
            | ((DuplicateFlag.customer_id == target.id) & (DuplicateFlag.duplicate_of_id == source.id)),
        )
        .values(status="merged", resolved_by=actor.audit_actor, resolved_at=utcnow())
    )
    await uow.session.flush()
    audit.record(
        uow,
        actor,
        "customer.merged",
        "customer",
        target.id,
        before=before,
        after={"target": masked_snapshot(target), "moved_account_nos": moved},
        merged_customer_id=str(source.id),
    )
    uow.emit(
        ev.catalog.build(
            ev.CustomersMerged(customer_id=target.id, merged_customer_id=source.id, moved_account_nos=moved),
            subject=str(target.id),
        )
    )
    return target


async def dismiss_duplicate(uow: UnitOfWork, *, actor: Principal, flag_id: uuid.UUID) -> DuplicateFlag:
    flag = await uow.session.get(DuplicateFlag, flag_id, with_for_update=True)
    if flag is None:
        raise DuplicateFlagNotFound("No duplicate flag with this id.")
    if flag.status != "open":
        raise conflict("duplicate_flag_resolved", f"This flag is already {flag.status}.")
    flag.status, flag.resolved_by, flag.resolved_at = "dismissed", actor.audit_actor, utcnow()
    await uow.session.flush()
    audit.record(
        uow,
        actor,
        "duplicate.dismissed",
        "customer",
        flag.customer_id,
        duplicate_of=str(flag.duplicate_of_id),
    )
    return flag
