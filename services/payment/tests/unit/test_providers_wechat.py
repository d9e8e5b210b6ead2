"""WeChat Pay v3 adapter, checked against the ``wechatpayv3`` SDK as an independent peer: the SDK signs a
notification (its ``rsa_sign``) that the adapter verifies and decrypts; the SDK's ``Core.callback`` verifies
and decrypts the simulator's notification; the SDK's signer produces the same request signatures. Every
forged, stale or replayed notification is refused."""

from __future__ import annotations

import base64
import json
import secrets
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from wechatpayv3 import utils as sdk
from wechatpayv3.core import Core

from payment.adapters.providers.base import CallbackRejected, InMemoryNonceStore, check_replay, private_pem
from payment.adapters.providers.simulator import ProviderSimulator

from .conftest import NOW


def _sdk_notification(
    sim: ProviderSimulator, plain: dict, *, key_pem: str | None = None, serial: str | None = None
):
    """A notification built with the SDK's signer and an AES-GCM encryption written here (not the
    simulator's): headers and raw body."""
    nonce = secrets.token_hex(6)
    sealed = AESGCM(sim.keys.wechat_apiv3_key.encode()).encrypt(
        nonce.encode(), json.dumps(plain).encode(), b"transaction"
    )
    body = json.dumps(
        {
            "id": "EV-2018022511223320873",
            "create_time": "2026-11-23T10:15:30+08:00",
            "resource_type": "encrypt-resource",
            "event_type": "TRANSACTION.SUCCESS",
            "summary": "支付成功",
            "resource": {
                "original_type": "transaction",
                "algorithm": "AEAD_AES_256_GCM",
                "ciphertext": base64.b64encode(sealed).decode(),
                "associated_data": "transaction",
                "nonce": nonce,
            },
        }
    )
    timestamp, header_nonce = str(int(NOW.timestamp())), secrets.token_hex(16)
    key = sdk.load_private_key(key_pem or sim.keys.wechat_platform_private)
    signature = sdk.rsa_sign(key, f"{timestamp}\n{header_nonce}\n{body}\n")
    headers = {
        "Wechatpay-Timestamp": timestamp,
        "Wechatpay-Nonce": header_nonce,
        "Wechatpay-Signature": signature,
        "Wechatpay-Serial": serial or sim.keys.wechat_platform_serial,
        "Wechatpay-Signature-Type": "WECHATPAY2-SHA256-RSA2048",
    }
    return headers, body.encode()


def _transaction(sim: ProviderSimulator, order_no: str = "P-SDK-1", total: int = 8888) -> dict:
    return {
        "mchid": sim.mchid,
        "appid": sim.appid,
        "out_trade_no": order_no,
        "transaction_id": "4200001234202611230000000001",
        "trade_type": "APP",
        "trade_state": "SUCCESS",
        "success_time": "2026-11-23T10:15:00+08:00",
        "amount": {"total": total, "payer_total": total, "currency": "CNY", "payer_currency": "CNY"},
    }


def _reject(adapter, headers, body, now=NOW) -> str:
    with pytest.raises(CallbackRejected) as err:
        adapter.verify_callback(headers=headers, body=body, now=now)
    return err.value.code


# ------------------------------------------------------------------------------------ SDK as a peer
def test_a_notification_signed_by_the_sdk_is_verified_and_decrypted(sim: ProviderSimulator) -> None:
    headers, body = _sdk_notification(sim, _transaction(sim))
    notice = sim.wechat_adapter().verify_callback(headers=headers, body=body, now=NOW)
    assert notice.provider == "wechat"
    assert notice.order_no == "P-SDK-1"
    assert notice.provider_txn_id == "4200001234202611230000000001"
    assert notice.amount_fen == 8888 and notice.status == "succeeded"
    assert notice.paid_at == NOW - timedelta(seconds=30)
    assert notice.nonce == headers["Wechatpay-Nonce"] and notice.timestamp == NOW


def test_the_sdk_verifies_and_decrypts_the_simulators_notification(sim: ProviderSimulator) -> None:
    cb = sim.wechat_callback("P-SIM-1", 1234, "4200000000000000000001", NOW, now=NOW)
    core = Core(
        mchid=sim.mchid,
        cert_serial_no=sim.keys.wechat_merchant_serial,
        private_key=sim.keys.wechat_merchant_private,
        apiv3_key=sim.keys.wechat_apiv3_key,
        public_key=_platform_public_pem(sim),
        public_key_id=sim.keys.wechat_platform_serial,
    )
    data = core.callback(cb.headers, cb.body)
    assert data is not None, "the SDK refused the simulator's signature or encryption"
    assert data["resource"]["out_trade_no"] == "P-SIM-1"
    assert data["resource"]["amount"]["total"] == 1234
    assert data["resource"]["transaction_id"] == "4200000000000000000001"
    # ... and the SDK's own decryption of the resource
    resource = json.loads(cb.body)["resource"]
    plain = sdk.aes_decrypt(
        resource["nonce"], resource["ciphertext"], resource["associated_data"], sim.keys.wechat_apiv3_key
    )
    assert json.loads(plain)["out_trade_no"] == "P-SIM-1"
    # a tampered copy is refused by the SDK too (the peer agrees on what "forged" means)
    assert core.callback(cb.headers, cb.body.replace(b"EV-", b"EX-")) is None


def _platform_public_pem(sim: ProviderSimulator) -> str:
    from payment.adapters.providers.base import load_rsa_private_key, public_pem

    return public_pem(load_rsa_private_key(sim.keys.wechat_platform_private))


def test_request_signatures_match_the_sdks_signer(sim: ProviderSimulator) -> None:
    adapter = sim.wechat_adapter()
    request = adapter.build_order_request(
        order_no="P-REQ-1", amount_fen=100, description="户号 A1 缴费", notify_url="https://x/cb", now=NOW
    )
    auth = request["headers"]["Authorization"]
    fields = dict(part.split("=", 1) for part in auth.split(" ", 1)[1].split(","))
    fields = {k: v.strip('"') for k, v in fields.items()}
    assert fields["mchid"] == sim.mchid and fields["serial_no"] == sim.keys.wechat_merchant_serial
    assert fields["timestamp"] == str(int(NOW.timestamp()))
    merchant = sdk.load_private_key(sim.keys.wechat_merchant_private)
    expected = sdk.rsa_sign(
        merchant,
        f"POST\n{request['path']}\n{fields['timestamp']}\n{fields['nonce_str']}\n{request['body']}\n",
    )
    assert fields["signature"] == expected  # PKCS#1 v1.5 is deterministic
    assert json.loads(request["body"])["amount"] == {"total": 100, "currency": "CNY"}

    params = adapter.app_pay_params(
        "wx201410272009395522657a690389285100", now=NOW, nonce="5K8264ILTKCH16CQ2502SI8ZNMTM67VS"
    )
    core = Core(
        mchid=sim.mchid,
        cert_serial_no=sim.keys.wechat_merchant_serial,
        private_key=sim.keys.wechat_merchant_private,
        apiv3_key=sim.keys.wechat_apiv3_key,
        public_key=_platform_public_pem(sim),
        public_key_id=sim.keys.wechat_platform_serial,
    )
    assert params["sign"] == core.sign(
        [sim.appid, params["timestamp"], params["noncestr"], params["prepayid"]]
    )


# ------------------------------------------------------------------------------ forged, stale, replayed
def test_a_tampered_body_is_refused(sim: ProviderSimulator) -> None:
    headers, body = _sdk_notification(sim, _transaction(sim))
    assert _reject(sim.wechat_adapter(), headers, body.replace(b"EV-2018", b"EV-2019")) == "bad_signature"
    # a signature copied onto another notification's body
    _other_headers, other_body = _sdk_notification(sim, _transaction(sim, total=1))
    assert _reject(sim.wechat_adapter(), headers, other_body) == "bad_signature"


def test_a_notification_signed_with_another_key_is_refused(sim: ProviderSimulator) -> None:
    forger = private_pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    headers, body = _sdk_notification(sim, _transaction(sim), key_pem=forger)
    assert _reject(sim.wechat_adapter(), headers, body) == "bad_signature"


def test_an_unknown_platform_serial_is_refused(sim: ProviderSimulator) -> None:
    headers, body = _sdk_notification(sim, _transaction(sim), serial="PUB_KEY_ID_UNKNOWN")
    assert _reject(sim.wechat_adapter(), headers, body) == "unknown_key"


def test_a_stale_or_future_notification_is_refused(sim: ProviderSimulator) -> None:
    headers, body = _sdk_notification(sim, _transaction(sim))
    adapter = sim.wechat_adapter()
    assert _reject(adapter, headers, body, NOW + timedelta(minutes=5, seconds=1)) == "stale_timestamp"
    assert _reject(adapter, headers, body, NOW - timedelta(minutes=5, seconds=1)) == "stale_timestamp"
    adapter.verify_callback(headers=headers, body=body, now=NOW + timedelta(minutes=5))
    # a wider window is configurable
    wide = sim.wechat_adapter(window=timedelta(minutes=10))
    wide.verify_callback(headers=headers, body=body, now=NOW + timedelta(minutes=9))


async def test_a_replayed_notification_is_refused(sim: ProviderSimulator) -> None:
    cb = sim.wechat_callback("P-REPLAY", 500, now=NOW)
    adapter, store = sim.wechat_adapter(), InMemoryNonceStore(clock=lambda: NOW)
    first = adapter.verify_callback(headers=cb.headers, body=cb.body, now=NOW)
    await check_replay(first, store, NOW)
    await store.remember(first.provider, first.nonce)
    again = adapter.verify_callback(headers=cb.headers, body=cb.body, now=NOW + timedelta(seconds=2))
    with pytest.raises(CallbackRejected) as err:
        await check_replay(again, store, NOW + timedelta(seconds=2))
    assert err.value.code == "replayed"


def test_the_wrong_apiv3_key_fails_decryption(sim: ProviderSimulator) -> None:
    cb = sim.wechat_callback("P-KEY", 500, now=NOW)
    k = sim.keys
    from payment.adapters.providers.wechat import WeChatPayAdapter

    adapter = WeChatPayAdapter(
        mchid=sim.mchid,
        appid=sim.appid,
        apiv3_key="0" * 32,
        platform_keys={k.wechat_platform_serial: _platform_public_pem(sim)},
        merchant_private_key=k.wechat_merchant_private,
        merchant_serial=k.wechat_merchant_serial,
    )
    assert _reject(adapter, cb.headers, cb.body) == "decrypt_failed"


def test_headers_and_algorithms_are_checked(sim: ProviderSimulator) -> None:
    cb = sim.wechat_callback("P-HDR", 500, now=NOW)
    adapter = sim.wechat_adapter()
    missing = {k: v for k, v in cb.headers.items() if k != "Wechatpay-Signature"}
    assert _reject(adapter, missing, cb.body) == "malformed"
    other = cb.headers | {"Wechatpay-Signature-Type": "WECHATPAY2-SM2-WITH-SM3"}
    assert _reject(adapter, other, cb.body) == "unsupported_algorithm"
    assert _reject(adapter, cb.headers | {"Wechatpay-Signature": "not base64!"}, cb.body) == "malformed"
    # header names are case-insensitive (Starlette lower-cases them)
    lower = {k.lower(): v for k, v in cb.headers.items()}
    assert adapter.verify_callback(headers=lower, body=cb.body, now=NOW).order_no == "P-HDR"


def test_a_notification_for_another_merchant_is_refused(sim: ProviderSimulator) -> None:
    other = ProviderSimulator(keys=sim.keys, mchid="1900000999", clock=lambda: NOW)
    cb = other.wechat_callback("P-OTHER", 500, now=NOW)
    assert _reject(sim.wechat_adapter(), cb.headers, cb.body) == "wrong_recipient"


# ------------------------------------------------------------------------------------ other notices
def test_refund_and_not_final_notices(sim: ProviderSimulator) -> None:
    adapter = sim.wechat_adapter()
    cb = sim.wechat_refund_callback(
        "P-RF", 300, txn_id="4200009", refund_id="50300001", total_fen=1000, now=NOW
    )
    notice = adapter.verify_callback(headers=cb.headers, body=cb.body, now=NOW)
    assert (notice.status, notice.amount_fen, notice.provider_txn_id, notice.order_no) == (
        "refunded",
        300,
        "50300001",
        "P-RF",
    )
    cb = sim.wechat_callback("P-NOTPAY", 500, now=NOW, trade_state="NOTPAY")
    with pytest.raises(CallbackRejected) as err:
        adapter.verify_callback(headers=cb.headers, body=cb.body, now=NOW)
    assert err.value.code == "not_final" and err.value.acknowledge
    cb = sim.wechat_callback("P-CLOSED", 500, now=NOW, trade_state="CLOSED")
    closed = adapter.verify_callback(headers=cb.headers, body=cb.body, now=NOW)
    assert (
        closed.status == "closed" and closed.paid_at is None and closed.provider_txn_id == "P-CLOSED:CLOSED"
    )


def test_ack_is_wechats_json(sim: ProviderSimulator) -> None:
    adapter = sim.wechat_adapter()
    assert adapter.ack(True) == (200, "application/json", '{"code": "SUCCESS", "message": "成功"}'.encode())
    status, _kind, body = adapter.ack(False, "bad_signature")
    assert status == 400 and json.loads(body) == {"code": "FAIL", "message": "bad_signature"}


# ------------------------------------------------------------------------------------------ query
def test_query_answers_are_verified_and_parsed(sim: ProviderSimulator) -> None:
    adapter = sim.wechat_adapter()
    request = adapter.build_query_request(order_no="P-Q1", now=NOW)
    assert (
        request.method == "GET"
        and request.path == f"/v3/pay/transactions/out-trade-no/P-Q1?mchid={sim.mchid}"
    )
    assert request.headers["Authorization"].startswith("WECHATPAY2-SHA256-RSA2048 ")

    status, headers, body = sim.query("wechat", "P-Q1", now=NOW)
    answer = adapter.parse_query_response(
        status_code=status, headers=headers, body=body, order_no="P-Q1", now=NOW
    )
    assert answer.status == "not_found"

    sim.register_order("wechat", "P-Q1", 700)
    status, headers, body = sim.query("wechat", "P-Q1", now=NOW)
    assert (
        adapter.parse_query_response(
            status_code=status, headers=headers, body=body, order_no="P-Q1", now=NOW
        ).status
        == "pending"
    )

    sim.wechat_callback("P-Q1", 700, "4200000000000000000777", NOW, now=NOW)
    status, headers, body = sim.query("wechat", "P-Q1", now=NOW)
    answer = adapter.parse_query_response(
        status_code=status, headers=headers, body=body, order_no="P-Q1", now=NOW
    )
    assert (answer.status, answer.amount_fen, answer.provider_txn_id) == (
        "succeeded",
        700,
        "4200000000000000000777",
    )
    notice = answer.to_notice()
    assert notice.nonce is None and notice.paid_at == NOW

    forged = body.replace(b'"total":700', b'"total":7')
    with pytest.raises(CallbackRejected) as err:
        adapter.parse_query_response(
            status_code=status, headers=headers, body=forged, order_no="P-Q1", now=NOW
        )
    assert err.value.code == "bad_signature"
    with pytest.raises(CallbackRejected):
        adapter.parse_query_response(status_code=status, headers=headers, body=body, order_no="P-Q2", now=NOW)
