"""Bank direct-connect (银企直连): a bank's signed JSON payment / refund notification, our signed payment
and query requests, the bank's signed query answer. One adapter per bank (``provider = "bank:<code>"``),
signing with RSA2 (RSA-SHA256) or SM2 (SM2-with-SM3, 国密), as agreed with that bank. Notifications are JSON
(below) or, for a bank configured with ``message_format="XML"``, XML (:mod:`.bankxml`: header and body, the
signature over the body's bytes as sent, answered in XML); requests and query answers are JSON.

**Message** (callback, request and answer alike): ``POST``, ``Content-Type: application/json;
charset=utf-8``, headers

* ``X-Bank-Code``: the bank (lowercase, e.g. ``icbc``); must be this adapter's (``wrong_recipient``);
* ``X-Bank-Timestamp``: Beijing time ``YYYYMMDDHHMMSS``, within the window (``stale_timestamp``);
* ``X-Bank-Nonce``: 16-64 characters ``[0-9A-Za-z]`` (our replay nonce);
* ``X-Bank-Key-Id``: which of the signer's keys signed (rotation); unknown: ``unknown_key``;
* ``X-Bank-Sign-Type``: ``RSA2`` or ``SM2``: must be the one configured for the bank (no downgrade:
  ``unsupported_algorithm``);
* ``X-Bank-Signature``: base64 signature over ``code + "\\n" + timestamp + "\\n" + nonce + "\\n" + raw body +
  "\\n"``: RSA2 = RSA-SHA256 PKCS#1 v1.5; SM2 = DER ``SEQUENCE{r, s}`` SM2-with-SM3, default user id
  ``1234567812345678`` (see :mod:`.sm2`).

**Notification body**: ``{"msg_type": "PAY_NOTIFY" | "REFUND_NOTIFY", "bank_code", "merchant_no" (ours,
else wrong_recipient), "order_no", "bank_serial_no" (the dedupe key; for a refund the refund's own serial),
"amount_fen" (int), "currency": "CNY", "status": "SUCCESS" | "FAILED" | "CLOSED" | "PROCESSING",
"paid_time": "YYYYMMDDHHMMSS" (Beijing, required for SUCCESS), "payer_account_masked", "fail_reason"}``;
a ``REFUND_NOTIFY`` also names our ``refund_no``.
``SUCCESS`` -> succeeded (``refunded`` for ``REFUND_NOTIFY``), ``FAILED`` -> failed, ``CLOSED`` -> closed,
``PROCESSING`` -> ``not_final`` (acknowledged, not applied). The body's ``bank_code`` must equal the header's.

**Ack** (HTTP 200, JSON): ``{"return_code": "0000", "return_msg": "成功"}``; a refusal
``{"return_code": "9999", "return_msg": <code>}`` (the bank retries on anything but ``0000``).

**Our requests** (signed with our key for that bank, ``X-Bank-Key-Id`` = ``merchant_key_id``):
``POST /api/pay`` ``{"msg_type": "PAY_REQUEST", "bank_code", "merchant_no", "order_no", "amount_fen",
"currency", "description", "notify_url", "request_time"}`` and ``POST /api/query`` ``{"msg_type":
"QUERY_REQUEST", "bank_code", "merchant_no", "order_no", "request_time"}``. The bank answers a query with a
message signed as a notification: ``{"msg_type": "QUERY_RESPONSE", "bank_code", "merchant_no",
"order_no", "result": "FOUND" | "NOT_FOUND", "status", "bank_serial_no", "amount_fen", "paid_time"}``
(``PROCESSING`` -> pending).

**Refund request** ``POST /api/refund`` (signed as above): ``{"msg_type": "REFUND_REQUEST", "bank_code",
"merchant_no", "order_no", "bank_serial_no" (the payment's), "refund_no" (ours: the bank's idempotency
key), "refund_amount_fen", "currency", "reason", "notify_url", "request_time"}``. The bank answers with a
message signed as a notification: ``{"msg_type": "REFUND_RESPONSE", "bank_code", "merchant_no",
"refund_no", "return_code", "return_msg", "bank_refund_serial_no"}``: ``0000`` = accepted (its
``REFUND_NOTIFY``, carrying ``refund_no``, completes the refund), ``9000`` (system busy) = retry, any other
code (``2001`` balance insufficient, ``2002`` not refundable, ``2003`` amount exceeds ...) = refused.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
from collections.abc import Mapping
from datetime import date, datetime, timedelta
from typing import Any, Literal

from payment.adapters.providers import bankxml, sm2
from payment.adapters.providers.base import (
    DEFAULT_WINDOW,
    CallbackNotice,
    CallbackRejected,
    QueryAnswer,
    QueryRequest,
    RefundAnswer,
    RefundTarget,
    StatementAnswer,
    b64decode_strict,
    check_digest,
    check_window,
    header,
    json_object,
    load_rsa_private_key,
    load_rsa_public_key,
    rsa_sha256_sign,
    rsa_sha256_verify,
    shanghai_time,
    to_shanghai,
)

SignType = Literal["RSA2", "SM2"]
TIME_FORMAT = "%Y%m%d%H%M%S"
_NONCE = re.compile(r"[0-9A-Za-z]{16,64}")
_STATUSES = {"SUCCESS": "succeeded", "FAILED": "failed", "CLOSED": "closed"}
REFUND_ACCEPTED, REFUND_RETRY = "0000", "9000"
STATEMENT_READY, STATEMENT_NOT_READY = "0000", "1001"
SIGNED_HEADERS = (
    "X-Bank-Code",
    "X-Bank-Timestamp",
    "X-Bank-Nonce",
    "X-Bank-Key-Id",
    "X-Bank-Sign-Type",
    "X-Bank-Signature",
)


def message_to_sign(bank_code: str, timestamp: str, nonce: str, body: bytes) -> bytes:
    return f"{bank_code}\n{timestamp}\n{nonce}\n".encode() + body + b"\n"


class Signer:
    """One party's signing key for the bank protocol: RSA2 (PEM private key) or SM2 (hex private key)."""

    def __init__(self, sign_type: SignType, private_key: str | bytes, key_id: str) -> None:
        self.sign_type, self.key_id = sign_type, key_id
        if sign_type == "RSA2":
            self._rsa = load_rsa_private_key(private_key)
        elif sign_type == "SM2":
            self._sm2 = private_key.decode() if isinstance(private_key, bytes) else private_key
            self._sm2_public = sm2.public_key_of(self._sm2)
        else:
            raise ValueError(f"unsupported sign type {sign_type!r}")

    def sign(self, message: bytes) -> str:
        if self.sign_type == "RSA2":
            return rsa_sha256_sign(self._rsa, message)
        return base64.b64encode(sm2.sign(self._sm2, message, public_hex=self._sm2_public)).decode("ascii")

    def headers(
        self, bank_code: str, body: bytes, *, now: datetime, nonce: str | None = None
    ) -> dict[str, str]:
        """The signed headers of a message with this ``body``."""
        timestamp = to_shanghai(now, TIME_FORMAT)
        nonce = nonce or secrets.token_hex(16)
        return {
            "Content-Type": "application/json; charset=utf-8",
            "X-Bank-Code": bank_code,
            "X-Bank-Timestamp": timestamp,
            "X-Bank-Nonce": nonce,
            "X-Bank-Key-Id": self.key_id,
            "X-Bank-Sign-Type": self.sign_type,
            "X-Bank-Signature": self.sign(message_to_sign(bank_code, timestamp, nonce, body)),
        }


class Verifier:
    """The other party's public keys by key id, all of one sign type."""

    def __init__(self, sign_type: SignType, public_keys: Mapping[str, str | bytes]) -> None:
        if sign_type not in ("RSA2", "SM2"):
            raise ValueError(f"unsupported sign type {sign_type!r}")
        if not public_keys:
            raise ValueError("at least one public key is needed")
        self.sign_type = sign_type
        if sign_type == "RSA2":
            self._keys: dict[str, Any] = {k: load_rsa_public_key(v) for k, v in public_keys.items()}
        else:
            self._keys = {
                k: sm2.normalize_public_key(v.decode() if isinstance(v, bytes) else v)
                for k, v in public_keys.items()
            }

    def verify(
        self, headers: Mapping[str, str], body: bytes, *, bank_code: str, now: datetime, window: timedelta
    ) -> tuple[str, datetime]:
        """Checks the signed headers of a message; returns ``(nonce, signed_at)``."""
        code, timestamp, nonce, key_id, sign_type, signature = (header(headers, h) for h in SIGNED_HEADERS)
        if code != bank_code:
            raise CallbackRejected("wrong_recipient", "bank code")
        if sign_type != self.sign_type:
            raise CallbackRejected("unsupported_algorithm", sign_type)
        if not _NONCE.fullmatch(nonce):
            raise CallbackRejected("malformed", "nonce")
        if not re.fullmatch(r"[0-9]{14}", timestamp):
            raise CallbackRejected("malformed", "timestamp")
        signed_at = shanghai_time(timestamp, TIME_FORMAT)
        self.check(key_id, message_to_sign(code, timestamp, nonce, body), signature)
        check_window(signed_at, now, window)
        return nonce, signed_at

    def check(self, key_id: str, message: bytes, signature: str) -> None:
        """``unknown_key`` / ``bad_signature`` / ``malformed`` unless ``signature`` (base64) by the key
        ``key_id`` verifies over ``message``."""
        key = self._keys.get(key_id)
        if key is None:
            raise CallbackRejected("unknown_key", f"key id {key_id}")
        if self.sign_type == "RSA2":
            rsa_sha256_verify(key, message, signature)
        elif not sm2.verify(key, message, b64decode_strict(signature)):
            raise CallbackRejected("bad_signature")

    def verify_xml(
        self,
        raw: bytes,
        *,
        bank_code: str,
        now: datetime,
        window: timedelta,
        max_bytes: int = bankxml.MAX_BYTES,
    ) -> tuple[dict[str, Any], str, datetime]:
        """An XML message (:mod:`.bankxml`) signed by one of these keys: head checks, the signature over the
        raw body bytes, the window; then (the message as its JSON fields, the nonce, when it was signed),
        read from the signed bytes. ``CallbackRejected`` otherwise."""
        message = bankxml.parse_message(raw, max_bytes=max_bytes)
        head = {k: message.head.get(k, "") for k in bankxml.HEAD_FIELDS}
        if head["BankCode"] != bank_code:
            raise CallbackRejected("wrong_recipient", "bank code")
        if head["SignType"] != self.sign_type:
            raise CallbackRejected("unsupported_algorithm", head["SignType"] or "none")
        if not _NONCE.fullmatch(head["Nonce"]) or not re.fullmatch(r"[0-9]{14}", head["TxTime"]):
            raise CallbackRejected("malformed", "nonce or time")
        if not message.signature:
            raise CallbackRejected("malformed", "no signature")
        signed = bankxml.message_to_sign(
            bank_code, head["TxCode"], head["TxTime"], head["Nonce"], message.body_bytes
        )
        self.check(head["KeyId"], signed, message.signature)
        signed_at = shanghai_time(head["TxTime"], TIME_FORMAT)
        check_window(signed_at, now, window)
        return bankxml.from_body(head, message.body), head["Nonce"], signed_at


def _str(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise CallbackRejected("malformed", f"missing {key}")
    return value


def _fen(data: Mapping[str, Any]) -> int:
    value = data.get("amount_fen")
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise CallbackRejected("bad_amount", "amount_fen is not a non-negative integer")
    return value


class BankDirectAdapter:
    """Configured per bank with:

    * ``bank_code`` (e.g. ``"icbc"``; the adapter's name is ``bank:<code>``), ``merchant_no`` (ours there);
    * ``sign_type``: ``"RSA2"`` or ``"SM2"``, both directions;
    * ``bank_public_keys``: ``{key_id: key}``: the bank's public keys (RSA: PEM or certificate; SM2: hex
      ``04||x||y``);
    * ``merchant_private_key`` (RSA: PEM; SM2: hex ``d``) and ``merchant_key_id``: ours, signs requests;
    * ``base_url``: the bank's gateway (only echoed in built requests); ``window`` (default 5 minutes).
    """

    def __init__(
        self,
        *,
        bank_code: str,
        merchant_no: str,
        sign_type: SignType,
        bank_public_keys: Mapping[str, str | bytes],
        merchant_private_key: str | bytes,
        merchant_key_id: str,
        base_url: str = "",
        window: timedelta = DEFAULT_WINDOW,
        message_format: Literal["JSON", "XML"] = "JSON",
    ) -> None:
        if not re.fullmatch(r"[a-z0-9]{2,20}", bank_code):
            raise ValueError("bank_code is 2-20 lowercase letters or digits")
        self.bank_code, self.merchant_no, self.window = bank_code, merchant_no, window
        self.name = f"bank:{bank_code}"
        self.sign_type: SignType = sign_type
        self.base_url = base_url.rstrip("/")
        self._verifier = Verifier(sign_type, bank_public_keys)
        self._signer = Signer(sign_type, merchant_private_key, merchant_key_id)
        if message_format not in ("JSON", "XML"):
            raise ValueError("message_format is JSON or XML")
        self.message_format = message_format

    def _check_body(self, data: Mapping[str, Any]) -> None:
        if data.get("bank_code") != self.bank_code:
            raise CallbackRejected("wrong_recipient", "bank_code in body")
        if data.get("merchant_no") != self.merchant_no:
            raise CallbackRejected("wrong_recipient", "merchant_no")

    def verify_callback(self, *, headers: Mapping[str, str], body: bytes, now: datetime) -> CallbackNotice:
        if self.message_format == "XML":
            return self._verify_xml_callback(body, now)
        nonce, signed_at = self._verifier.verify(
            headers, body, bank_code=self.bank_code, now=now, window=self.window
        )
        data = json_object(body)
        self._check_body(data)
        return self._notice(data, nonce, signed_at)

    def _verify_xml_callback(self, body: bytes, now: datetime) -> CallbackNotice:
        data, nonce, signed_at = self._verifier.verify_xml(
            body, bank_code=self.bank_code, now=now, window=self.window
        )
        data.setdefault("currency", "CNY")
        self._check_body(data)
        return self._notice(data, nonce, signed_at)

    def _answer(self, headers: Mapping[str, str], body: bytes, now: datetime) -> dict[str, Any]:
        """The bank's answer to one of our requests, verified, as its JSON fields (either format)."""
        if self.message_format == "XML":
            data = self._verifier.verify_xml(
                body,
                bank_code=self.bank_code,
                now=now,
                window=self.window,
                max_bytes=bankxml.MAX_ANSWER_BYTES,
            )[0]
        else:
            self._verifier.verify(headers, body, bank_code=self.bank_code, now=now, window=self.window)
            data = json_object(body)
        self._check_body(data)
        return data

    def _notice(self, data: dict[str, Any], nonce: str, signed_at: datetime) -> CallbackNotice:
        msg_type, state = data.get("msg_type"), _str(data, "status")
        if msg_type not in ("PAY_NOTIFY", "REFUND_NOTIFY"):
            raise CallbackRejected("malformed", f"msg_type {msg_type!r}")
        if state == "PROCESSING":
            raise CallbackRejected("not_final", state, acknowledge=True)
        status = _STATUSES.get(state)
        if status is None:
            raise CallbackRejected("malformed", f"status {state!r}")
        if msg_type == "REFUND_NOTIFY":
            if status != "succeeded":
                raise CallbackRejected("not_final", f"refund {state}", acknowledge=True)
            status = "refunded"
        if data.get("currency", "CNY") != "CNY":
            raise CallbackRejected("bad_amount", "currency")
        paid_at = None
        if status in ("succeeded", "refunded"):
            paid_at = shanghai_time(_str(data, "paid_time"), TIME_FORMAT)
        return CallbackNotice(
            provider=self.name,
            provider_txn_id=_str(data, "bank_serial_no"),
            order_no=_str(data, "order_no"),
            amount_fen=_fen(data),
            status=status,  # type: ignore[arg-type]
            paid_at=paid_at,
            nonce=nonce,
            timestamp=signed_at,
            raw=data,
            failure_reason=(str(data.get("fail_reason") or state) if status == "failed" else None),
        )

    def ack(self, ok: bool, message: str = "") -> tuple[int, str, bytes]:
        if self.message_format == "XML":
            return 200, "application/xml", bankxml.ack(self.bank_code, ok, message)
        body = (
            {"return_code": "0000", "return_msg": "成功"}
            if ok
            else {"return_code": "9999", "return_msg": message or "失败"}
        )
        return 200, "application/json", json.dumps(body, ensure_ascii=False).encode()

    def _signed(self, path: str, payload: dict[str, Any], now: datetime) -> dict[str, Any]:
        """A request to the bank signed with our key: JSON with signed headers, or an XML Message."""
        if self.message_format == "XML":
            head = {
                "TxCode": payload["msg_type"],
                "BankCode": self.bank_code,
                "TxTime": to_shanghai(now, TIME_FORMAT),
                "Nonce": secrets.token_hex(16),
                "KeyId": self._signer.key_id,
                "SignType": self.sign_type,
            }
            body = bankxml.build_message(head, bankxml.to_body(payload), self._signer.sign)
            headers = {"Content-Type": "application/xml; charset=UTF-8"}
        else:
            body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
            headers = self._signer.headers(self.bank_code, body, now=now)
        return {
            "provider": self.name,
            "method": "POST",
            "url": self.base_url + path,
            "path": path,
            "headers": headers,
            "body": body.decode(),
        }

    def build_order_request(
        self, *, order_no: str, amount_fen: int, description: str, notify_url: str, now: datetime
    ) -> dict[str, Any]:
        if not isinstance(amount_fen, int) or isinstance(amount_fen, bool) or amount_fen <= 0:
            raise ValueError("amount_fen must be a positive int")
        payload = {
            "msg_type": "PAY_REQUEST",
            "bank_code": self.bank_code,
            "merchant_no": self.merchant_no,
            "order_no": order_no,
            "amount_fen": amount_fen,
            "currency": "CNY",
            "description": description,
            "notify_url": notify_url,
            "request_time": to_shanghai(now, TIME_FORMAT),
        }
        return self._signed("/api/pay", payload, now)

    def build_query_request(self, *, order_no: str, now: datetime) -> QueryRequest:
        payload = {
            "msg_type": "QUERY_REQUEST",
            "bank_code": self.bank_code,
            "merchant_no": self.merchant_no,
            "order_no": order_no,
            "request_time": to_shanghai(now, TIME_FORMAT),
        }
        signed = self._signed("/api/query", payload, now)
        return QueryRequest("POST", "/api/query", signed["headers"], signed["body"].encode())

    def parse_query_response(
        self, *, status_code: int, headers: Mapping[str, str], body: bytes, order_no: str, now: datetime
    ) -> QueryAnswer:
        if status_code != 200:
            raise CallbackRejected("malformed", f"HTTP {status_code}")
        data = self._answer(headers, body, now)
        if data.get("msg_type") != "QUERY_RESPONSE" or data.get("order_no") != order_no:
            raise CallbackRejected("malformed", "not the answer to this query")
        if data.get("result") == "NOT_FOUND":
            return QueryAnswer(self.name, order_no, "not_found", raw=data)
        state = _str(data, "status")
        if state == "PROCESSING":
            return QueryAnswer(self.name, order_no, "pending", raw=data)
        status = _STATUSES.get(state)
        if status is None:
            raise CallbackRejected("malformed", f"status {state!r}")
        return QueryAnswer(
            provider=self.name,
            order_no=order_no,
            status=status,  # type: ignore[arg-type]
            provider_txn_id=_str(data, "bank_serial_no"),
            amount_fen=_fen(data),
            paid_at=shanghai_time(_str(data, "paid_time"), TIME_FORMAT) if status == "succeeded" else None,
            raw=data,
        )

    # ---------------------------------------------------------------------------------- refunds
    def build_refund_request(self, target: RefundTarget, *, now: datetime) -> QueryRequest:
        if target.refund_fen <= 0 or target.refund_fen > target.total_fen:
            raise ValueError("a refund is positive and at most the order's total")
        payload = {
            "msg_type": "REFUND_REQUEST",
            "bank_code": self.bank_code,
            "merchant_no": self.merchant_no,
            "order_no": target.order_no,
            "bank_serial_no": target.provider_txn_id,
            "refund_no": target.refund_no,
            "refund_amount_fen": target.refund_fen,
            "currency": "CNY",
            "reason": target.reason[:80],
            "notify_url": target.notify_url,
            "request_time": to_shanghai(now, TIME_FORMAT),
        }
        signed = self._signed("/api/refund", payload, now)
        return QueryRequest("POST", "/api/refund", signed["headers"], signed["body"].encode())

    def parse_refund_response(
        self, *, status_code: int, headers: Mapping[str, str], body: bytes, refund_no: str, now: datetime
    ) -> RefundAnswer:
        if status_code != 200:
            raise CallbackRejected("malformed", f"HTTP {status_code}")
        data = self._answer(headers, body, now)
        if data.get("msg_type") != "REFUND_RESPONSE" or data.get("refund_no") != refund_no:
            raise CallbackRejected("malformed", "not the answer to this refund")
        code, message = _str(data, "return_code"), str(data.get("return_msg") or "")
        if code == REFUND_ACCEPTED:
            serial = data.get("bank_refund_serial_no")
            return RefundAnswer(
                self.name, refund_no, "accepted", provider_refund_id=serial or None, message=message, raw=data
            )
        status = "retry" if code == REFUND_RETRY else "refused"
        return RefundAnswer(self.name, refund_no, status, code=code, message=message, raw=data)

    # ------------------------------------------------------------------------------- statements
    def build_statement_request(self, *, day: date, now: datetime) -> QueryRequest:
        """The day's statement (对账文件) in the signed answer itself: ``STATEMENT_REQUEST``."""
        payload = {
            "msg_type": "STATEMENT_REQUEST",
            "bank_code": self.bank_code,
            "merchant_no": self.merchant_no,
            "bill_date": f"{day:%Y%m%d}",
            "request_time": to_shanghai(now, TIME_FORMAT),
        }
        signed = self._signed("/api/statement", payload, now)
        return QueryRequest("POST", "/api/statement", signed["headers"], signed["body"].encode())

    def parse_statement_response(
        self, *, status_code: int, headers: Mapping[str, str], body: bytes, day: date, now: datetime
    ) -> StatementAnswer:
        """The signed answer carries the file (base64) and its SHA-256; return code 1001: not made yet."""
        if status_code != 200:
            raise CallbackRejected("malformed", f"HTTP {status_code}")
        data = self._answer(headers, body, now)
        if data.get("msg_type") != "STATEMENT_RESPONSE" or data.get("bill_date") != f"{day:%Y%m%d}":
            raise CallbackRejected("malformed", "not the answer to this statement request")
        code = _str(data, "return_code")
        if code == STATEMENT_NOT_READY:
            return StatementAnswer(self.name, day, "not_ready", code=code)
        if code != STATEMENT_READY:
            raise CallbackRejected("malformed", f"return_code {code!r}")
        content = b64decode_strict(_str(data, "file_content"), "file_content")
        return StatementAnswer(
            self.name, day, "ready", content=content, digest=("sha256", _str(data, "file_sha256"))
        )

    def statement_file(self, answer: StatementAnswer, data: bytes) -> bytes:
        return check_digest(answer, data)
