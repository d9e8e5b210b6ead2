"""The gateway's policy table and the services' routes stay in step.

The gateway denies by default: a service route without a row in ``gateway.domain.policy.POLICY`` is
refused at the front door, so a route added to a service and forgotten in the table is unreachable for
every client (the refund, refund-case and reconciliation routes once were). And a row whose route no
service serves is a policy nobody can check. Both directions, from the services' own OpenAPI documents
(no processes needed).
"""

from __future__ import annotations

import importlib
from functools import cache

import pytest

from gateway.domain.policy import POLICY

# The gateway's service names (the path prefix /api/<name>/...) and each service's app factory.
SERVICES = {
    "customer": "customer.entrypoints.http",
    "billing": "billing.entrypoints.http",
    "payment": "payment.entrypoints.http",
}


@cache
def operations(service: str) -> frozenset[tuple[str, str]]:
    app = importlib.import_module(SERVICES[service]).create()
    paths = app.openapi()["paths"]
    return frozenset((method.upper(), path) for path, ops in paths.items() for method in ops)


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_every_route_of_a_service_has_a_policy_row(service: str) -> None:
    missing = sorted(
        (method, path)
        for method, path in operations(service)
        if (row := POLICY.match(service, method, path)) is None
        or (row.path != path and not row.access.public)  # the callbacks' rows are generic templates
    )
    assert missing == [], f"{service} routes without a gateway policy row: {missing}"


def test_every_policy_row_names_a_route_some_service_serves() -> None:
    stale = [
        (row.service, row.method, row.path)
        for row in POLICY.rows
        if row.service in SERVICES
        and not row.access.public  # the providers' callbacks: /callbacks/..., outside the OpenAPI document
        and (row.method, row.path) not in operations(row.service)
    ]
    assert stale == []
    assert {row.service for row in POLICY.rows} <= set(SERVICES), "a policy row for an unknown service"
