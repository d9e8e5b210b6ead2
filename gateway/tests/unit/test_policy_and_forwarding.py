"""The policy table and the forwarding rules, as pure functions."""

from __future__ import annotations

import pytest

from gateway.domain import forwarding
from gateway.domain.policy import POLICY, PUBLIC, RESIDENTS, PolicyTable, RoutePolicy, partners, staff
from gateway.service_layer.openapi import merge
from utilis_shared.auth import Principal


def who(kind: str, roles: tuple[str, ...] = (), scopes: tuple[str, ...] = ()) -> Principal:
    return Principal(subject="s", kind=kind, roles=frozenset(roles), scopes=frozenset(scopes))


def test_a_literal_segment_wins_over_a_parameter_and_head_follows_get():
    table = PolicyTable(
        [
            RoutePolicy("x", "GET", "/accounts/{account_no}", staff("agent")),
            RoutePolicy("x", "GET", "/accounts/search", staff("analyst")),
        ]
    )
    assert table.match("x", "GET", "/accounts/search").path == "/accounts/search"
    assert table.match("x", "HEAD", "/accounts/123").path == "/accounts/{account_no}"
    assert table.match("x", "GET", "/accounts/123/extra") is None
    assert table.match("x", "POST", "/accounts/123") is None
    assert table.match("y", "GET", "/accounts/123") is None


def test_duplicate_rows_are_a_mistake():
    with pytest.raises(ValueError, match="duplicate"):
        PolicyTable([RoutePolicy("x", "GET", "/a", PUBLIC), RoutePolicy("x", "GET", "/a", RESIDENTS)])


def test_access_admits_by_kind():
    access = staff("agent") | partners("accounts:read") | RESIDENTS
    assert access.admits(who("staff", ("agent",)))
    assert access.admits(who("staff", ("admin",)))  # admin passes every role check
    assert not access.admits(who("staff", ("inspector",)))
    assert access.admits(who("partner", scopes=("accounts:read", "bills:read")))
    assert not access.admits(who("partner", scopes=("bills:read",)))
    assert access.admits(who("resident"))
    assert not staff("agent").admits(who("resident"))
    assert not staff().admits(who("staff", ("admin",)))  # a row with no roles admits no staff at all


def test_the_customer_service_routes_in_the_table():
    assert POLICY.match("customer", "GET", "/v1/accounts/2301/view").access.residents
    assert not POLICY.match("customer", "GET", "/v1/customers").access.residents
    assert POLICY.match("customer", "DELETE", "/v1/accounts/2301") is None
    assert POLICY.match("payment", "POST", "/callbacks/wechat/notify").access.public
    templates = {row.template for row in POLICY.rows}
    assert "/api/customer/v1/accounts/{account_no}/view" in templates
    assert "/callbacks/{provider}/{kind}" in templates


@pytest.mark.parametrize(
    ("raw", "path"),
    [
        (b"/a/1%2F..%2Fb", "/a/1/../b"),
        (b"/a/1%5cb", "/a/1\\b"),
        (b"/a//b", "/a//b"),
        (b"/a/./b", "/a/./b"),
        (b"/a/../b", "/a/../b"),
        (b"/a/b%00", "/a/b\x00"),
    ],
)
def test_ambiguous_paths_are_refused(raw, path):
    with pytest.raises(forwarding.BadPath):
        forwarding.check_path(raw, path)


def test_plain_paths_pass():
    forwarding.check_path(b"/accounts/2301000001/view", "/accounts/2301000001/view")
    forwarding.check_path(b"/customers/%E5%BC%A0", "/customers/张")


def test_hop_by_hop_headers_never_travel():
    out = forwarding.request_headers(
        [
            (b"connection", b"keep-alive, X-Hop"),
            (b"x-hop", b"1"),
            (b"te", b"trailers"),
            (b"upgrade", b"h2c"),
            (b"host", b"gw"),
            (b"content-length", b"3"),
            (b"authorization", b"Bearer t"),
            (b"idempotency-key", b"k"),
            (b"x-request-id", b"client-id"),
            (b"x-correlation-id", b"client-corr"),
        ],
        client_ip="10.0.0.1",
        scheme="https",
        host=b"gw",
        prefix="/api/customer",
        request_id="rid",
        correlation_id="cid",
    )
    assert out[:2] == [(b"authorization", b"Bearer t"), (b"idempotency-key", b"k")]
    assert dict(out[2:]) == {
        b"x-forwarded-for": b"10.0.0.1",
        b"x-forwarded-proto": b"https",
        b"x-forwarded-host": b"gw",
        b"x-forwarded-prefix": b"/api/customer",
        b"x-request-id": b"rid",  # the ids the gateway settled on, once
        b"x-correlation-id": b"cid",
    }
    public = forwarding.request_headers(
        [
            (b"authorization", b"Bearer t"),
            (b"cookie", b"a=b"),
            (b"x-sig", b"s"),
            (b"x-forwarded-for", b"9.9.9.9"),
        ],
        client_ip="1.2.3.4",
        scheme="https",
        host=None,
        prefix="",
        request_id="rid",
        correlation_id="cid",
        drop_authorization=True,
    )
    assert {n for n, _ in public} == {
        b"x-sig",
        b"x-forwarded-for",
        b"x-forwarded-proto",
        b"x-forwarded-prefix",
        b"x-request-id",
        b"x-correlation-id",
    }
    assert dict(public)[b"x-forwarded-for"] == b"9.9.9.9, 1.2.3.4"  # the hop the gateway saw comes last
    back = forwarding.response_headers(
        [
            (b"Connection", b"close, X-Up"),
            (b"X-Up", b"1"),
            (b"Content-Type", b"a/b"),
            (b"Transfer-Encoding", b"chunked"),
            (b"content-length", b"3"),
            (b"x-request-id", b"upstream-own"),
        ]
    )
    assert back == [(b"Content-Type", b"a/b")]


def test_only_safe_requests_may_be_repeated():
    assert forwarding.may_retry("GET", [])
    assert forwarding.may_retry("PUT", [])
    assert not forwarding.may_retry("POST", [])
    assert not forwarding.may_retry("PATCH", [(b"content-type", b"x")])
    assert forwarding.may_retry("POST", [(b"idempotency-key", b"abc")])


def test_the_merged_openapi_prefixes_paths_and_components_and_leaves_out_unopened_routes():
    service_doc = {
        "paths": {
            "/v1/accounts/{account_no}/view": {
                "get": {"tags": ["accounts"], "responses": {"200": {"$ref": "#/components/schemas/View"}}}
            },
            "/v1/internal/reindex": {"post": {"responses": {}}},
        },
        "components": {"schemas": {"View": {"type": "object"}, "Problem": {"type": "object"}}},
    }
    own = {
        "openapi": "3.1.0",
        "info": {"title": "gw"},
        "paths": {"/oauth/token": {"post": {}}},
        "components": {},
    }
    doc = merge(own, {"customer": service_doc}, POLICY, token_url="https://gw/oauth/token")
    assert "/oauth/token" in doc["paths"]
    op = doc["paths"]["/api/customer/v1/accounts/{account_no}/view"]["get"]
    assert op["responses"]["200"]["$ref"] == "#/components/schemas/customer__View"
    assert "residents" in op["x-utilis-access"] and op["security"]
    assert "/api/customer/v1/internal/reindex" not in doc["paths"]
    assert {"customer__View", "customer__Problem"} <= set(doc["components"]["schemas"])
    assert (
        doc["components"]["securitySchemes"]["oauth2"]["flows"]["password"]["tokenUrl"]
        == "https://gw/oauth/token"
    )
