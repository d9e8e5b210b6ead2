"""The channel registry: a closed list, each channel with its kind, the grants each kind may use, and the
database constraint written out in migration 0004 naming exactly the same list."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from gateway.domain.channels import (
    CHANNEL_VALUES,
    CHANNELS,
    Channel,
    ChannelKind,
    channel_info,
    check_constraint_sql,
    grant_allowed,
    is_self_service,
    parse_channel,
)
from gateway.domain.claims import Grant, access_token_claims, token_lifetime
from utilis_shared.auth import principal_from_claims

MIGRATION = Path(__file__).resolve().parents[2] / "migrations/versions/20261122_0004_assisted_service.py"
SMS_OTP = "urn:utilis:params:oauth:grant-type:sms-otp"
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"


def test_every_channel_is_registered_with_a_kind_and_a_label():
    assert set(CHANNELS) == set(Channel)
    assert {c.value for c in Channel} >= {
        "mobile_app",
        "wechat_mini_program",
        "alipay_mini_program",
        "web",
        "ivr",
        "service_counter",
        "hotline",
        "bank",
        "payment_provider",
        "regulator",
    }
    for channel, info in CHANNELS.items():
        assert info.channel is channel and info.label and info.description


def test_self_service_assisted_and_partner_channels():
    self_service = {c.value for c, i in CHANNELS.items() if i.self_service}
    assert self_service == {"mobile_app", "wechat_mini_program", "alipay_mini_program", "web", "ivr"}
    assert {c.value for c, i in CHANNELS.items() if i.kind is ChannelKind.ASSISTED} == {
        "service_counter",
        "hotline",
    }
    assert {c.value for c, i in CHANNELS.items() if i.kind is ChannelKind.PARTNER} == {
        "bank",
        "payment_provider",
        "regulator",
    }
    assert channel_info("staff_console").kind is ChannelKind.BACK_OFFICE
    assert is_self_service("wechat_mini_program") and not is_self_service("hotline")
    assert not is_self_service(None) and not is_self_service("carrier_pigeon")
    assert channel_info("carrier_pigeon") is None and channel_info(None) is None


def test_parse_channel_accepts_only_the_list():
    assert parse_channel(" Web ") is Channel.WEB
    with pytest.raises(ValueError, match=r"unknown channel 'wechat'.*mobile_app"):
        parse_channel("wechat")


@pytest.mark.parametrize(
    ("grant", "allowed"),
    [
        ("password", {"service_counter", "hotline", "staff_console"}),
        ("client_credentials", {"bank", "payment_provider", "regulator"}),
        (SMS_OTP, {"mobile_app", "wechat_mini_program", "alipay_mini_program", "web", "ivr"}),
        (TOKEN_EXCHANGE, {"service_counter", "hotline"}),
        ("refresh_token", set(CHANNEL_VALUES)),
    ],
)
def test_which_channels_may_use_which_grant(grant, allowed):
    assert {c.value for c in Channel if grant_allowed(grant, c)} == allowed


def test_the_migration_constrains_the_column_to_exactly_this_list():
    spec = importlib.util.spec_from_file_location("migration_0004", MIGRATION)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.CHANNELS == CHANNEL_VALUES
    assert check_constraint_sql() == module.KNOWN_CHANNEL


def test_an_actor_becomes_the_act_claim_and_a_grant_may_shorten_the_lifetime():
    grant = Grant(
        subject="resident:account:10000000017",
        kind="resident",
        client_id="service-counter",
        channel="service_counter",
        account_nos=("10000000017",),
        context={"act": {"sub": "agent01", "roles": ["agent", "agent"]}, "reason": "visit"},
        max_ttl_seconds=600,
    )
    claims = access_token_claims(
        grant, issuer="https://iss", audience="utilis", jti="j", now=0, ttl_seconds=900
    )
    assert claims["act"] == {"sub": "agent01", "roles": ["agent"]} and claims["exp"] == 600
    assert "reason" not in claims  # the context is not a claim
    principal = principal_from_claims(claims)
    assert principal.actor is not None and principal.actor.subject == "agent01"
    assert principal.audit_actor == "agent01 on behalf of resident:account:10000000017"
    assert token_lifetime(grant, 300) == 300  # never longer than configured
    plain = Grant(subject="agent01", kind="staff", client_id="staff-console", channel="staff_console")
    assert "act" not in access_token_claims(
        plain, issuer="https://iss", audience="utilis", jti="j", now=0, ttl_seconds=900
    )
