"""resident sign-in: accounts bound to a phone (blind index), the mobile-app public client, wider
grant_types

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 03:25:00

Additive only: a new table, a new client row and a wider column; the previous release ignores them.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "resident_accounts",
        sa.Column("phone_bidx", sa.String(length=64), nullable=False, comment="blind index, field phone"),
        sa.Column("account_no", sa.String(length=32), nullable=False),
        sa.Column("bound_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column(
            "source", sa.String(length=40), nullable=False, comment="manual | customer.account.opened | ..."
        ),
        sa.PrimaryKeyConstraint("phone_bidx", "account_no", name=op.f("pk_resident_accounts")),
    )
    op.create_index(
        op.f("ix_resident_accounts_account_no"), "resident_accounts", ["account_no"], unique=False
    )
    # Grant type URNs are longer than 40 characters. Widening a varchar is a catalogue-only change in
    # PostgreSQL (no rewrite) and the previous release reads the column unchanged.
    op.alter_column(
        "oauth_clients",
        "grant_types",
        type_=postgresql.ARRAY(sa.String(length=100)),
        existing_type=postgresql.ARRAY(sa.String(length=40)),
        existing_nullable=False,
    )
    # The resident mobile app: a first-party public client of the SMS-code grant (no secret).
    op.execute(
        "INSERT INTO oauth_clients (client_id, name, client_type, secret_hash, grant_types, scopes, channel, status)"
        " VALUES ('mobile-app', '居民手机应用', 'public', NULL,"
        " ARRAY['urn:utilis:params:oauth:grant-type:sms-otp', 'refresh_token'],"
        " ARRAY[]::varchar[], 'mobile_app', 'active') ON CONFLICT (client_id) DO NOTHING"
    )


def downgrade() -> None:
    raise RuntimeError("forward-only migrations: roll back the code, not the schema (docs/migrations.md)")
