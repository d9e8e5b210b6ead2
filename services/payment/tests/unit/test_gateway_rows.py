"""The withholding and counter-report routes are reachable through the gateway (deny by default: a route
without a policy row is refused there) and admit the same staff roles the service checks."""

from __future__ import annotations

import pytest

from gateway.domain.policy import POLICY
from payment.entrypoints.http import create

ROLES = {
    ("POST", "/v1/accounts/{account_no}/withholding-mandates"): {"agent", "billing_clerk"},
    ("GET", "/v1/accounts/{account_no}/withholding-mandates"): {"agent", "billing_clerk"},
    ("POST", "/v1/withholding-mandates/{mandate_id}/revocation"): {"agent", "billing_clerk"},
    ("POST", "/v1/withholding-batches"): {"billing_clerk", "billing_supervisor"},
    ("GET", "/v1/withholding-batches/{batch_no}"): {"billing_clerk", "billing_supervisor", "analyst"},
    ("GET", "/v1/withholding-batches/{batch_no}/items"): {"billing_clerk", "billing_supervisor", "analyst"},
    ("GET", "/v1/withholding-batches/{batch_no}/request-file"): {"billing_clerk", "billing_supervisor"},
    ("POST", "/v1/withholding-batches/{batch_no}/result-file"): {"billing_clerk", "billing_supervisor"},
    ("GET", "/v1/counter-shifts/{shift_id}/totals"): {"billing_clerk", "billing_supervisor"},
    ("GET", "/v1/counter-totals"): {"billing_supervisor"},
}


def test_every_new_route_is_served_by_the_service() -> None:
    paths = create().openapi()["paths"]
    served = {(method.upper(), path) for path, ops in paths.items() for method in ops}
    assert set(ROLES) <= served


@pytest.mark.parametrize(("method", "path"), sorted(ROLES))
def test_the_gateway_admits_the_same_staff_roles(method: str, path: str) -> None:
    row = POLICY.match("payment", method, path.replace("{", "").replace("}", ""))
    assert row is not None and row.path == path
    assert set(row.access.roles) == ROLES[(method, path)]
    assert not row.access.public
    assert row.access.residents == (
        path == "/v1/accounts/{account_no}/withholding-mandates" and method == "GET"
    )
