"""readings: meter readings, review queue, heating telemetry

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 18:30:00.000000

Forward-only, expand-then-contract: the previous release must still run against this schema.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _timestamps() -> list[sa.Column]:
    return [
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "meters",
        sa.Column("meter_id", sa.UUID(), nullable=False, comment="the customer service's meter id"),
        sa.Column("account_no", sa.String(length=20), nullable=False),
        sa.Column("serial_no", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("multiplier", sa.Numeric(precision=10, scale=3), nullable=False),
        sa.Column("reading_mode", sa.String(length=10), nullable=False),
        sa.Column("digits", sa.Integer(), nullable=False, comment="integer digits of the register"),
        sa.Column("installed_on", sa.Date(), nullable=False),
        sa.Column("initial_reading", sa.Numeric(precision=14, scale=3), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("removed_on", sa.Date(), nullable=True),
        sa.Column("removed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("final_reading", sa.Numeric(precision=14, scale=3), nullable=True),
        sa.Column("replaced_by_id", sa.UUID(), nullable=True),
        sa.Column("last_event_at", sa.DateTime(timezone=True), nullable=False),
        *_timestamps(),
        sa.CheckConstraint("status IN ('active', 'removed')", name=op.f("ck_meters_status")),
        sa.CheckConstraint("multiplier > 0", name=op.f("ck_meters_multiplier_positive")),
        sa.CheckConstraint("digits BETWEEN 1 AND 15", name=op.f("ck_meters_digits_range")),
        sa.PrimaryKeyConstraint("meter_id", name=op.f("pk_meters")),
    )
    op.create_index("ix_meters_account_no", "meters", ["account_no"], unique=False)
    op.create_index("ix_meters_serial_no", "meters", ["serial_no"], unique=False)

    op.create_table(
        "meter_readings",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("account_no", sa.String(length=20), nullable=False),
        sa.Column("meter_id", sa.UUID(), nullable=False),
        sa.Column("meter_serial", sa.String(length=40), nullable=False),
        sa.Column("read_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("value", sa.Numeric(precision=14, scale=3), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("entered_by", sa.String(length=200), nullable=False),
        sa.Column("photo_ref", sa.String(length=500), nullable=True),
        sa.Column(
            "external_id", sa.String(length=200), nullable=True, comment="sender's id: bulk and IoT dedupe"
        ),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column(
            "flags",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
        sa.Column("kind", sa.String(length=20), nullable=True),
        sa.Column("consumption", sa.Numeric(precision=16, scale=3), nullable=True, comment="register units"),
        sa.Column(
            "volume",
            sa.Numeric(precision=20, scale=6),
            nullable=True,
            comment="billable volume since previous_reading_id (x multiplier); set when accepted",
        ),
        sa.Column("previous_reading_id", sa.UUID(), nullable=True),
        sa.Column("estimate", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("reviewed_by", sa.String(length=200), nullable=True),
        sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("review_note", sa.String(length=500), nullable=True),
        *_timestamps(),
        sa.CheckConstraint(
            "source IN ('manual', 'remote_batch', 'iot_gateway', 'self_reported', 'estimated', 'installation')",
            name=op.f("ck_meter_readings_source"),
        ),
        sa.CheckConstraint(
            "status IN ('accepted', 'pending_review', 'rejected')", name=op.f("ck_meter_readings_status")
        ),
        sa.CheckConstraint(
            "source <> 'self_reported' OR photo_ref IS NOT NULL",
            name=op.f("ck_meter_readings_self_report_has_photo"),
        ),
        sa.CheckConstraint("value >= 0", name=op.f("ck_meter_readings_value_not_negative")),
        sa.ForeignKeyConstraint(
            ["meter_id"], ["meters.meter_id"], name=op.f("fk_meter_readings_meter_id_meters")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_meter_readings")),
        sa.UniqueConstraint("external_id", name="uq_meter_readings_external_id"),
    )
    op.create_index(
        "ix_meter_readings_billable",
        "meter_readings",
        ["account_no", "status", "read_at"],
        unique=False,
    )
    op.create_index(
        "ix_meter_readings_account_read_at", "meter_readings", ["account_no", "read_at", "id"], unique=False
    )
    op.create_index(
        "ix_meter_readings_review",
        "meter_readings",
        ["status", "id"],
        unique=False,
    )

    op.create_table(
        "reading_true_ups",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("account_no", sa.String(length=20), nullable=False),
        sa.Column("actual_reading_id", sa.UUID(), nullable=False),
        sa.Column("estimate_reading_ids", postgresql.ARRAY(sa.UUID()), nullable=False),
        sa.Column("actual_consumption", sa.Numeric(precision=16, scale=3), nullable=False),
        sa.Column("estimated_consumption", sa.Numeric(precision=16, scale=3), nullable=False),
        sa.Column("correction", sa.Numeric(precision=16, scale=3), nullable=False),
        sa.Column("correction_volume", sa.Numeric(precision=20, scale=6), nullable=False),
        sa.Column("direction", sa.String(length=10), nullable=False),
        sa.Column("description_zh", sa.Text(), nullable=False),
        sa.Column("description_en", sa.Text(), nullable=False),
        *_timestamps(),
        sa.CheckConstraint(
            "direction IN ('debit', 'credit', 'none')", name=op.f("ck_reading_true_ups_direction")
        ),
        sa.ForeignKeyConstraint(
            ["actual_reading_id"],
            ["meter_readings.id"],
            name=op.f("fk_reading_true_ups_actual_reading_id_meter_readings"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reading_true_ups")),
        sa.UniqueConstraint("actual_reading_id", name="uq_reading_true_ups_actual_reading_id"),
    )
    op.create_index("ix_reading_true_ups_account_no", "reading_true_ups", ["account_no"], unique=False)

    op.create_table(
        "account_premises",
        sa.Column("account_no", sa.String(length=20), nullable=False),
        sa.Column("premise_id", sa.String(length=80), nullable=False),
        sa.Column("last_event_at", sa.DateTime(timezone=True), nullable=False),
        *_timestamps(),
        sa.PrimaryKeyConstraint("account_no", name=op.f("pk_account_premises")),
    )

    op.create_table(
        "telemetry_sites",
        sa.Column("site_kind", sa.String(length=20), nullable=False),
        sa.Column("site_id", sa.String(length=80), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column(
            "min_return_c",
            sa.Numeric(precision=5, scale=2),
            nullable=True,
            comment="this site's minimum return temperature; NULL: the service default",
        ),
        sa.Column("substation_id", sa.String(length=80), nullable=True, comment="a premise's substation"),
        *_timestamps(),
        sa.CheckConstraint(
            "site_kind IN ('premise', 'substation')", name=op.f("ck_telemetry_sites_site_kind")
        ),
        sa.PrimaryKeyConstraint("site_kind", "site_id", name=op.f("pk_telemetry_sites")),
    )

    op.create_table(
        "telemetry_samples",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("site_kind", sa.String(length=20), nullable=False),
        sa.Column("site_id", sa.String(length=80), nullable=False),
        sa.Column("device_id", sa.String(length=80), nullable=False),
        sa.Column("measured_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("supply_c", sa.Numeric(precision=5, scale=2), nullable=True),
        sa.Column("return_c", sa.Numeric(precision=5, scale=2), nullable=True),
        *_timestamps(),
        sa.CheckConstraint(
            "site_kind IN ('premise', 'substation')", name=op.f("ck_telemetry_samples_site_kind")
        ),
        sa.CheckConstraint(
            "supply_c IS NOT NULL OR return_c IS NOT NULL", name=op.f("ck_telemetry_samples_has_temperature")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_telemetry_samples")),
        sa.UniqueConstraint(
            "site_kind", "site_id", "device_id", "measured_at", name="uq_telemetry_samples_site_device_time"
        ),
    )
    op.create_index(
        "ix_telemetry_samples_site_time",
        "telemetry_samples",
        ["site_kind", "site_id", "measured_at"],
        unique=False,
    )


def downgrade() -> None:
    raise RuntimeError("forward-only migrations: roll back the code, not the schema (docs/migrations.md)")
