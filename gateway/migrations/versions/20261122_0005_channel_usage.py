"""channel usage: requests per business day, channel and service, for the self-service usage report

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22 05:05:00

Additive: one new table. The API processes count proxied requests in memory and add their counts here
every few seconds (``INSERT ... ON CONFLICT DO UPDATE SET requests = requests + excluded.requests``), so
several replicas add up and no request writes to the database.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "channel_usage",
        sa.Column("day", sa.Date(), nullable=False, comment="business date, Asia/Shanghai"),
        sa.Column("channel", sa.String(length=40), nullable=False),
        sa.Column("upstream", sa.String(length=40), nullable=False, comment="the service called"),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("requests >= 0", name=op.f("ck_channel_usage_requests_not_negative")),
        sa.PrimaryKeyConstraint("day", "channel", "upstream", name=op.f("pk_channel_usage")),
    )


def downgrade() -> None:
    op.drop_table("channel_usage")
