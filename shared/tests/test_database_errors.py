"""Database errors a client can act on become 409/503 problems, not 500s."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError, ProgrammingError

from utilis_shared.errors import database_problem


class _Orig(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


@pytest.mark.parametrize(
    ("exc", "status", "code"),
    [
        (IntegrityError("INSERT", {}, _Orig("23505")), 409, "conflict"),
        (IntegrityError("INSERT", {}, _Orig("23514")), 422, "constraint_violated"),
        (DBAPIError("UPDATE", {}, _Orig("40P01")), 503, "service_busy"),
        (DBAPIError("UPDATE", {}, _Orig("40001")), 503, "service_busy"),
        (OperationalError("SELECT 1", {}, _Orig("08006")), 503, "service_unavailable"),
    ],
)
def test_actionable_database_errors(exc, status: int, code: str) -> None:
    problem = database_problem(exc)
    assert problem is not None and (problem.status, problem.code) == (status, code)
    if status == 503:
        assert problem.headers and int(problem.headers["Retry-After"]) > 0


def test_a_bug_stays_a_500() -> None:
    assert database_problem(ProgrammingError("SELECT nope", {}, _Orig("42703"))) is None
