"""Alipay adapter, checked against ``alipay-sdk-python`` as an independent peer: the SDK's
``sign_with_rsa2`` over its ``get_sign_content`` signs notifications the adapter verifies, and the SDK's
``verify_with_rsa`` verifies the simulator's notifications and the adapter's order strings. Every forged,
stale or replayed notification is refused; amounts are exact."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import parse_qsl, urlencode

import pytest
from alipay.aop.api.util.SignatureUtils import get_sign_content, sign_with_rsa2, verify_with_rsa
from cryptography.hazmat.primitives.asymmetric import rsa

from payment.adapters.providers.base import (
    CallbackRejected,
    InMemoryNonceStore,
    check_replay,
    load_rsa_private_key,
    private_pem,
    public_pem,
)
from payment.adapters.providers.simulator import ProviderSimulator

from .conftest import NOW


def _pkcs1(pem: str) -> str:
    return private_pem(load_rsa_private_key(pem), pkcs1=True)


def _params(sim: ProviderSimulator, **overrides: str) -> dict[str, str]:
    params = {
        "gmt_create": "2026-11-23 10:14:55",
        "charset": "utf-8",
        "seller_id": sim.alipay_seller_id,
        "subject": "燃气费 户号 A1",
        "buyer_id": "2088102177846875",
        "notify_id": "2026112300222101500091431454906677",
        "notify_type": "trade_status_sync",
        "trade_status": "TRADE_SUCCESS",
        "app_id": sim.alipay_app_id,
        "notify_time": "2026-11-23 10:15:30",
        "version": "1.0",
        "out_trade_no": "P-ALI-1",
        "total_amount": "88.88",
        "trade_no": "2026112322001404300501234567",
        "gmt_payment": "2026-11-23 10:15:00",
        "fund_bill_list": '[{"amount":"88.88","fundChannel":"ALIPAYACCOUNT"}]',
    }
    return params | overrides


def _sdk_signed_body(params: dict[str, str], private_pem_text: str, *, charset: str = "utf-8") -> bytes:
    """Sign as Alipay does, with the SDK: content = every parameter but sign / sign_type, sorted."""
    sign = sign_with_rsa2(_pkcs1(private_pem_text), get_sign_content(params), charset)
    return urlencode(params | {"sign_type": "RSA2", "sign": sign}, encoding=charset).encode("ascii")


def _reject(adapter, body: bytes, now=NOW) -> str:
    with pytest.raises(CallbackRejected) as err:
        adapter.verify_callback(headers={}, body=body, now=now)
    return err.value.code


# ------------------------------------------------------------------------------------ SDK as a peer
def test_a_notification_signed_by_the_sdk_is_verified(sim: ProviderSimulator) -> None:
    body = _sdk_signed_body(_params(sim), sim.keys.alipay_private)
    notice = sim.alipay_adapter().verify_callback(headers={}, body=body, now=NOW)
    assert notice.provider == "alipay" and notice.order_no == "P-ALI-1"
    assert notice.provider_txn_id == "2026112322001404300501234567"
    assert notice.amount_fen == 8888 and notice.status == "succeeded"
    assert notice.paid_at == NOW - timedelta(seconds=30)
    assert notice.timestamp == NOW and notice.nonce == "2026112300222101500091431454906677"
    assert notice.raw["subject"] == "燃气费 户号 A1" and "sign" not in notice.raw


def test_a_gbk_notification_is_verified_in_its_charset(sim: ProviderSimulator) -> None:
    body = _sdk_signed_body(_params(sim, charset="gbk"), sim.keys.alipay_private, charset="gbk")
    assert (
        sim.alipay_adapter().verify_callback(headers={}, body=body, now=NOW).raw["subject"]
        == "燃气费 户号 A1"
    )


def test_the_sdk_verifies_the_simulators_notification(sim: ProviderSimulator) -> None:
    cb = sim.alipay_callback("P-ALI-SIM", 1234, now=NOW)
    params = dict(parse_qsl(cb.body.decode(), keep_blank_values=True))
    sign = params.pop("sign")
    params.pop("sign_type")
    alipay_public = public_pem(load_rsa_private_key(sim.keys.alipay_private))
    assert verify_with_rsa(alipay_public, get_sign_content(params).encode(), sign)
    assert cb.headers["Content-Type"].startswith("application/x-www-form-urlencoded")


def test_the_sdk_verifies_the_order_string(sim: ProviderSimulator) -> None:
    request = sim.alipay_adapter().build_order_request(
        order_no="P-ALI-ORD",
        amount_fen=1050,
        description="户号 A1 缴费",
        notify_url="https://x/cb/alipay",
        now=NOW,
    )
    params = dict(parse_qsl(request["order_string"], keep_blank_values=True))
    assert params == request["params"]
    sign = params.pop("sign")
    app_public = public_pem(load_rsa_private_key(sim.keys.alipay_app_private))
    assert verify_with_rsa(app_public, get_sign_content(params).encode(), sign)
    assert '"total_amount":"10.50"' in params["biz_content"]
    assert params["timestamp"] == "2026-11-23 10:15:30"


# ------------------------------------------------------------------------------ forged, stale, replayed
def test_a_tampered_amount_is_refused(sim: ProviderSimulator) -> None:
    body = _sdk_signed_body(_params(sim), sim.keys.alipay_private)
    assert (
        _reject(sim.alipay_adapter(), body.replace(b"total_amount=88.88", b"total_amount=888.88"))
        == "bad_signature"
    )


def test_a_notification_signed_with_another_key_is_refused(sim: ProviderSimulator) -> None:
    forger = private_pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    assert _reject(sim.alipay_adapter(), _sdk_signed_body(_params(sim), forger)) == "bad_signature"
    # the app's own key is not Alipay's
    assert (
        _reject(sim.alipay_adapter(), _sdk_signed_body(_params(sim), sim.keys.alipay_app_private))
        == "bad_signature"
    )


def test_a_stale_notification_is_refused(sim: ProviderSimulator) -> None:
    body = _sdk_signed_body(_params(sim, notify_time="2026-11-23 10:05:00"), sim.keys.alipay_private)
    assert _reject(sim.alipay_adapter(), body) == "stale_timestamp"
    body = _sdk_signed_body(_params(sim), sim.keys.alipay_private)
    assert _reject(sim.alipay_adapter(), body, NOW + timedelta(minutes=6)) == "stale_timestamp"


async def test_a_replayed_notification_is_refused(sim: ProviderSimulator) -> None:
    cb = sim.alipay_callback("P-ALI-REPLAY", 100, now=NOW)
    adapter, store = sim.alipay_adapter(), InMemoryNonceStore(clock=lambda: NOW)
    notice = adapter.verify_callback(headers=cb.headers, body=cb.body, now=NOW)
    await check_replay(notice, store, NOW)
    await store.remember(notice.provider, notice.nonce)
    with pytest.raises(CallbackRejected) as err:
        await check_replay(adapter.verify_callback(headers=cb.headers, body=cb.body, now=NOW), store, NOW)
    assert err.value.code == "replayed"


def test_form_shape_algorithm_and_recipient_are_checked(sim: ProviderSimulator) -> None:
    adapter = sim.alipay_adapter()
    body = _sdk_signed_body(_params(sim), sim.keys.alipay_private)
    assert _reject(adapter, body + b"&total_amount=1.00") == "malformed"  # a repeated key
    assert _reject(adapter, body.replace(b"sign_type=RSA2", b"sign_type=RSA")) == "unsupported_algorithm"
    assert _reject(adapter, "subject=燃气费".encode()) == "malformed"  # not percent-encoded
    unsigned = urlencode(_params(sim)).encode()
    assert _reject(adapter, unsigned) == "malformed"
    other_app = _sdk_signed_body(_params(sim, app_id="2021000000009999"), sim.keys.alipay_private)
    assert _reject(adapter, other_app) == "wrong_recipient"
    other_seller = _sdk_signed_body(_params(sim, seller_id="2088999999999999"), sim.keys.alipay_private)
    assert _reject(adapter, other_seller) == "wrong_recipient"


@pytest.mark.parametrize("amount", ["12.345", "-1.00", "1e3", "12,34", ""])
def test_a_signed_but_inexact_amount_is_refused(sim: ProviderSimulator, amount: str) -> None:
    body = _sdk_signed_body(_params(sim, total_amount=amount), sim.keys.alipay_private)
    assert _reject(sim.alipay_adapter(), body) in ("bad_amount", "malformed")


# ------------------------------------------------------------------------------------ other notices
def test_statuses_refunds_and_ack(sim: ProviderSimulator) -> None:
    adapter = sim.alipay_adapter()
    finished = _sdk_signed_body(_params(sim, trade_status="TRADE_FINISHED"), sim.keys.alipay_private)
    assert adapter.verify_callback(headers={}, body=finished, now=NOW).status == "succeeded"
    closed = {k: v for k, v in _params(sim, trade_status="TRADE_CLOSED").items() if k != "gmt_payment"}
    notice = adapter.verify_callback(
        headers={}, body=_sdk_signed_body(closed, sim.keys.alipay_private), now=NOW
    )
    assert notice.status == "closed" and notice.paid_at is None
    waiting = _sdk_signed_body(_params(sim, trade_status="WAIT_BUYER_PAY"), sim.keys.alipay_private)
    with pytest.raises(CallbackRejected) as err:
        adapter.verify_callback(headers={}, body=waiting, now=NOW)
    assert err.value.code == "not_final" and err.value.acknowledge

    refund = sim.alipay_callback(
        "P-ALI-RF", 1000, "2026112322001400000000999", now=NOW, refund_fen=250, out_biz_no="RF1"
    )
    notice = adapter.verify_callback(headers={}, body=refund.body, now=NOW)
    assert (notice.status, notice.amount_fen, notice.provider_txn_id) == (
        "refunded",
        250,
        "2026112322001400000000999:refund:RF1",
    )
    assert adapter.ack(True) == (200, "text/plain", b"success")
    assert adapter.ack(False, "bad_signature") == (200, "text/plain", b"failure")


# ------------------------------------------------------------------------------------------ query
def test_query_answers_are_verified_over_the_raw_response_node(sim: ProviderSimulator) -> None:
    adapter = sim.alipay_adapter()
    request = adapter.build_query_request(order_no="P-ALI-Q", now=NOW)
    params = dict(parse_qsl(request.body.decode()))
    sign = params.pop("sign")
    app_public = public_pem(load_rsa_private_key(sim.keys.alipay_app_private))
    assert verify_with_rsa(app_public, get_sign_content(params).encode(), sign)
    assert params["method"] == "alipay.trade.query"

    def ask(body_override: bytes | None = None):
        status, headers, body = sim.query("alipay", "P-ALI-Q", now=NOW)
        return adapter.parse_query_response(
            status_code=status, headers=headers, body=body_override or body, order_no="P-ALI-Q", now=NOW
        )

    assert ask().status == "not_found"
    sim.register_order("alipay", "P-ALI-Q", 990)
    assert ask().status == "pending"
    sim.alipay_callback("P-ALI-Q", 990, "2026112322001400000000123", NOW, now=NOW)
    answer = ask()
    assert (answer.status, answer.amount_fen, answer.provider_txn_id, answer.paid_at) == (
        "succeeded",
        990,
        "2026112322001400000000123",
        NOW,
    )
    _, _, body = sim.query("alipay", "P-ALI-Q", now=NOW)
    with pytest.raises(CallbackRejected) as err:
        ask(body.replace(b'"total_amount":"9.90"', b'"total_amount":"0.99"'))
    assert err.value.code == "bad_signature"
    # the same node with other whitespace is not what was signed: the raw text is what counts
    with pytest.raises(CallbackRejected):
        ask(body.replace(b'"code":"10000"', b'"code": "10000"'))
