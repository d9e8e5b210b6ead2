"""The gateway's tables (database ``gateway``). Only the gateway reads or writes them.

Secrets are never stored as given: staff passwords and client secrets as argon2id hashes, refresh tokens
as SHA-256 digests (they are long random strings, so a fast hash is enough), signing keys encrypted with
the PII key ring (field ``signing_key``).
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from gateway.domain.channels import check_constraint_sql
from utilis_shared.db import TimestampMixin, make_metadata
from utilis_shared.ids import new_id


class Base(DeclarativeBase):
    metadata = make_metadata()


class SigningKey(TimestampMixin, Base):
    """An ES256 key pair. One is active (``retired_at IS NULL``); retired keys stay published in the JWKS
    until every token they signed has expired (``retired_at`` + the access-token lifetime)."""

    __tablename__ = "signing_keys"

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    algorithm: Mapped[str] = mapped_column(String(10), default="ES256")
    private_key_enc: Mapped[str] = mapped_column(Text, comment="PKCS#8 PEM, encrypted (field signing_key)")
    public_jwk: Mapped[dict[str, Any]] = mapped_column(JSONB)
    retired_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        CheckConstraint("algorithm IN ('ES256')", name="algorithm"),
        # At most one active key, whatever two concurrent rotations try.
        Index(
            "uq_signing_keys_one_active",
            text("(true)"),
            unique=True,
            postgresql_where=text("retired_at IS NULL"),
        ),
    )


class StaffUser(TimestampMixin, Base):
    __tablename__ = "staff_users"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=new_id)
    username: Mapped[str] = mapped_column(String(64), unique=True, comment="lower case; the token's sub")
    display_name: Mapped[str] = mapped_column(String(100), default="")
    password_hash: Mapped[str] = mapped_column(Text, comment="argon2id")
    roles: Mapped[list[str]] = mapped_column(ARRAY(String(32)))
    status: Mapped[str] = mapped_column(String(20), default="active")  # active | disabled
    failed_attempts: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        CheckConstraint("status IN ('active', 'disabled')", name="status"),
        CheckConstraint("cardinality(roles) > 0", name="has_role"),
        CheckConstraint(
            "roles <@ ARRAY['agent', 'dispatcher', 'technician', 'inspector', 'billing_clerk',"
            " 'billing_supervisor', 'analyst', 'admin']::varchar[]",
            name="known_roles",
        ),
    )


class OAuthClient(TimestampMixin, Base):
    """A registered client: a first-party public client (the staff console; the resident apps next) or a
    confidential partner system (bank, payment provider, regulator) with a secret and allowed scopes."""

    __tablename__ = "oauth_clients"

    client_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    client_type: Mapped[str] = mapped_column(String(20))  # public | confidential
    secret_hash: Mapped[str | None] = mapped_column(Text, comment="argon2id; null for public clients")
    grant_types: Mapped[list[str]] = mapped_column(ARRAY(String(100)))
    scopes: Mapped[list[str]] = mapped_column(ARRAY(String(64)), comment="the most it may be granted")
    channel: Mapped[str] = mapped_column(String(40), comment="attributed to every token it obtains")
    status: Mapped[str] = mapped_column(String(20), default="active")  # active | disabled

    __table_args__ = (
        CheckConstraint("client_type IN ('public', 'confidential')", name="client_type"),
        CheckConstraint("status IN ('active', 'disabled')", name="status"),
        CheckConstraint("(client_type = 'public') = (secret_hash IS NULL)", name="secret_iff_confidential"),
        CheckConstraint(check_constraint_sql(), name="known_channel"),  # gateway.domain.channels
    )


class RefreshTokenFamily(TimestampMixin, Base):
    """One sign-in and every refresh token rotated from it."""

    __tablename__ = "refresh_token_families"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=new_id)
    client_id: Mapped[str] = mapped_column(String(100), ForeignKey("oauth_clients.client_id"))
    subject: Mapped[str] = mapped_column(String(200))
    subject_kind: Mapped[str] = mapped_column(String(20))
    scope: Mapped[str] = mapped_column(Text, default="")
    channel: Mapped[str | None] = mapped_column(String(40))
    context: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), comment="absolute lifetime")
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_reason: Mapped[str | None] = mapped_column(String(40))

    __table_args__ = (Index("ix_refresh_token_families_subject", "subject_kind", "subject"),)


class RefreshToken(Base):
    __tablename__ = "refresh_tokens"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=new_id)
    family_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("refresh_token_families.id", ondelete="CASCADE"), index=True
    )
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, comment="SHA-256 hex of the token")
    status: Mapped[str] = mapped_column(String(20), default="active")  # active | rotated | revoked
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )

    __table_args__ = (CheckConstraint("status IN ('active', 'rotated', 'revoked')", name="status"),)


class RevokedAccessToken(TimestampMixin, Base):
    """Access tokens revoked before their expiry (RFC 7009), by ``jti``; kept until they would have
    expired anyway, so introspection reports them inactive."""

    __tablename__ = "revoked_access_tokens"

    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    subject: Mapped[str] = mapped_column(String(200))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class ResidentAccount(Base):
    """An account a resident may act on, bound to their phone (by its blind index: no phone stored).
    Filled by ``bind_accounts`` (the ``gateway bind-phone`` CLI for now; later the consumer of the
    customer service's ``customer.account.opened`` / ``customer.account.transferred`` events)."""

    __tablename__ = "resident_accounts"

    phone_bidx: Mapped[str] = mapped_column(String(64), primary_key=True, comment="blind index, field phone")
    account_no: Mapped[str] = mapped_column(String(32), primary_key=True, index=True)
    bound_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    source: Mapped[str] = mapped_column(String(40), comment="manual | customer.account.opened | ...")


# --- Resident account binding from the customer service's events (issue 3; migration 0003) -------------
# The gateway never reads the customer database: the consumer (``gateway consumer``, service_layer/
# bindings.py) keeps these local copies from ``customer.events``. No personal data in clear: holder names
# and phones only as blind indexes (the customer service's key ring, fields ``holder_name`` and ``phone``).


class BindingAccount(Base):
    """An account as the gateway knows it from the events: its holder (customer id) and whether it is
    closed (a closed account is never actable, whatever bindings remain)."""

    __tablename__ = "binding_accounts"

    account_no: Mapped[str] = mapped_column(String(32), primary_key=True)
    customer_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), index=True, comment="the holder; null when only a closure was seen"
    )
    status: Mapped[str] = mapped_column(String(20), default="open")  # open | closed
    holder_since: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), comment="event time of the holder assignment (opened/transferred/merged)"
    )
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )

    __table_args__ = (CheckConstraint("status IN ('open', 'closed')", name="status"),)


class BindingCustomer(Base):
    """A holder as the gateway knows it from the events: the blind index of the normalised name (the
    verification factor of binding by account number) and the blind indexes of the contact phones, each
    with the event time it comes from (older events never overwrite newer ones)."""

    __tablename__ = "binding_customers"

    customer_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    name_bidx: Mapped[str | None] = mapped_column(String(64), comment="blind index, field holder_name")
    name_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    phone_bidxs: Mapped[list[str]] = mapped_column(
        ARRAY(String(64)), server_default=text("'{}'::varchar[]"), comment="blind indexes, field phone"
    )
    phones_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    merged_into: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class ResidentIdentity(Base):
    """The phone blind index behind a resident token's ``sub`` (which carries only its first 32 hex
    digits), recorded at SMS sign-in, so the resident API can find the resident's bindings."""

    __tablename__ = "resident_identities"

    subject: Mapped[str] = mapped_column(String(64), primary_key=True)
    phone_bidx: Mapped[str] = mapped_column(String(64), unique=True, comment="blind index, field phone")
    first_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    last_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


# --- Assisted service (issue 3; migration 0004) ----------------------------------------------------------


class AssistedServiceLog(Base):
    """One row per assisted-service token (RFC 8693 token exchange): which staff member acted for which
    account, why, through which staff tool and channel, and until when. Written in the transaction that
    issues the token, so there is no assisted token without its row. No personal data: the account number,
    the staff username and the reason the staff typed (a ticket number, "counter visit")."""

    __tablename__ = "assisted_service_log"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=new_id)
    token_id: Mapped[str] = mapped_column(String(64), unique=True, comment="jti of the issued token")
    staff_username: Mapped[str] = mapped_column(String(64), comment="the act claim's sub")
    staff_roles: Mapped[list[str]] = mapped_column(ARRAY(String(32)))
    actor_token_id: Mapped[str | None] = mapped_column(String(64), comment="jti of the staff's own token")
    account_no: Mapped[str] = mapped_column(String(32))
    subject: Mapped[str] = mapped_column(String(200), comment="the issued token's sub")
    reason: Mapped[str] = mapped_column(String(200), comment="hotline ticket, counter visit, ...")
    client_id: Mapped[str] = mapped_column(String(100), ForeignKey("oauth_clients.client_id"))
    channel: Mapped[str] = mapped_column(String(40))
    issued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        CheckConstraint(check_constraint_sql(), name="known_channel"),
        CheckConstraint("length(btrim(reason)) > 0", name="has_reason"),
        Index("ix_assisted_service_log_account_no", "account_no", "issued_at"),
        Index("ix_assisted_service_log_staff_username", "staff_username", "issued_at"),
        Index("ix_assisted_service_log_issued_at", "issued_at"),
    )


# --- Channel usage (issue 3; migration 0005) -------------------------------------------------------------


class ChannelUsage(Base):
    """Proxied requests per business day (Asia/Shanghai), channel and service: the regulator's
    self-service usage report. Counted in memory by each API process and added here every few seconds."""

    __tablename__ = "channel_usage"

    day: Mapped[date] = mapped_column(Date, primary_key=True, comment="business date, Asia/Shanghai")
    channel: Mapped[str] = mapped_column(String(40), primary_key=True)
    upstream: Mapped[str] = mapped_column(String(40), primary_key=True, comment="the service called")
    requests: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (CheckConstraint("requests >= 0", name="requests_not_negative"),)
