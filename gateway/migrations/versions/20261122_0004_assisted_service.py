"""assisted service: the audit log of RFC 8693 token exchanges; the closed list of channels

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 04:45:00

Additive: a new table, and a check constraint on ``oauth_clients.channel`` naming the channels of
``gateway.domain.channels`` (written out here: a migration must not change when the code does). The
constraint is added NOT VALID, then validated, so the table is not locked while existing rows are checked;
the rows the earlier migrations and the demo set create (staff_console, mobile_app, bank, regulator)
satisfy it. The previous release never writes another channel except through ``gateway add-client``,
which now refuses unknown ones too.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHANNELS = (
    "mobile_app",
    "wechat_mini_program",
    "alipay_mini_program",
    "web",
    "ivr",
    "service_counter",
    "hotline",
    "staff_console",
    "bank",
    "payment_provider",
    "regulator",
)
KNOWN_CHANNEL = f"channel IN ({', '.join(repr(c) for c in CHANNELS)})"


def upgrade() -> None:
    op.execute(
        f"ALTER TABLE oauth_clients ADD CONSTRAINT ck_oauth_clients_known_channel CHECK ({KNOWN_CHANNEL}) NOT VALID"
    )
    op.execute("ALTER TABLE oauth_clients VALIDATE CONSTRAINT ck_oauth_clients_known_channel")

    op.create_table(
        "assisted_service_log",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("token_id", sa.String(length=64), nullable=False, comment="jti of the issued token"),
        sa.Column("staff_username", sa.String(length=64), nullable=False, comment="the act claim's sub"),
        sa.Column("staff_roles", postgresql.ARRAY(sa.String(length=32)), nullable=False),
        sa.Column(
            "actor_token_id", sa.String(length=64), nullable=True, comment="jti of the staff's own token"
        ),
        sa.Column("account_no", sa.String(length=32), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=False, comment="the issued token's sub"),
        sa.Column(
            "reason", sa.String(length=200), nullable=False, comment="hotline ticket, counter visit, ..."
        ),
        sa.Column("client_id", sa.String(length=100), nullable=False),
        sa.Column("channel", sa.String(length=40), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(KNOWN_CHANNEL, name=op.f("ck_assisted_service_log_known_channel")),
        sa.CheckConstraint("length(btrim(reason)) > 0", name=op.f("ck_assisted_service_log_has_reason")),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["oauth_clients.client_id"],
            name=op.f("fk_assisted_service_log_client_id_oauth_clients"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_assisted_service_log")),
        sa.UniqueConstraint("token_id", name=op.f("uq_assisted_service_log_token_id")),
    )
    op.create_index(
        "ix_assisted_service_log_account_no",
        "assisted_service_log",
        ["account_no", "issued_at"],
        unique=False,
    )
    op.create_index(
        "ix_assisted_service_log_staff_username",
        "assisted_service_log",
        ["staff_username", "issued_at"],
        unique=False,
    )
    op.create_index("ix_assisted_service_log_issued_at", "assisted_service_log", ["issued_at"], unique=False)


def downgrade() -> None:
    raise RuntimeError("forward-only migrations: roll back the code, not the schema (docs/migrations.md)")
