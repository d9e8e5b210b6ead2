"""Errors as RFC 9457 ``application/problem+json`` with a stable, documented ``code``.

Raise :class:`Problem` (or a subclass) anywhere in a request; the handlers installed by
:func:`install_problem_handlers` turn it, FastAPI's validation errors, malformed JSON and Starlette's
HTTP errors into problem documents. Anything unexpected becomes a 500 ``internal_error`` whose body
reveals nothing but the request id.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.orm.exc import StaleDataError
from starlette.exceptions import HTTPException as StarletteHTTPException

from utilis_shared.context import current_request_id

PROBLEM_JSON = "application/problem+json"
log = logging.getLogger(__name__)


class Problem(Exception):
    """An error with an HTTP status and a stable machine-readable code."""

    status: int = 400
    code: str = "bad_request"
    title: str | None = None

    def __init__(
        self,
        detail: str | None = None,
        *,
        status: int | None = None,
        code: str | None = None,
        title: str | None = None,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail or code or self.code)
        self.status = status or self.status
        self.code = code or self.code
        self.title = title or self.title or HTTPStatus(self.status).phrase
        self.detail = detail
        self.errors = errors
        self.headers = headers
        self.extra = extra

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": f"https://docs.utilis.dev/problems/{self.code}",
            "title": self.title,
            "status": self.status,
            "code": self.code,
            "detail": self.detail or self.title,
            "instance": current_request_id(),
        }
        if self.errors:
            body["errors"] = self.errors
        body.update(self.extra)
        return body


class NotFound(Problem):
    status, code = 404, "not_found"


class Conflict(Problem):
    status, code = 409, "conflict"


class Unauthorized(Problem):
    status, code = 401, "unauthorized"


class Forbidden(Problem):
    status, code = 403, "forbidden"


class UnprocessableEntity(Problem):
    status, code = 422, "unprocessable_entity"


def problem_response(problem: Problem) -> JSONResponse:
    return JSONResponse(
        problem.to_dict(), status_code=problem.status, media_type=PROBLEM_JSON, headers=problem.headers
    )


_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


def _validation_problem(exc: RequestValidationError) -> Problem:
    errors = []
    malformed = False
    for err in exc.errors():
        if err.get("type") == "json_invalid":
            malformed = True
        loc = [str(p) for p in err.get("loc", ())]
        # The offending input is deliberately not echoed: it may be an ID number or a phone.
        errors.append({"field": ".".join(loc), "message": err.get("msg", ""), "type": err.get("type")})
    if malformed:
        return Problem(
            "The request body is not valid JSON.", status=400, code="malformed_json", errors=errors
        )
    return Problem(
        "The request did not pass validation; see errors.",
        status=422,
        code="validation_failed",
        errors=errors,
    )


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(_: Request, exc: Problem) -> JSONResponse:
        return problem_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return problem_response(_validation_problem(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _STATUS_CODES.get(exc.status_code, "http_error")
        detail = exc.detail if isinstance(exc.detail, str) else None
        return problem_response(Problem(detail, status=exc.status_code, code=code, headers=exc.headers))

    @app.exception_handler(StaleDataError)
    async def _stale(_: Request, exc: StaleDataError) -> JSONResponse:
        return problem_response(
            Problem(
                "The record changed while this request was updating it; reload and retry.",
                status=409,
                code="concurrent_update",
            )
        )

    @app.exception_handler(SQLAlchemyError)
    async def _database(request: Request, exc: SQLAlchemyError) -> JSONResponse:
        problem = database_problem(exc, getattr(request.app.state, "constraint_problems", None))
        if problem is None:
            return unexpected_error_response()
        log.warning("database refused the request", extra={"code": problem.code, "error": type(exc).__name__})
        return problem_response(problem)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        return unexpected_error_response()


def database_problem(
    exc: SQLAlchemyError, constraint_problems: dict[str, tuple[str, str]] | None = None
) -> Problem | None:
    """What a client can do about a database error: retry later (503) or see a conflict (409); None for
    a bug (a 500). Checks in the use cases come first; this covers races between two requests, and
    ``constraint_problems`` (constraint name -> (code, message)) names the conflict as the check would."""
    orig = getattr(exc, "orig", None)
    sqlstate = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    driver = getattr(orig, "orig", None) or getattr(orig, "__cause__", None)  # asyncpg's own exception
    constraint = getattr(orig, "constraint_name", None) or getattr(driver, "constraint_name", None)
    if isinstance(exc, IntegrityError) and constraint_problems and constraint in constraint_problems:
        code, message = constraint_problems[constraint]
        return Problem(message, status=409, code=code)
    if isinstance(exc, IntegrityError):
        if sqlstate == "23514":
            return Problem("The values break a rule of the record.", status=422, code="constraint_violated")
        return Problem(
            "This conflicts with a record written at the same time; reload and retry.",
            status=409,
            code="conflict",
        )
    if sqlstate in ("40001", "40P01", "55P03", "57014"):  # serialization, deadlock, lock/statement timeout
        return Problem(
            "The database was busy; retry shortly.",
            status=503,
            code="service_busy",
            headers={"Retry-After": "1"},
        )
    if isinstance(exc, OperationalError | InterfaceError | PoolTimeoutError) or (
        isinstance(exc, DBAPIError) and exc.connection_invalidated
    ):
        return Problem(
            "The database is unavailable; retry shortly.",
            status=503,
            code="service_unavailable",
            headers={"Retry-After": "2"},
        )
    return None


def unexpected_error_response() -> JSONResponse:
    """Logs the exception being handled and returns the opaque 500 (call it from an ``except`` block)."""
    log.exception("unhandled error")
    return problem_response(
        Problem("An unexpected error occurred; quote the instance id.", status=500, code="internal_error")
    )


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` entries documenting the problem documents a route may return."""
    return {
        s: {
            "description": HTTPStatus(s).phrase,
            "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for s in statuses
    }
