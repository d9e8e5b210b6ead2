"""staff role billing_supervisor (approves late-fee waivers in the metering-and-billing service)

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23 19:00:00

Expand only: the known-roles check accepts one more role; every stored row still passes it, and the
previous release never writes the new role.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_constraint("ck_staff_users_known_roles", "staff_users", type_="check")
    op.create_check_constraint(
        "ck_staff_users_known_roles",
        "staff_users",
        "roles <@ ARRAY['agent', 'dispatcher', 'technician', 'inspector', 'billing_clerk', "
        "'billing_supervisor', 'analyst', 'admin']::varchar[]",
    )


def downgrade() -> None:
    raise RuntimeError("forward-only migrations: roll back the code, not the schema (docs/migrations.md)")
