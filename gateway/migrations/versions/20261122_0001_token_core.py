"""token core: signing keys, staff, clients, refresh-token families, revoked access tokens

Revision ID: 0001
Revises:
Create Date: 2026-11-22 02:38:50.173177

Forward-only, expand-then-contract: the previous release must still run against this schema.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "oauth_clients",
        sa.Column("client_id", sa.String(length=100), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("client_type", sa.String(length=20), nullable=False),
        sa.Column("secret_hash", sa.Text(), nullable=True, comment="argon2id; null for public clients"),
        sa.Column("grant_types", postgresql.ARRAY(sa.String(length=40)), nullable=False),
        sa.Column(
            "scopes",
            postgresql.ARRAY(sa.String(length=64)),
            nullable=False,
            comment="the most it may be granted",
        ),
        sa.Column(
            "channel", sa.String(length=40), nullable=False, comment="attributed to every token it obtains"
        ),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "(client_type = 'public') = (secret_hash IS NULL)",
            name=op.f("ck_oauth_clients_secret_iff_confidential"),
        ),
        sa.CheckConstraint(
            "client_type IN ('public', 'confidential')", name=op.f("ck_oauth_clients_client_type")
        ),
        sa.CheckConstraint("status IN ('active', 'disabled')", name=op.f("ck_oauth_clients_status")),
        sa.PrimaryKeyConstraint("client_id", name=op.f("pk_oauth_clients")),
    )
    op.create_table(
        "revoked_access_tokens",
        sa.Column("jti", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("jti", name=op.f("pk_revoked_access_tokens")),
    )
    op.create_index(
        op.f("ix_revoked_access_tokens_expires_at"), "revoked_access_tokens", ["expires_at"], unique=False
    )
    op.create_table(
        "signing_keys",
        sa.Column("kid", sa.String(length=64), nullable=False),
        sa.Column("algorithm", sa.String(length=10), nullable=False),
        sa.Column(
            "private_key_enc", sa.Text(), nullable=False, comment="PKCS#8 PEM, encrypted (field signing_key)"
        ),
        sa.Column("public_jwk", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("algorithm IN ('ES256')", name=op.f("ck_signing_keys_algorithm")),
        sa.PrimaryKeyConstraint("kid", name=op.f("pk_signing_keys")),
    )
    op.create_index(
        "uq_signing_keys_one_active",
        "signing_keys",
        [sa.literal_column("(true)")],
        unique=True,
        postgresql_where=sa.text("retired_at IS NULL"),
    )
    op.create_table(
        "staff_users",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False, comment="lower case; the token's sub"),
        sa.Column("display_name", sa.String(length=100), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=False, comment="argon2id"),
        sa.Column("roles", postgresql.ARRAY(sa.String(length=32)), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("failed_attempts", sa.Integer(), nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_login_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "roles <@ ARRAY['agent', 'dispatcher', 'technician', 'inspector', 'billing_clerk', 'analyst', 'admin']::varchar[]",
            name=op.f("ck_staff_users_known_roles"),
        ),
        sa.CheckConstraint("status IN ('active', 'disabled')", name=op.f("ck_staff_users_status")),
        sa.CheckConstraint("cardinality(roles) > 0", name=op.f("ck_staff_users_has_role")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_staff_users")),
        sa.UniqueConstraint("username", name=op.f("uq_staff_users_username")),
    )
    op.create_table(
        "refresh_token_families",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("client_id", sa.String(length=100), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.Column("subject_kind", sa.String(length=20), nullable=False),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("channel", sa.String(length=40), nullable=True),
        sa.Column(
            "context",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False, comment="absolute lifetime"),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_reason", sa.String(length=40), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["oauth_clients.client_id"],
            name=op.f("fk_refresh_token_families_client_id_oauth_clients"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_refresh_token_families")),
    )
    op.create_index(
        "ix_refresh_token_families_subject",
        "refresh_token_families",
        ["subject_kind", "subject"],
        unique=False,
    )
    op.create_table(
        "refresh_tokens",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("family_id", sa.UUID(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False, comment="SHA-256 hex of the token"),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "status IN ('active', 'rotated', 'revoked')", name=op.f("ck_refresh_tokens_status")
        ),
        sa.ForeignKeyConstraint(
            ["family_id"],
            ["refresh_token_families.id"],
            name=op.f("fk_refresh_tokens_family_id_refresh_token_families"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_refresh_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_refresh_tokens_token_hash")),
    )
    op.create_index(op.f("ix_refresh_tokens_family_id"), "refresh_tokens", ["family_id"], unique=False)
    op.create_table(
        "idempotency_keys",
        sa.Column(
            "scope", sa.String(length=200), nullable=False, comment="who used the key: subject + route"
        ),
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column("response_body", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("scope", "key", name=op.f("pk_idempotency_keys")),
    )
    op.create_table(
        "inbox_messages",
        sa.Column("consumer", sa.String(length=100), nullable=False),
        sa.Column("event_id", sa.UUID(), nullable=False),
        sa.Column("event_type", sa.String(length=200), nullable=False),
        sa.Column("topic", sa.String(length=200), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("offset", sa.BigInteger(), nullable=False),
        sa.Column(
            "processed_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.PrimaryKeyConstraint("consumer", "event_id", name=op.f("pk_inbox_messages")),
    )
    op.create_table(
        "outbox_messages",
        sa.Column("id", sa.UUID(), nullable=False, comment="the event id"),
        sa.Column("topic", sa.String(length=200), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False, comment="partition key: the aggregate id"),
        sa.Column("event_type", sa.String(length=200), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False, comment="the serialised event envelope"),
        sa.Column(
            "headers",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column(
            "available_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "seq", sa.BigInteger(), sa.Identity(always=True), nullable=False, comment="publishing order"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox_messages")),
    )
    op.create_index(
        "ix_outbox_messages_pending",
        "outbox_messages",
        ["seq"],
        unique=False,
        postgresql_where=sa.text("sent_at IS NULL"),
    )
    op.create_index(
        "ix_outbox_messages_sent_at",
        "outbox_messages",
        ["sent_at"],
        unique=False,
        postgresql_where=sa.text("sent_at IS NOT NULL"),
    )
    # The staff console: the first-party public client of the staff password grant (no secret; staff
    # authenticate themselves). Present in every environment; partner clients are registered per utility.
    op.execute(
        "INSERT INTO oauth_clients (client_id, name, client_type, secret_hash, grant_types, scopes, channel, status)"
        " VALUES ('staff-console', '员工工作台', 'public', NULL, ARRAY['password', 'refresh_token'],"
        " ARRAY[]::varchar[], 'staff_console', 'active')"
    )


def downgrade() -> None:
    raise RuntimeError("forward-only migrations: roll back the code, not the schema (docs/migrations.md)")
