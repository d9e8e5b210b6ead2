"""WeChat Pay, API v3 (微信支付 APIv3): payment and refund notifications, the APP prepay request, the order
query.

**Notification** (``POST`` to our ``notify_url``, ``Content-Type: application/json``), headers:

* ``Wechatpay-Timestamp``: Unix seconds; ``Wechatpay-Nonce``: random string (our replay nonce);
* ``Wechatpay-Serial``: which platform key signed it: a platform certificate's serial (hex) or a
  platform public key id (``PUB_KEY_ID_...``); unknown: ``unknown_key``;
* ``Wechatpay-Signature``: base64 RSA-SHA256 (PKCS#1 v1.5) by that key over
  ``timestamp + "\\n" + nonce + "\\n" + raw body + "\\n"``;
* ``Wechatpay-Signature-Type``: ``WECHATPAY2-SHA256-RSA2048`` (absent: assumed; anything else:
  ``unsupported_algorithm``).

Body: ``{"id", "create_time", "event_type": "TRANSACTION.SUCCESS" | "REFUND.SUCCESS" | ...,
"resource_type": "encrypt-resource", "summary", "resource": {"original_type": "transaction" | "refund",
"algorithm": "AEAD_AES_256_GCM", "ciphertext": base64, "associated_data", "nonce"}}``. The resource is
AES-256-GCM encrypted with the merchant's APIv3 key (32 bytes), the resource's ``nonce`` (12 bytes) and
``associated_data`` (UTF-8); the ciphertext carries the 16-byte tag at its end. A wrong key or a tampered
resource fails the tag: ``decrypt_failed``.

Decrypted ``transaction``: ``mchid``, ``appid``, ``out_trade_no`` (our order no), ``transaction_id`` (the
dedupe key), ``trade_state`` (``SUCCESS`` -> succeeded, ``CLOSED`` / ``REVOKED`` -> closed, ``PAYERROR`` ->
failed, ``NOTPAY`` / ``USERPAYING`` -> ``not_final``), ``amount.total`` (fen, int), ``success_time``
(RFC 3339, ``+08:00``). Decrypted ``refund``: ``mchid``, ``out_trade_no``, ``transaction_id``,
``out_refund_no``, ``refund_id`` (the dedupe key of a refund notice), ``refund_status`` (``SUCCESS`` ->
refunded; ``CLOSED`` / ``ABNORMAL`` -> ``not_final``: a person looks at the refund), ``amount.refund``
(fen), ``success_time``. A ``mchid`` (or ``appid``) not ours: ``wrong_recipient``.

Checks, in order: headers present; key known; signature over the raw body; timestamp within the window;
JSON shape; decryption; recipient; fields. **Ack**: ``200 {"code":"SUCCESS","message":"成功"}``; a refusal
is ``400 {"code":"FAIL","message":<code>}`` so WeChat retries (15s, 15s, 30s, 3m, 10m, ... for 24 h).

**Requests we sign** (``Authorization: WECHATPAY2-SHA256-RSA2048 mchid="..",nonce_str="..",
signature="..",timestamp="..",serial_no=".."``, RSA-SHA256 with the merchant key over
``method\\npath\\ntimestamp\\nnonce\\nbody\\n``): the APP prepay (``POST /v3/pay/transactions/app``) and the
query (``GET /v3/pay/transactions/out-trade-no/{order_no}?mchid=..``). The query's answer is signed like
a notification (same headers) but not encrypted; ``404 {"code":"ORDER_NOT_EXIST"}`` means not found.
After the prepay, :meth:`WeChatPayAdapter.app_pay_params` signs what the app passes to the WeChat SDK
(``appid\\ntimestamp\\nnoncestr\\nprepayid\\n``).

**Refund request** (``POST /v3/refund/domestic/refunds``, signed as above): ``{"transaction_id",
"out_trade_no", "out_refund_no" (our refund no: WeChat's idempotency key), "reason", "notify_url",
"amount": {"refund", "total", "currency": "CNY"}}``. The answer is signed like a notification, success and
error alike: ``200`` with ``status`` ``SUCCESS`` / ``PROCESSING`` (accepted: the ``REFUND.SUCCESS``
notice completes it) or ``CLOSED`` / ``ABNORMAL`` (refused); an error ``{"code", "message"}``: ``429`` and
``5xx`` (``FREQUENCY_LIMITED``, ``SYSTEM_ERROR``) are retried with the same ``out_refund_no``, any other
(``NOT_ENOUGH``, ``INVALID_REQUEST``, ``RESOURCE_NOT_EXISTS`` ...) refuses the refund.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Mapping
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

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
    optional_header,
    require_aware,
    rfc3339_time,
    rsa_sha256_sign,
    rsa_sha256_verify,
    unix_seconds,
)

SIGNATURE_TYPE = "WECHATPAY2-SHA256-RSA2048"
API_BASE = "https://api.mch.weixin.qq.com"
TRADEBILL_PATH = "/v3/bill/tradebill"
_STATEMENT_NOT_READY = frozenset({"NO_STATEMENT_EXIST", "STATEMENT_CREATING"})
PREPAY_PATH = "/v3/pay/transactions/app"
REFUND_PATH = "/v3/refund/domestic/refunds"

_TRADE_STATES = {"SUCCESS": "succeeded", "CLOSED": "closed", "REVOKED": "closed", "PAYERROR": "failed"}
_PENDING_STATES = {"NOTPAY", "USERPAYING"}


def message_to_sign(timestamp: str, nonce: str, body: bytes) -> bytes:
    """What a WeChat notification's (or answer's) signature covers: the raw body bytes, unchanged."""
    return f"{timestamp}\n{nonce}\n".encode() + body + b"\n"


def aes_gcm_encrypt(apiv3_key: bytes, nonce: str, associated_data: str, plaintext: bytes) -> str:
    """The provider side of the resource encryption (the simulator uses it): base64(ciphertext || tag)."""
    sealed = AESGCM(apiv3_key).encrypt(nonce.encode(), plaintext, associated_data.encode())
    return base64.b64encode(sealed).decode("ascii")


def _int_fen(value: Any, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise CallbackRejected("bad_amount", f"{what} is not a non-negative integer of fen")
    return value


def _str(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise CallbackRejected("malformed", f"missing {key}")
    return value


def _txn_id(data: Mapping[str, Any], order_no: str, state: str) -> str:
    """``transaction_id``; an order closed before any payment has none: ``<order_no>:<state>`` then."""
    value = data.get("transaction_id")
    if isinstance(value, str) and value:
        return value
    if state == "SUCCESS" or state == "REFUND":
        raise CallbackRejected("malformed", "missing transaction_id")
    return f"{order_no}:{state}"


class WeChatPayAdapter:
    """Configured with the merchant's identity and keys and WeChat's platform keys:

    * ``mchid``, ``appid``: ours; notices for another merchant / app are refused;
    * ``apiv3_key``: the 32-byte APIv3 key (str or bytes) that decrypts notification resources;
    * ``platform_keys``: ``{serial: PEM}``: WeChat platform public keys (``PUB_KEY_ID_...``) or platform
      certificates (serial in hex) that sign notifications and answers;
    * ``merchant_private_key`` (PEM) and ``merchant_serial``: our API key pair, signs requests;
    * ``window``: the timestamp tolerance (default 5 minutes).
    """

    name = "wechat"

    def __init__(
        self,
        *,
        mchid: str,
        appid: str,
        apiv3_key: str | bytes,
        platform_keys: Mapping[str, str | bytes],
        merchant_private_key: str | bytes,
        merchant_serial: str,
        window: timedelta = DEFAULT_WINDOW,
    ) -> None:
        key = apiv3_key.encode() if isinstance(apiv3_key, str) else bytes(apiv3_key)
        if len(key) != 32:
            raise ValueError("the APIv3 key is 32 bytes")
        if not platform_keys:
            raise ValueError("at least one WeChat platform key is needed")
        self.mchid, self.appid, self.window = mchid, appid, window
        self._apiv3_key = key
        self._platform = {serial: load_rsa_public_key(pem) for serial, pem in platform_keys.items()}
        self._merchant_key = load_rsa_private_key(merchant_private_key)
        self.merchant_serial = merchant_serial

    # -------------------------------------------------------------------------------- signatures
    def _signed_object(self, headers: Mapping[str, str], body: bytes, now: datetime) -> dict[str, Any]:
        """An answer of the platform's API: its signature verified, its body a JSON object."""
        self._verify_signed(headers, body, now)
        return json_object(body)

    def _verify_signed(self, headers: Mapping[str, str], body: bytes, now: datetime) -> tuple[str, datetime]:
        timestamp = header(headers, "Wechatpay-Timestamp")
        nonce = header(headers, "Wechatpay-Nonce")
        signature = header(headers, "Wechatpay-Signature")
        serial = header(headers, "Wechatpay-Serial")
        kind = optional_header(headers, "Wechatpay-Signature-Type")
        if kind is not None and kind != SIGNATURE_TYPE:
            raise CallbackRejected("unsupported_algorithm", kind)
        signed_at = unix_seconds(timestamp)
        key = self._platform.get(serial)
        if key is None:
            raise CallbackRejected("unknown_key", f"platform serial {serial}")
        rsa_sha256_verify(key, message_to_sign(timestamp, nonce, body), signature)
        check_window(signed_at, now, self.window)
        return nonce, signed_at

    def authorization(
        self, method: str, path: str, body: str, *, now: datetime, nonce: str | None = None
    ) -> str:
        """The ``Authorization`` header of a request to WeChat, signed with the merchant key."""
        timestamp = str(int(require_aware(now).timestamp()))
        nonce = nonce or secrets.token_hex(16).upper()
        signature = rsa_sha256_sign(
            self._merchant_key, f"{method}\n{path}\n{timestamp}\n{nonce}\n{body}\n".encode()
        )
        return (
            f'{SIGNATURE_TYPE} mchid="{self.mchid}",nonce_str="{nonce}",signature="{signature}",'
            f'timestamp="{timestamp}",serial_no="{self.merchant_serial}"'
        )

    # --------------------------------------------------------------------------------- callbacks
    def verify_callback(self, *, headers: Mapping[str, str], body: bytes, now: datetime) -> CallbackNotice:
        nonce, signed_at = self._verify_signed(headers, body, now)
        try:
            envelope = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise CallbackRejected("malformed", "body is not JSON") from None
        if not isinstance(envelope, dict) or envelope.get("resource_type") != "encrypt-resource":
            raise CallbackRejected("malformed", "not an encrypt-resource notification")
        resource = envelope.get("resource")
        if not isinstance(resource, dict):
            raise CallbackRejected("malformed", "no resource")
        if resource.get("algorithm") != "AEAD_AES_256_GCM":
            raise CallbackRejected("unsupported_algorithm", str(resource.get("algorithm")))
        data = self.decrypt_resource(resource)
        original_type = resource.get("original_type", "transaction")
        if original_type == "refund":
            return self._refund_notice(data, nonce, signed_at)
        if original_type != "transaction":
            raise CallbackRejected("malformed", f"original_type {original_type!r}")
        return self._transaction_notice(data, nonce, signed_at)

    def decrypt_resource(self, resource: Mapping[str, Any]) -> dict[str, Any]:
        nonce, associated = resource.get("nonce"), resource.get("associated_data") or ""
        ciphertext = resource.get("ciphertext")
        if not isinstance(nonce, str) or not isinstance(ciphertext, str) or not isinstance(associated, str):
            raise CallbackRejected("malformed", "resource fields")
        sealed = b64decode_strict(ciphertext, "ciphertext")
        try:
            plain = AESGCM(self._apiv3_key).decrypt(nonce.encode(), sealed, associated.encode())
        except (InvalidTag, ValueError):
            raise CallbackRejected("decrypt_failed") from None
        return json_object(plain, "resource")

    def _check_recipient(self, data: Mapping[str, Any]) -> None:
        if data.get("mchid") != self.mchid:
            raise CallbackRejected("wrong_recipient", "mchid")
        if "appid" in data and data["appid"] != self.appid:
            raise CallbackRejected("wrong_recipient", "appid")

    def _transaction_notice(self, data: dict[str, Any], nonce: str, signed_at: datetime) -> CallbackNotice:
        self._check_recipient(data)
        state = _str(data, "trade_state")
        if state in _PENDING_STATES:
            raise CallbackRejected("not_final", state, acknowledge=True)
        status = _TRADE_STATES.get(state)
        if status is None:
            raise CallbackRejected("malformed", f"trade_state {state!r}")
        amount = data.get("amount")
        if not isinstance(amount, dict):
            raise CallbackRejected("malformed", "amount")
        paid_at = rfc3339_time(_str(data, "success_time")) if status == "succeeded" else None
        order_no = _str(data, "out_trade_no")
        return CallbackNotice(
            provider=self.name,
            provider_txn_id=_txn_id(data, order_no, state),
            order_no=order_no,
            amount_fen=_int_fen(amount.get("total"), "amount.total"),
            status=status,  # type: ignore[arg-type]
            paid_at=paid_at,
            nonce=nonce,
            timestamp=signed_at,
            raw=data,
            failure_reason=(str(data.get("trade_state_desc") or state) if status == "failed" else None),
        )

    def _refund_notice(self, data: dict[str, Any], nonce: str, signed_at: datetime) -> CallbackNotice:
        self._check_recipient(data)
        state = _str(data, "refund_status")
        if state != "SUCCESS":
            raise CallbackRejected("not_final", f"refund {state}", acknowledge=True)
        amount = data.get("amount")
        if not isinstance(amount, dict):
            raise CallbackRejected("malformed", "amount")
        return CallbackNotice(
            provider=self.name,
            provider_txn_id=_str(data, "refund_id"),
            order_no=_str(data, "out_trade_no"),
            amount_fen=_int_fen(amount.get("refund"), "amount.refund"),
            status="refunded",
            paid_at=rfc3339_time(_str(data, "success_time")),
            nonce=nonce,
            timestamp=signed_at,
            raw=data,
        )

    def ack(self, ok: bool, message: str = "") -> tuple[int, str, bytes]:
        if ok:
            body = {"code": "SUCCESS", "message": "成功"}
        else:
            body = {"code": "FAIL", "message": message or "失败"}
        return (200 if ok else 400), "application/json", json.dumps(body, ensure_ascii=False).encode()

    # --------------------------------------------------------------------------------- requests
    def build_order_request(
        self, *, order_no: str, amount_fen: int, description: str, notify_url: str, now: datetime
    ) -> dict[str, Any]:
        """The signed APP prepay request (send it to WeChat, then give the app
        :meth:`app_pay_params` of the returned ``prepay_id``)."""
        if not isinstance(amount_fen, int) or isinstance(amount_fen, bool) or amount_fen <= 0:
            raise ValueError("amount_fen must be a positive int")
        body = json.dumps(
            {
                "appid": self.appid,
                "mchid": self.mchid,
                "description": description,
                "out_trade_no": order_no,
                "notify_url": notify_url,
                "amount": {"total": amount_fen, "currency": "CNY"},
            },
            ensure_ascii=False,
            separators=(",", ":"),
        )
        return {
            "provider": self.name,
            "method": "POST",
            "url": API_BASE + PREPAY_PATH,
            "path": PREPAY_PATH,
            "headers": {
                "Authorization": self.authorization("POST", PREPAY_PATH, body, now=now),
                "Content-Type": "application/json",
                "Accept": "application/json",
            },
            "body": body,
        }

    def app_pay_params(self, prepay_id: str, *, now: datetime, nonce: str | None = None) -> dict[str, str]:
        """What the app hands to the WeChat SDK after the prepay (signed with the merchant key)."""
        timestamp = str(int(require_aware(now).timestamp()))
        nonce = nonce or secrets.token_hex(16).upper()
        sign = rsa_sha256_sign(
            self._merchant_key, f"{self.appid}\n{timestamp}\n{nonce}\n{prepay_id}\n".encode()
        )
        return {
            "appid": self.appid,
            "partnerid": self.mchid,
            "prepayid": prepay_id,
            "package": "Sign=WXPay",
            "noncestr": nonce,
            "timestamp": timestamp,
            "sign": sign,
        }

    def build_query_request(self, *, order_no: str, now: datetime) -> QueryRequest:
        path = f"/v3/pay/transactions/out-trade-no/{order_no}?mchid={self.mchid}"
        return QueryRequest(
            "GET",
            path,
            {"Authorization": self.authorization("GET", path, "", now=now), "Accept": "application/json"},
        )

    def parse_query_response(
        self, *, status_code: int, headers: Mapping[str, str], body: bytes, order_no: str, now: datetime
    ) -> QueryAnswer:
        data = self._signed_object(headers, body, now)
        if status_code == 404 and data.get("code") == "ORDER_NOT_EXIST":
            return QueryAnswer(self.name, order_no, "not_found", raw=data)
        if status_code != 200:
            raise CallbackRejected("malformed", f"HTTP {status_code} {data.get('code')}")
        self._check_recipient(data)
        if data.get("out_trade_no") != order_no:
            raise CallbackRejected("malformed", "answer about another order")
        state = _str(data, "trade_state")
        if state in _PENDING_STATES:
            return QueryAnswer(self.name, order_no, "pending", raw=data)
        status = "succeeded" if state == "REFUND" else _TRADE_STATES.get(state)
        if status is None:
            raise CallbackRejected("malformed", f"trade_state {state!r}")
        amount = data.get("amount")
        if not isinstance(amount, dict):
            raise CallbackRejected("malformed", "amount")
        return QueryAnswer(
            provider=self.name,
            order_no=order_no,
            status=status,  # type: ignore[arg-type]
            provider_txn_id=_txn_id(data, order_no, state),
            amount_fen=_int_fen(amount.get("total"), "amount.total"),
            paid_at=rfc3339_time(_str(data, "success_time")) if status == "succeeded" else None,
            raw=data,
        )

    # ---------------------------------------------------------------------------------- refunds
    def build_refund_request(self, target: RefundTarget, *, now: datetime) -> QueryRequest:
        if target.refund_fen <= 0 or target.refund_fen > target.total_fen:
            raise ValueError("a refund is positive and at most the order's total")
        body = json.dumps(
            {
                "transaction_id": target.provider_txn_id,
                "out_trade_no": target.order_no,
                "out_refund_no": target.refund_no,
                "reason": target.reason[:80],
                "notify_url": target.notify_url,
                "amount": {"refund": target.refund_fen, "total": target.total_fen, "currency": "CNY"},
            },
            ensure_ascii=False,
            separators=(",", ":"),
        )
        headers = {
            "Authorization": self.authorization("POST", REFUND_PATH, body, now=now),
            "Content-Type": "application/json",
            "Accept": "application/json",
        }
        return QueryRequest("POST", REFUND_PATH, headers, body.encode())

    def parse_refund_response(
        self, *, status_code: int, headers: Mapping[str, str], body: bytes, refund_no: str, now: datetime
    ) -> RefundAnswer:
        data = self._signed_object(headers, body, now)
        if status_code == 429 or status_code >= 500:
            return RefundAnswer(self.name, refund_no, "retry", code=str(data.get("code")), raw=data)
        if status_code != 200:
            code, message = str(data.get("code") or status_code), str(data.get("message") or "")
            return RefundAnswer(self.name, refund_no, "refused", code=code, message=message, raw=data)
        if data.get("out_refund_no") != refund_no:
            raise CallbackRejected("malformed", "answer about another refund")
        state = _str(data, "status")
        if state in ("SUCCESS", "PROCESSING"):
            return RefundAnswer(
                self.name, refund_no, "accepted", provider_refund_id=data.get("refund_id"), raw=data
            )
        if state in ("CLOSED", "ABNORMAL"):
            return RefundAnswer(self.name, refund_no, "refused", code=state, raw=data)
        raise CallbackRejected("malformed", f"refund status {state!r}")

    # ------------------------------------------------------------------------------- statements
    def build_statement_request(self, *, day: date, now: datetime) -> QueryRequest:
        """申请交易账单: ``GET /v3/bill/tradebill`` for the day, every transaction type."""
        path = f"{TRADEBILL_PATH}?bill_date={day.isoformat()}&bill_type=ALL"
        return QueryRequest(
            "GET",
            path,
            {"Authorization": self.authorization("GET", path, "", now=now), "Accept": "application/json"},
        )

    def parse_statement_response(
        self, *, status_code: int, headers: Mapping[str, str], body: bytes, day: date, now: datetime
    ) -> StatementAnswer:
        """The signed answer: the download address and the file's SHA1; ``NO_STATEMENT_EXIST`` /
        ``STATEMENT_CREATING`` (not made yet, or no transaction that day) is not ready."""
        data = self._signed_object(headers, body, now)
        if status_code != 200:
            code = str(data.get("code") or status_code)
            if code in _STATEMENT_NOT_READY:
                return StatementAnswer(self.name, day, "not_ready", code=code)
            raise CallbackRejected("malformed", f"HTTP {status_code} {code}")
        url = _str(data, "download_url")
        parts = urlsplit(url)  # signed by WeChat Pay, like the rest of the answer
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        download = QueryRequest("GET", url, {"Authorization": self.authorization("GET", path, "", now=now)})
        return StatementAnswer(
            self.name,
            day,
            "ready",
            download=download,
            digest=(_str(data, "hash_type"), _str(data, "hash_value")),
        )

    def statement_file(self, answer: StatementAnswer, data: bytes) -> bytes:
        return check_digest(answer, data)
