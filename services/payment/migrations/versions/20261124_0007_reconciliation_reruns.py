"""reconciliation re-runs: a day's statement file may have several runs (the import's own, then re-runs
when an earlier day's cut-over carry changed), so one run per import is no longer a constraint

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24 06:00:00.000000

Forward-only. The previous release looked a file's run up expecting one: during a rolling update it would
fail on importing again the very bytes of a day that a newer pod had re-run (a retry of a file already
imported); anything else works on both sides.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_reconciliation_runs_import", "reconciliation_runs", ["import_id"], unique=False)
    op.drop_constraint("uq_reconciliation_runs_import", "reconciliation_runs", type_="unique")


def downgrade() -> None:
    raise RuntimeError("forward-only migrations: roll back the code, not the schema (docs/migrations.md)")
