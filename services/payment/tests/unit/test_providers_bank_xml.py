"""Bank direct-connect XML notifications (银企直连 报文: head + body, the signature over the body's bytes as
sent): messages signed here with ``cryptography`` (RSA2) and ``pysmx`` (SM2/SM3, in GBK) are verified by the
adapter; the simulator's messages verify with those same independent peers; forged, stale, replayed and
malicious (XXE, entity expansion, a second body) messages are refused; the bank is answered in XML."""

from __future__ import annotations

import base64
import re
from datetime import timedelta

import pytest
from Cryptodome.Util.asn1 import DerSequence
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from defusedxml import ElementTree as SafeET
from pysmx import SM2 as pysmx_sm2

from payment.adapters.providers import sm2
from payment.adapters.providers.base import (
    CallbackRejected,
    InMemoryNonceStore,
    check_replay,
    load_rsa_private_key,
)
from payment.adapters.providers.simulator import ProviderSimulator

from .conftest import NOW

UID = "1234567812345678"
TX_TIME = "20261123101530"  # NOW in Beijing


@pytest.fixture(scope="module")
def xsim() -> ProviderSimulator:
    return ProviderSimulator(banks={"ccb": "RSA2", "abc": "SM2"}, xml_banks=("ccb", "abc"), clock=lambda: NOW)


def _body(xsim: ProviderSimulator, **overrides: str) -> str:
    fields = {
        "MerchantNo": xsim.merchant_no,
        "OrderNo": "P202611230000000777",
        "BankSerialNo": "CCB20261123000001",
        "Amount": "123.45",
        "Currency": "CNY",
        "Status": "SUCCESS",
        "PaidTime": "20261123101500",
        "PayerAccount": "6222****1234 王*",
    } | overrides
    return "<Body>" + "".join(f"<{k}>{v}</{k}>" for k, v in fields.items()) + "</Body>"


def _signing_string(code: str, tx_code: str, tx_time: str, nonce: str, body: bytes) -> bytes:
    return f"{code}\n{tx_code}\n{tx_time}\n{nonce}\n".encode() + body + b"\n"


def _message(
    xsim: ProviderSimulator,
    code: str,
    body: str,
    *,
    tx_code: str = "PAY_NOTIFY",
    tx_time: str = TX_TIME,
    nonce: str = "c" * 32,
    encoding: str = "UTF-8",
    private: str | None = None,
    head_overrides: dict | None = None,
) -> bytes:
    """Built and signed here, independently of the project's code: RSA2 with cryptography, SM2 with pysmx."""
    b = xsim.keys.banks[code]
    codec = "gbk" if encoding == "GBK" else "utf-8"
    body_bytes = body.encode(codec)
    message = _signing_string(code, tx_code, tx_time, nonce, body_bytes)
    if b["sign_type"] == "RSA2":
        key = load_rsa_private_key(private or b["bank_private"])
        sig = base64.b64encode(key.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode()
    else:
        raw = pysmx_sm2.Sign(message, private or b["bank_private"], f"{0xABCDEF1234567:064x}", 64, uid=UID)
        der = DerSequence([int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")]).encode()
        sig = base64.b64encode(der).decode()
    head = {
        "TxCode": tx_code,
        "BankCode": code,
        "TxTime": tx_time,
        "Nonce": nonce,
        "KeyId": b["bank_key_id"],
        "SignType": b["sign_type"],
    } | (head_overrides or {})
    head_xml = "".join(f"<{k}>{v}</{k}>" for k, v in head.items())
    return (
        f'<?xml version="1.0" encoding="{encoding}"?>\n<Message>\n  <Head>{head_xml}</Head>\n  '.encode(codec)
        + body_bytes
        + f"\n  <Signature>{sig}</Signature>\n</Message>\n".encode(codec)
    )


def _reject(xsim: ProviderSimulator, code: str, body: bytes, now=NOW) -> str:
    with pytest.raises(CallbackRejected) as err:
        xsim.bank_adapter(code).verify_callback(headers={}, body=body, now=now)
    return err.value.code


# ------------------------------------------------------------------------------------ independent peers
def test_an_rsa_xml_notification_signed_with_cryptography_is_verified(xsim: ProviderSimulator) -> None:
    body = _message(xsim, "ccb", _body(xsim))
    notice = xsim.bank_adapter("ccb").verify_callback(headers={}, body=body, now=NOW)
    assert (notice.provider, notice.order_no, notice.amount_fen, notice.status) == (
        "bank:ccb",
        "P202611230000000777",
        12345,
        "succeeded",
    )
    assert notice.provider_txn_id == "CCB20261123000001" and notice.nonce == "c" * 32
    assert notice.paid_at == NOW - timedelta(seconds=30) and notice.raw["format"] == "XML"


def test_a_gbk_sm2_xml_notification_signed_by_pysmx_is_verified(xsim: ProviderSimulator) -> None:
    body = _message(xsim, "abc", _body(xsim, BankSerialNo="ABC1"), encoding="GBK", nonce="d" * 32)
    assert "王".encode("gbk") in body  # the bytes signed are GBK, as the bank sent them
    notice = xsim.bank_adapter("abc").verify_callback(headers={}, body=body, now=NOW)
    assert (notice.provider, notice.amount_fen, notice.provider_txn_id) == ("bank:abc", 12345, "ABC1")
    assert notice.raw["payer_account_masked"] == "6222****1234 王*"


def test_a_refund_notice_names_our_refund_number(xsim: ProviderSimulator) -> None:
    body = _message(xsim, "ccb", _body(xsim, RefundNo="R20261123000000077701"), tx_code="REFUND_NOTIFY")
    notice = xsim.bank_adapter("ccb").verify_callback(headers={}, body=body, now=NOW)
    assert notice.status == "refunded" and notice.raw["refund_no"] == "R20261123000000077701"


@pytest.mark.parametrize("code", ["ccb", "abc"])
def test_the_simulators_xml_verifies_with_the_independent_peers(xsim: ProviderSimulator, code: str) -> None:
    cb = xsim.bank_callback(code, "P202611230000000888", 500, now=NOW, xml_encoding="GBK")
    text = cb.body.decode("gbk")
    head = {k: re.search(f"<{k}>([^<]*)</{k}>", text).group(1) for k in ("TxCode", "TxTime", "Nonce")}
    body_bytes = re.search(rb"<Body>.*</Body>", cb.body, re.S).group(0)
    signature = base64.b64decode(re.search(r"<Signature>([^<]*)</Signature>", text).group(1))
    message = _signing_string(code, head["TxCode"], head["TxTime"], head["Nonce"], body_bytes)
    b = xsim.keys.banks[code]
    if b["sign_type"] == "RSA2":
        public = load_rsa_private_key(b["bank_private"]).public_key()
        public.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
    else:
        r, s = sm2.decode_signature(signature)
        public_hex = sm2.public_key_of(b["bank_private"])[2:]
        assert pysmx_sm2.Verify(f"{r:064x}{s:064x}", message, public_hex, 64, uid=UID)
        assert not pysmx_sm2.Verify(f"{r:064x}{s:064x}", message + b" ", public_hex, 64, uid=UID)
    assert xsim.bank_adapter(code).verify_callback(headers={}, body=cb.body, now=NOW).amount_fen == 500


# ------------------------------------------------------------------------------ forged, stale, replayed
@pytest.mark.parametrize("code", ["ccb", "abc"])
def test_forged_xml_notifications_are_refused(xsim: ProviderSimulator, code: str) -> None:
    good = _message(xsim, code, _body(xsim))
    assert _reject(xsim, code, good.replace(b"123.45", b"923.45")) == "bad_signature"
    assert _reject(xsim, code, good.replace(b"PAY_NOTIFY", b"REFUND_NOTIFY")) == "bad_signature"
    assert _reject(xsim, code, good.replace(b"c" * 32, b"e" * 32)) == "bad_signature"
    assert _reject(xsim, code, good.replace(b"<Body>", b"<Body>\n", 1)) == "bad_signature"  # bytes, not tree
    if xsim.keys.banks[code]["sign_type"] == "SM2":
        other = sm2.generate_keypair()[0]
    else:
        other = ProviderSimulator(banks={"x1": "RSA2"}).keys.banks["x1"]["bank_private"]
    assert _reject(xsim, code, _message(xsim, code, _body(xsim), private=other)) == "bad_signature"
    unknown = _message(xsim, code, _body(xsim), head_overrides={"KeyId": "OLD-KEY"})
    assert _reject(xsim, code, unknown) == "unknown_key"
    downgrade = "SM2" if xsim.keys.banks[code]["sign_type"] == "RSA2" else "RSA2"
    assert _reject(xsim, code, _message(xsim, code, _body(xsim), head_overrides={"SignType": downgrade})) == (
        "unsupported_algorithm"
    )
    assert _reject(xsim, code, _message(xsim, code, _body(xsim), head_overrides={"BankCode": "icbc"})) == (
        "wrong_recipient"
    )
    assert _reject(xsim, code, _message(xsim, code, _body(xsim, MerchantNo="M999"))) == "wrong_recipient"
    assert _reject(xsim, code, _message(xsim, code, _body(xsim, Amount="1.234"))) == "bad_amount"


@pytest.mark.parametrize("code", ["ccb", "abc"])
async def test_stale_and_replayed_xml_notifications_are_refused(xsim: ProviderSimulator, code: str) -> None:
    old = _message(xsim, code, _body(xsim), tx_time="20261123091530")  # an hour before NOW
    assert _reject(xsim, code, old) == "stale_timestamp"
    assert (
        _reject(xsim, code, _message(xsim, code, _body(xsim), tx_time="20261123102531")) == "stale_timestamp"
    )
    store = InMemoryNonceStore(clock=lambda: NOW)
    body = _message(xsim, code, _body(xsim), nonce="f" * 32)
    notice = xsim.bank_adapter(code).verify_callback(headers={}, body=body, now=NOW)
    await check_replay(notice, store, NOW)
    await store.remember(notice.provider, notice.nonce)
    again = xsim.bank_adapter(code).verify_callback(headers={}, body=body, now=NOW)
    with pytest.raises(CallbackRejected) as err:
        await check_replay(again, store, NOW)
    assert err.value.code == "replayed"


XXE = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE Message [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n'
    b"<Message><Head><TxCode>PAY_NOTIFY</TxCode></Head><Body><OrderNo>&x;</OrderNo></Body>"
    b"<Signature>AA==</Signature></Message>"
)
LAUGHS = (
    b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;">'
    b'<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;">]><Message><Head/><Body>&lol3;</Body><Signature/></Message>'
)


def test_malicious_or_malformed_xml_is_refused_before_anything_is_read(xsim: ProviderSimulator) -> None:
    assert _reject(xsim, "ccb", XXE) == "malformed"
    assert _reject(xsim, "ccb", LAUGHS) == "malformed"
    good = _message(xsim, "ccb", _body(xsim))
    # A second body (the signed one kept, another one added), or a body hidden in a comment or CDATA.
    second = good.replace(b"</Message>", _body(xsim, Amount="1.00").encode() + b"</Message>")
    assert _reject(xsim, "ccb", second) == "malformed"
    commented = good.replace(b"<Head>", b"<!-- <Body><Amount>1.00</Amount></Body> --><Head>")
    assert _reject(xsim, "ccb", commented) == "malformed"
    cdata = good.replace(b"6222****1234", b"<![CDATA[</Body>]]>")
    assert _reject(xsim, "ccb", cdata) == "malformed"
    extra = _message(xsim, "ccb", _body(xsim).replace("</Body>", "<Evil>1</Evil></Body>"))
    assert _reject(xsim, "ccb", extra) == "malformed"
    assert _reject(xsim, "ccb", good[:-20]) == "malformed"
    assert _reject(xsim, "ccb", b"{}") == "malformed"
    assert _reject(xsim, "ccb", good.replace(b'encoding="UTF-8"', b'encoding="EBCDIC"')) == "malformed"
    assert _reject(xsim, "ccb", good + b" " * (64 * 1024)) == "malformed"


def test_the_bank_is_answered_in_xml(xsim: ProviderSimulator) -> None:
    status, content_type, body = xsim.bank_adapter("ccb").ack(True)
    root = SafeET.fromstring(body)
    assert (status, content_type) == (200, "application/xml")
    assert (root.findtext("Body/ReturnCode"), root.findtext("Body/ReturnMsg")) == ("0000", "成功")
    _, _, refused = xsim.bank_adapter("ccb").ack(False, "bad_signature")
    assert SafeET.fromstring(refused).findtext("Body/ReturnCode") == "9999"


# ------------------------------------------------------------------- our requests and the bank's answers
def _sent(xsim: ProviderSimulator, code: str, request) -> tuple[int, dict, bytes]:
    """``request`` sent to the simulated bank's HTTP side; (status, headers, body) of its answer."""
    import asyncio

    import httpx

    async def go():
        transport = httpx.ASGITransport(app=xsim.asgi_app())
        async with httpx.AsyncClient(transport=transport) as http:
            r = await http.request(
                request.method, request.url(f"http://sim.test/bank/{code}"), headers=request.headers,
                content=request.body,
            )  # fmt: skip
            return r.status_code, r.headers, r.content

    return asyncio.run(go())


def _head_and_body(raw: bytes) -> tuple[dict, bytes, str]:
    head = {el.tag: el.text for el in SafeET.fromstring(raw).find("Head")}
    body = raw[raw.index(b"<Body>") : raw.index(b"</Body>") + len(b"</Body>")]
    signature = SafeET.fromstring(raw).findtext("Signature")
    return head, body, signature


@pytest.mark.parametrize("code", ["ccb", "abc"])
def test_our_xml_requests_verify_with_the_independent_peers(xsim: ProviderSimulator, code: str) -> None:
    """A query request to an XML bank is an XML Message signed with our key over its body's bytes: checked
    with cryptography (RSA2) and pysmx (SM2), not with the project's verifier."""
    request = xsim.bank_adapter(code).build_query_request(order_no="P202611230000000888", now=NOW)
    assert request.headers["Content-Type"].startswith("application/xml")
    head, body, signature = _head_and_body(request.body)
    assert (head["TxCode"], head["BankCode"], head["KeyId"]) == (
        "QUERY_REQUEST",
        code,
        f"{code.upper()}-MER-01",
    )
    assert b"<OrderNo>P202611230000000888</OrderNo>" in body
    signed = _signing_string(code, head["TxCode"], head["TxTime"], head["Nonce"], body)
    merchant = xsim.keys.banks[code]["merchant_private"]
    if code == "ccb":
        public = load_rsa_private_key(merchant).public_key()
        public.verify(base64.b64decode(signature), signed, padding.PKCS1v15(), hashes.SHA256())
    else:
        r, s = sm2.decode_signature(base64.b64decode(signature))
        public_hex = sm2.public_key_of(merchant)[2:]
        assert pysmx_sm2.Verify(f"{r:064x}{s:064x}", signed, public_hex, 64, uid=UID)
        assert not pysmx_sm2.Verify(f"{r:064x}{s:064x}", signed + b" ", public_hex, 64, uid=UID)


@pytest.mark.parametrize("code", ["ccb", "abc"])
def test_pay_query_refund_and_statement_round_trips_in_xml(xsim: ProviderSimulator, code: str) -> None:
    from payment.adapters.providers.base import QueryRequest, RefundTarget

    adapter, order_no = xsim.bank_adapter(code), f"P2026112300000{code}01"
    pay = adapter.build_order_request(
        order_no=order_no,
        amount_fen=12_345,
        description="户号 1234567890 缴费",
        notify_url="http://x/cb",
        now=NOW,
    )
    assert pay["body"].startswith("<?xml") and "<Amount>123.45</Amount>" in pay["body"]
    status, _, body = _sent(
        xsim, code, QueryRequest("POST", pay["path"], pay["headers"], pay["body"].encode())
    )
    assert (
        status == 200
        and b"<TxCode>PAY_RESPONSE</TxCode>" in body
        and b"<ReturnCode>0000</ReturnCode>" in body
    )
    assert xsim.orders[(f"bank:{code}", order_no)].amount_fen == 12_345  # the bank read 123.45 yuan exactly
    paid = xsim.bank_callback(code, order_no, 12_345, now=NOW)
    serial = adapter.verify_callback(headers=paid.headers, body=paid.body, now=NOW).provider_txn_id

    status, headers, body = _sent(xsim, code, adapter.build_query_request(order_no=order_no, now=NOW))
    assert status == 200 and body.startswith(b"<?xml") and b"<TxCode>QUERY_RESPONSE</TxCode>" in body
    answer = adapter.parse_query_response(
        status_code=status, headers=headers, body=body, order_no=order_no, now=NOW
    )
    assert (answer.status, answer.amount_fen, answer.provider_txn_id) == ("succeeded", 12_345, serial)
    forged = body.replace(b"<Amount>123.45</Amount>", b"<Amount>1234.50</Amount>")
    assert forged != body
    with pytest.raises(CallbackRejected):
        adapter.parse_query_response(
            status_code=200, headers=headers, body=forged, order_no=order_no, now=NOW
        )

    target = RefundTarget(f"R{order_no}", order_no, serial, 2_000, 12_345, "多缴退费", "http://x/cb")
    status, headers, body = _sent(xsim, code, adapter.build_refund_request(target, now=NOW))
    assert b"<TxCode>REFUND_RESPONSE</TxCode>" in body
    refund = adapter.parse_refund_response(
        status_code=status, headers=headers, body=body, refund_no=target.refund_no, now=NOW
    )
    assert refund.status == "accepted" and refund.provider_refund_id
    assert xsim.refunds[(f"bank:{code}", target.refund_no)] == (
        order_no,
        2_000,
    )  # RefundAmount 20.00 read exactly

    day = (NOW - timedelta(days=1)).date()
    status, headers, body = _sent(xsim, code, adapter.build_statement_request(day=day, now=NOW))
    statement = adapter.parse_statement_response(
        status_code=status, headers=headers, body=body, day=day, now=NOW
    )
    assert (
        statement.status == "ready"
        and adapter.statement_file(statement, statement.content or b"") is not None
    )


def test_a_request_the_bank_cannot_verify_is_refused_there(xsim: ProviderSimulator) -> None:
    request = xsim.bank_adapter("ccb").build_query_request(order_no="P202611230000000999", now=NOW)
    tampered = type(request)(
        request.method, request.path, request.headers, request.body.replace(b"0999<", b"0998<")
    )
    assert _sent(xsim, "ccb", tampered)[0] == 401
    assert _sent(xsim, "ccb", request)[0] == 200


def test_an_xml_banks_statement_answer_may_be_larger_than_a_notification(xsim: ProviderSimulator) -> None:
    """A notification is at most 64 KiB; the bank's answer to our statement request carries the day's file
    and may be much larger."""
    from payment.adapters.providers import bankxml
    from payment.domain.statements import parse_statement

    day, paid_at = (NOW - timedelta(days=3)).date(), NOW - timedelta(days=3)
    for i in range(900):
        order_no = f"P2026112000{i:08d}"
        xsim.register_order("bank:ccb", order_no, 1_000 + i)
        xsim.bank_callback("ccb", order_no, 1_000 + i, paid_at=paid_at, now=NOW)
    adapter = xsim.bank_adapter("ccb")
    status, headers, body = _sent(xsim, "ccb", adapter.build_statement_request(day=day, now=NOW))
    assert len(body) > bankxml.MAX_BYTES
    answer = adapter.parse_statement_response(
        status_code=status, headers=headers, body=body, day=day, now=NOW
    )
    lines = parse_statement("bank:ccb", adapter.statement_file(answer, answer.content or b"")).require()
    assert len(lines) == 900
    with pytest.raises(CallbackRejected, match="too large"):  # as a notification it would be refused
        adapter.verify_callback(headers=headers, body=body, now=NOW)
