"""Scope rules and OAuth request parsing: pure, no I/O."""

from __future__ import annotations

import base64
from urllib.parse import quote_plus

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.domain.oauth import OAuthError
from gateway.domain.requests import client_credentials, parse_form, require_params
from gateway.domain.scopes import SCOPES, format_scope, grant_scopes, parse_scope, unknown_scopes

FORM = "application/x-www-form-urlencoded"
ALLOWED = frozenset({"bills:read", "payments:write"})


def error_of(call) -> OAuthError:
    with pytest.raises(OAuthError) as caught:
        call()
    return caught.value


def test_no_requested_scope_grants_everything_allowed():
    assert grant_scopes(None, ALLOWED) == ALLOWED


def test_a_subset_is_granted_as_asked():
    assert grant_scopes(frozenset({"bills:read"}), ALLOWED) == {"bills:read"}


def test_a_scope_beyond_the_allowed_set_is_invalid_scope_not_silently_dropped():
    error = error_of(lambda: grant_scopes(frozenset({"bills:read", "reports:read"}), ALLOWED))
    assert error.error == "invalid_scope" and error.status == 400 and "reports:read" in error.description


@given(st.sets(st.sampled_from(sorted(SCOPES))), st.sets(st.sampled_from(sorted(SCOPES))))
def test_granted_iff_subset(requested, allowed):
    if requested <= allowed:
        assert grant_scopes(frozenset(requested), allowed) == requested
    else:
        with pytest.raises(OAuthError):
            grant_scopes(frozenset(requested), allowed)


@pytest.mark.parametrize("raw", ["", "a  b", " a", "a\tb", 'a"b', "a\\b", "账单"])
def test_malformed_scope_strings_are_invalid_request(raw):
    assert error_of(lambda: parse_scope(raw)).error == "invalid_request"


def test_scope_parsing_and_formatting():
    assert parse_scope(None) is None
    assert parse_scope("payments:write bills:read") == {"bills:read", "payments:write"}
    assert format_scope({"b", "a"}) == "a b"
    assert unknown_scopes(["bills:read", "bills:write"]) == ["bills:write"]


def test_form_parsing_drops_empty_values_and_refuses_repeats_and_other_media_types():
    assert parse_form(b"grant_type=password&scope=&username=a%20b", FORM) == {
        "grant_type": "password",
        "username": "a b",
    }
    assert parse_form(b"grant_type=x", f"{FORM}; charset=UTF-8") == {"grant_type": "x"}
    assert error_of(lambda: parse_form(b"a=1&a=2", FORM)).error == "invalid_request"
    assert error_of(lambda: parse_form(b'{"a": 1}', "application/json")).error == "invalid_request"
    assert error_of(lambda: parse_form(b"a=\xff", FORM)).error == "invalid_request"
    assert error_of(lambda: parse_form(b"a=" + b"x" * 5000, FORM)).error == "invalid_request"


def basic(client_id: str, secret: str) -> str:
    raw = f"{quote_plus(client_id)}:{quote_plus(secret)}".encode()
    return "Basic " + base64.b64encode(raw).decode()


def test_client_secret_basic_is_form_decoded():
    creds = client_credentials({}, basic("bank:1", "s e:c"))
    assert (creds.client_id, creds.secret, creds.method) == ("bank:1", "s e:c", "client_secret_basic")


def test_client_secret_post_and_public_clients():
    assert client_credentials({"client_id": "c", "client_secret": "s"}, None).method == "client_secret_post"
    public = client_credentials({"client_id": "staff-console"}, None)
    assert public.secret is None and public.method == "none"


def test_two_authentication_methods_or_none_are_refused():
    assert (
        error_of(lambda: client_credentials({"client_secret": "s"}, basic("c", "s"))).error
        == "invalid_request"
    )
    assert (
        error_of(lambda: client_credentials({"client_id": "other"}, basic("c", "s"))).error
        == "invalid_request"
    )
    missing = error_of(lambda: client_credentials({}, None))
    assert (
        missing.error == "invalid_client" and missing.status == 401 and "WWW-Authenticate" in missing.headers
    )
    assert error_of(lambda: client_credentials({}, "Bearer abc")).error == "invalid_client"
    assert error_of(lambda: client_credentials({}, "Basic !!!")).error == "invalid_client"
    assert (
        error_of(lambda: client_credentials({}, "Basic " + base64.b64encode(b"nocolon").decode())).status
        == 401
    )


def test_required_parameters():
    assert require_params({"a": "1", "b": "2"}, "a", "b") == ["1", "2"]
    error = error_of(lambda: require_params({"a": "1"}, "a", "b", "c"))
    assert error.error == "invalid_request" and "b, c" in error.description
