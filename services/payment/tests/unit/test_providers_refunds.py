"""Refund requests, each in its provider's published format and signature, checked against independent
peers: the ``wechatpayv3`` SDK's signer (the v3 ``Authorization`` of ``POST /v3/refund/domestic/refunds``),
``alipay-sdk-python``'s ``verify_with_rsa`` over its ``get_sign_content`` (``alipay.trade.refund``),
``cryptography`` (the bank's RSA2) and ``pysmx`` (the bank's SM2/SM3). The simulator answers them as the
providers do (accepted once per refund number, refused, busy), and the adapters verify and classify the
answers: a forged answer is never concluded from."""

from __future__ import annotations

import base64
import json
from urllib.parse import parse_qsl

import httpx
import pytest
from alipay.aop.api.util.SignatureUtils import get_sign_content, verify_with_rsa
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from pysmx import SM2 as pysmx_sm2
from wechatpayv3 import utils as sdk

from payment.adapters.providers import sm2
from payment.adapters.providers.bank import message_to_sign
from payment.adapters.providers.base import (
    CallbackRejected,
    RefundTarget,
    load_rsa_private_key,
    public_pem,
)
from payment.adapters.providers.simulator import ProviderSimulator

from .conftest import NOW

UID = "1234567812345678"


def _target(order_no: str, txn: str, refund_no: str, refund: int = 300, total: int = 1000) -> RefundTarget:
    return RefundTarget(
        refund_no=refund_no,
        order_no=order_no,
        provider_txn_id=txn,
        refund_fen=refund,
        total_fen=total,
        reason="重复缴费退款",
        notify_url="https://pay.example.cn/callbacks/x",
    )


async def _send(sim: ProviderSimulator, provider: str, target: RefundTarget, *, tamper: bool = False):
    adapter = sim.adapters()[provider]
    base = f"http://sim/bank/{provider[5:]}" if provider.startswith("bank:") else "http://sim"
    request = adapter.build_refund_request(target, now=NOW)
    transport = httpx.ASGITransport(app=sim.asgi_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://sim") as client:
        response = await client.request(
            request.method, request.url(base), headers=request.headers, content=request.body
        )
    body = response.content
    if tamper:  # one byte of the provider's answer changed in transit
        body = body[:-3] + b" " + body[-2:]
    return adapter.parse_refund_response(
        status_code=response.status_code,
        headers=response.headers,
        body=body,
        refund_no=target.refund_no,
        now=NOW,
    )


# ---------------------------------------------------------------------------------------- our signatures
def test_the_wechat_refund_request_is_signed_as_the_sdk_signs(sim: ProviderSimulator) -> None:
    request = sim.wechat_adapter().build_refund_request(_target("P-WX-R1", "4200009", "R-WX-1"), now=NOW)
    assert (request.method, request.path) == ("POST", "/v3/refund/domestic/refunds")
    auth = request.headers["Authorization"]
    scheme, rest = auth.split(" ", 1)
    fields = {k: v.strip('"') for k, v in (part.split("=", 1) for part in rest.split(","))}
    assert scheme == "WECHATPAY2-SHA256-RSA2048"
    assert fields["mchid"] == sim.mchid and fields["serial_no"] == sim.keys.wechat_merchant_serial
    merchant = sdk.load_private_key(sim.keys.wechat_merchant_private)
    body = request.body.decode()
    expected = sdk.rsa_sign(
        merchant, f"POST\n/v3/refund/domestic/refunds\n{fields['timestamp']}\n{fields['nonce_str']}\n{body}\n"
    )
    assert fields["signature"] == expected  # PKCS#1 v1.5 is deterministic
    assert json.loads(body) == {
        "transaction_id": "4200009",
        "out_trade_no": "P-WX-R1",
        "out_refund_no": "R-WX-1",
        "reason": "重复缴费退款",
        "notify_url": "https://pay.example.cn/callbacks/x",
        "amount": {"refund": 300, "total": 1000, "currency": "CNY"},
    }


def test_the_alipay_refund_request_verifies_with_the_sdk(sim: ProviderSimulator) -> None:
    request = sim.alipay_adapter().build_refund_request(
        _target("P-ALI-R1", "2026112322001", "R-ALI-1"), now=NOW
    )
    params = dict(parse_qsl(request.body.decode("ascii"), keep_blank_values=True))
    sign = params.pop("sign")
    app_public = public_pem(load_rsa_private_key(sim.keys.alipay_app_private))
    assert verify_with_rsa(app_public, get_sign_content(params).encode(), sign)
    with pytest.raises(Exception, match="Verification failed"):  # the SDK raises on a bad signature
        verify_with_rsa(app_public, get_sign_content(params | {"method": "x"}).encode(), sign)
    assert (params["method"], params["sign_type"], params["charset"]) == (
        "alipay.trade.refund",
        "RSA2",
        "utf-8",
    )
    assert json.loads(params["biz_content"]) == {
        "trade_no": "2026112322001",
        "out_trade_no": "P-ALI-R1",
        "refund_amount": "3.00",
        "out_request_no": "R-ALI-1",
        "refund_reason": "重复缴费退款",
    }


def test_the_banks_rsa_refund_request_verifies_with_cryptography(sim: ProviderSimulator) -> None:
    request = sim.bank_adapter("icbc").build_refund_request(_target("P-ICBC-R1", "SN1", "R-ICBC-1"), now=NOW)
    h = request.headers
    assert h["X-Bank-Sign-Type"] == "RSA2" and h["X-Bank-Key-Id"] == sim.keys.banks["icbc"]["merchant_key_id"]
    public = load_rsa_private_key(sim.keys.banks["icbc"]["merchant_private"]).public_key()
    message = message_to_sign("icbc", h["X-Bank-Timestamp"], h["X-Bank-Nonce"], request.body)
    public.verify(base64.b64decode(h["X-Bank-Signature"]), message, padding.PKCS1v15(), hashes.SHA256())
    payload = json.loads(request.body)
    assert (payload["msg_type"], payload["refund_no"], payload["refund_amount_fen"]) == (
        "REFUND_REQUEST",
        "R-ICBC-1",
        300,
    )


def test_the_banks_sm2_refund_request_verifies_with_pysmx(sim: ProviderSimulator) -> None:
    request = sim.bank_adapter("boc").build_refund_request(_target("P-BOC-R1", "SN2", "R-BOC-1"), now=NOW)
    h = request.headers
    assert h["X-Bank-Sign-Type"] == "SM2"
    r, s = sm2.decode_signature(base64.b64decode(h["X-Bank-Signature"]))
    public = sm2.public_key_of(sim.keys.banks["boc"]["merchant_private"])[2:]
    message = message_to_sign("boc", h["X-Bank-Timestamp"], h["X-Bank-Nonce"], request.body)
    assert pysmx_sm2.Verify(f"{r:064x}{s:064x}", message, public, 64, uid=UID)
    assert not pysmx_sm2.Verify(f"{r:064x}{s:064x}", message.replace(b"300", b"301"), public, 64, uid=UID)


def test_a_refund_beyond_the_total_is_never_built(sim: ProviderSimulator) -> None:
    for adapter in sim.adapters().values():
        with pytest.raises(ValueError):
            adapter.build_refund_request(_target("P-X", "T", "R-X", refund=1001, total=1000), now=NOW)


# ------------------------------------------------------------------------------------ the providers' answers
PROVIDERS = ["wechat", "alipay", "bank:icbc", "bank:boc"]


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_answers_are_verified_and_classified(sim: ProviderSimulator, provider: str) -> None:
    order_no = f"P-REF-{provider}"
    sim.callback(provider, order_no, 1000, now=NOW)
    txn = sim.orders[(provider, order_no)].txn_id
    first = await _send(sim, provider, _target(order_no, txn, f"R-{provider}-1", refund=600))
    assert first.status == "accepted" and first.provider == provider, first
    # The same refund number again is the same refund: accepted, no second notice.
    again = await _send(sim, provider, _target(order_no, txn, f"R-{provider}-1", refund=600))
    assert again.status == "accepted"
    notices = [n for n in sim.take_refund_notices() if n.order_no == order_no]
    assert len(notices) == 1
    notice = sim.adapters()[provider].verify_callback(
        headers=notices[0].headers, body=notices[0].body, now=NOW
    )
    assert (notice.status, notice.amount_fen, notice.order_no) == ("refunded", 600, order_no)
    # More than is left of the trade: refused by the provider.
    over = await _send(sim, provider, _target(order_no, txn, f"R-{provider}-2", refund=401))
    assert over.status == "refused" and over.code
    # The provider's system error: try again with the same number.
    sim.script_refunds("error")
    busy = await _send(sim, provider, _target(order_no, txn, f"R-{provider}-3", refund=100))
    assert busy.status == "retry"
    # A forged (altered) answer is never concluded from.
    sim.script_refunds("refuse")
    with pytest.raises(CallbackRejected) as err:
        await _send(sim, provider, _target(order_no, txn, f"R-{provider}-4", refund=100), tamper=True)
    assert err.value.code in ("bad_signature", "malformed")
