"""Bank direct-connect adapter: RSA2 checked against signatures made here with ``cryptography``; SM2 checked
against ``pysmx`` (snowland-smx), a second SM2/SM3 implementation: pysmx signs what the adapter (gmssl)
verifies, and pysmx verifies what the simulator (gmssl) signs. Every forged, stale or replayed callback is
refused, on both signature paths."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import pytest
from Cryptodome.Util.asn1 import DerSequence
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from pysmx import SM2 as pysmx_sm2

from payment.adapters.providers import sm2
from payment.adapters.providers.bank import message_to_sign
from payment.adapters.providers.base import (
    CallbackRejected,
    InMemoryNonceStore,
    check_replay,
    load_rsa_private_key,
)
from payment.adapters.providers.simulator import ProviderSimulator

from .conftest import NOW

UID = "1234567812345678"


def _body(sim: ProviderSimulator, code: str, **overrides) -> bytes:
    payload = {
        "msg_type": "PAY_NOTIFY",
        "bank_code": code,
        "merchant_no": sim.merchant_no,
        "order_no": "P-BANK-1",
        "bank_serial_no": "SN0001",
        "amount_fen": 12345,
        "currency": "CNY",
        "status": "SUCCESS",
        "paid_time": "20261123101500",
        "payer_account_masked": "6222****1234",
    } | overrides
    return json.dumps(payload, ensure_ascii=False).encode()


def _headers(
    sim: ProviderSimulator, code: str, signature: str, *, timestamp="20261123101530", nonce="a" * 32
) -> dict:
    b = sim.keys.banks[code]
    return {
        "X-Bank-Code": code,
        "X-Bank-Timestamp": timestamp,
        "X-Bank-Nonce": nonce,
        "X-Bank-Key-Id": b["bank_key_id"],
        "X-Bank-Sign-Type": b["sign_type"],
        "X-Bank-Signature": signature,
    }


def _rsa_signed(sim: ProviderSimulator, body: bytes, *, private: str | None = None, **kw) -> dict:
    """Signed here with cryptography directly, over the documented string."""
    key = load_rsa_private_key(private or sim.keys.banks["icbc"]["bank_private"])
    ts, nonce = kw.get("timestamp", "20261123101530"), kw.get("nonce", "a" * 32)
    sig = key.sign(f"icbc\n{ts}\n{nonce}\n".encode() + body + b"\n", padding.PKCS1v15(), hashes.SHA256())
    return _headers(sim, "icbc", base64.b64encode(sig).decode(), **kw)


def _pysmx_signed(sim: ProviderSimulator, body: bytes, *, private: str | None = None, **kw) -> dict:
    """Signed by pysmx (SM2 with SM3 and the default user id), DER-encoded as banks send it."""
    d = private or sim.keys.banks["boc"]["bank_private"]
    ts, nonce = kw.get("timestamp", "20261123101530"), kw.get("nonce", "b" * 32)
    raw = pysmx_sm2.Sign(
        message_to_sign("boc", ts, nonce, body), d, f"{0x1234567890ABCDEF1234567890:064x}", 64, uid=UID
    )
    der = DerSequence([int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")]).encode()
    return _headers(sim, "boc", base64.b64encode(der).decode(), nonce=nonce, timestamp=ts)


def _reject(adapter, headers, body, now=NOW) -> str:
    with pytest.raises(CallbackRejected) as err:
        adapter.verify_callback(headers=headers, body=body, now=now)
    return err.value.code


# ---------------------------------------------------------------------------------------------- RSA2
def test_rsa_callback_signed_independently_is_verified(sim: ProviderSimulator) -> None:
    body = _body(sim, "icbc")
    notice = sim.bank_adapter("icbc").verify_callback(headers=_rsa_signed(sim, body), body=body, now=NOW)
    assert notice.provider == "bank:icbc" and notice.provider_txn_id == "SN0001"
    assert (notice.order_no, notice.amount_fen, notice.status) == ("P-BANK-1", 12345, "succeeded")
    assert (
        notice.paid_at == NOW - timedelta(seconds=30) and notice.timestamp == NOW and notice.nonce == "a" * 32
    )


def test_the_simulators_rsa_callback_verifies_with_cryptography(sim: ProviderSimulator) -> None:
    cb = sim.bank_callback("icbc", "P-BANK-SIM", 500, now=NOW)
    h = cb.headers
    public = load_rsa_private_key(sim.keys.banks["icbc"]["bank_private"]).public_key()
    public.verify(
        base64.b64decode(h["X-Bank-Signature"]),
        message_to_sign("icbc", h["X-Bank-Timestamp"], h["X-Bank-Nonce"], cb.body),
        padding.PKCS1v15(),
        hashes.SHA256(),
    )
    assert sim.bank_adapter("icbc").verify_callback(headers=h, body=cb.body, now=NOW).amount_fen == 500


def test_rsa_forged_stale_and_misaddressed_callbacks_are_refused(sim: ProviderSimulator) -> None:
    adapter, body = sim.bank_adapter("icbc"), _body(sim, "icbc")
    headers = _rsa_signed(sim, body)
    assert _reject(adapter, headers, body.replace(b"12345", b"12346")) == "bad_signature"
    forger = sim.keys.banks["icbc"]["merchant_private"]  # a valid key, but not the bank's
    assert _reject(adapter, _rsa_signed(sim, body, private=forger), body) == "bad_signature"
    assert _reject(adapter, headers, body, NOW + timedelta(minutes=5, seconds=1)) == "stale_timestamp"
    assert _reject(adapter, headers | {"X-Bank-Key-Id": "ICBC-BANK-99"}, body) == "unknown_key"
    assert _reject(adapter, headers | {"X-Bank-Sign-Type": "SM2"}, body) == "unsupported_algorithm"
    assert _reject(adapter, headers | {"X-Bank-Code": "boc"}, body) == "wrong_recipient"
    other_merchant = _body(sim, "icbc", merchant_no="M999")
    assert _reject(adapter, _rsa_signed(sim, other_merchant), other_merchant) == "wrong_recipient"
    other_bank = _body(sim, "icbc", bank_code="boc")
    assert _reject(adapter, _rsa_signed(sim, other_bank), other_bank) == "wrong_recipient"
    no_nonce = {k: v for k, v in headers.items() if k != "X-Bank-Nonce"}
    assert _reject(adapter, no_nonce, body) == "malformed"


# ----------------------------------------------------------------------------------------------- SM2
def test_sm2_callback_signed_by_pysmx_is_verified_by_the_adapter(sim: ProviderSimulator) -> None:
    body = _body(sim, "boc")
    notice = sim.bank_adapter("boc").verify_callback(headers=_pysmx_signed(sim, body), body=body, now=NOW)
    assert notice.provider == "bank:boc" and notice.amount_fen == 12345 and notice.nonce == "b" * 32


def test_pysmx_verifies_the_simulators_sm2_callback(sim: ProviderSimulator) -> None:
    cb = sim.bank_callback("boc", "P-BOC-SIM", 777, now=NOW)
    h = cb.headers
    r, s = sm2.decode_signature(base64.b64decode(h["X-Bank-Signature"]))
    public = sm2.public_key_of(sim.keys.banks["boc"]["bank_private"])[2:]
    message = message_to_sign("boc", h["X-Bank-Timestamp"], h["X-Bank-Nonce"], cb.body)
    assert pysmx_sm2.Verify(f"{r:064x}{s:064x}", message, public, 64, uid=UID)
    assert not pysmx_sm2.Verify(f"{r:064x}{s:064x}", message + b"x", public, 64, uid=UID)
    assert sim.bank_adapter("boc").verify_callback(headers=h, body=cb.body, now=NOW).amount_fen == 777


def test_sm2_forged_stale_and_malformed_signatures_are_refused(sim: ProviderSimulator) -> None:
    adapter, body = sim.bank_adapter("boc"), _body(sim, "boc")
    headers = _pysmx_signed(sim, body)
    assert _reject(adapter, headers, body.replace(b"12345", b"12346")) == "bad_signature"
    other_key, _ = sm2.generate_keypair()
    assert _reject(adapter, _pysmx_signed(sim, body, private=other_key), body) == "bad_signature"
    assert _reject(adapter, headers, body, NOW - timedelta(minutes=6)) == "stale_timestamp"
    assert _reject(adapter, headers | {"X-Bank-Sign-Type": "RSA2"}, body) == "unsupported_algorithm"
    r, s = sm2.decode_signature(base64.b64decode(headers["X-Bank-Signature"]))
    raw = base64.b64encode(bytes.fromhex(f"{r:064x}{s:064x}")).decode()  # r||s, not DER
    assert _reject(adapter, headers | {"X-Bank-Signature": raw}, body) == "bad_signature"
    out_of_range = base64.b64encode(DerSequence([r + sm2.N, s]).encode()).decode()
    assert _reject(adapter, headers | {"X-Bank-Signature": out_of_range}, body) == "bad_signature"
    zero = base64.b64encode(DerSequence([0, s]).encode()).decode()
    assert _reject(adapter, headers | {"X-Bank-Signature": zero}, body) == "bad_signature"


async def test_replayed_bank_callbacks_are_refused_on_both_paths(sim: ProviderSimulator) -> None:
    store = InMemoryNonceStore(clock=lambda: NOW)
    for code in ("icbc", "boc"):
        cb = sim.bank_callback(code, f"P-{code}-REPLAY", 100, now=NOW)
        adapter = sim.bank_adapter(code)
        notice = adapter.verify_callback(headers=cb.headers, body=cb.body, now=NOW)
        await check_replay(notice, store, NOW)
        await store.remember(notice.provider, notice.nonce)
        with pytest.raises(CallbackRejected) as err:
            await check_replay(adapter.verify_callback(headers=cb.headers, body=cb.body, now=NOW), store, NOW)
        assert err.value.code == "replayed"


def test_sm2_keys_whose_x_starts_with_0_or_4_work() -> None:
    """The GB/T 32918 example key: its x starts with 09 (gmssl's lstrip("04") would eat the 0)."""
    d = "3945208F7B2144B13F36E38AC6D39F95889393692860B51A42FB81EF4DF7C5B8"
    public = sm2.public_key_of(d)
    assert public.upper().startswith("0409F9DF311E5421A150DD7D161E4BC5C6")
    der = sm2.sign(d, b"message digest")
    assert sm2.verify(public, b"message digest", der)
    r, s = sm2.decode_signature(der)
    assert pysmx_sm2.Verify(f"{r:064x}{s:064x}", b"message digest", public[2:], 64, uid=UID)
    with pytest.raises(sm2.SM2KeyError):
        sm2.normalize_public_key("04" + "11" * 64)  # not on the curve


# ------------------------------------------------------------------------------ statuses, ack, query
def test_statuses_and_ack(sim: ProviderSimulator) -> None:
    adapter = sim.bank_adapter("icbc")
    failed = sim.bank_callback("icbc", "P-B-F", 100, now=NOW, status="FAILED")
    assert adapter.verify_callback(headers=failed.headers, body=failed.body, now=NOW).status == "failed"
    refund = sim.bank_callback("icbc", "P-B-R", 40, now=NOW, msg_type="REFUND_NOTIFY")
    assert adapter.verify_callback(headers=refund.headers, body=refund.body, now=NOW).status == "refunded"
    processing = sim.bank_callback("icbc", "P-B-P", 100, now=NOW, status="PROCESSING")
    with pytest.raises(CallbackRejected) as err:
        adapter.verify_callback(headers=processing.headers, body=processing.body, now=NOW)
    assert err.value.acknowledge
    status, kind, body = adapter.ack(True)
    assert (status, kind, json.loads(body)["return_code"]) == (200, "application/json", "0000")
    assert json.loads(adapter.ack(False, "bad_signature")[2]) == {
        "return_code": "9999",
        "return_msg": "bad_signature",
    }


@pytest.mark.parametrize("code", ["icbc", "boc"])
def test_requests_and_query_answers_are_signed_both_ways(sim: ProviderSimulator, code: str) -> None:
    adapter = sim.bank_adapter(code)
    request = adapter.build_order_request(
        order_no=f"P-{code}-Q", amount_fen=321, description="缴费", notify_url="https://x/cb", now=NOW
    )
    # the bank (simulator) verifies our request with our public key
    sim._merchant_verifiers[code].verify(
        request["headers"], request["body"].encode(), bank_code=code, now=NOW, window=timedelta(minutes=5)
    )
    status, headers, body = sim.query(f"bank:{code}", f"P-{code}-Q", now=NOW)
    answer = adapter.parse_query_response(
        status_code=status, headers=headers, body=body, order_no=f"P-{code}-Q", now=NOW
    )
    assert answer.status == "not_found"
    sim.bank_callback(code, f"P-{code}-Q", 321, "SERIAL-Q", NOW, now=NOW)
    status, headers, body = sim.query(f"bank:{code}", f"P-{code}-Q", now=NOW)
    answer = adapter.parse_query_response(
        status_code=status, headers=headers, body=body, order_no=f"P-{code}-Q", now=NOW
    )
    assert (answer.status, answer.amount_fen, answer.provider_txn_id) == ("succeeded", 321, "SERIAL-Q")
    with pytest.raises(CallbackRejected) as err:
        adapter.parse_query_response(
            status_code=status,
            headers=headers,
            body=body.replace(b"321", b"322"),
            order_no=f"P-{code}-Q",
            now=NOW,
        )
    assert err.value.code == "bad_signature"
