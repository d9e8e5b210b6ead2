"""Alipay (支付宝) open platform: the asynchronous notification (异步通知), the APP pay order string, the
order query (``alipay.trade.query``). RSA2 only.

**Notification**: ``POST`` to our ``notify_url``, ``Content-Type: application/x-www-form-urlencoded;
charset=utf-8``, form parameters (percent-encoded in ``charset``: ``utf-8``, or ``gbk``/``gb2312``), each
key at most once (a repeated key: ``malformed``):

* ``notify_time`` (Beijing time ``YYYY-MM-DD HH:MM:SS``: the signed timestamp, checked against the
  window), ``notify_type`` (``trade_status_sync``), ``notify_id`` (our replay nonce), ``app_id`` (ours,
  else ``wrong_recipient``), ``charset``, ``version``, ``sign_type`` (``RSA2``; ``RSA`` = SHA1 is refused
  as ``unsupported_algorithm``), ``sign``;
* ``out_trade_no`` (our order no), ``trade_no`` (Alipay's: the dedupe key), ``trade_status``
  (``TRADE_SUCCESS`` / ``TRADE_FINISHED`` -> succeeded, ``TRADE_CLOSED`` -> closed, ``WAIT_BUYER_PAY`` ->
  ``not_final``), ``total_amount`` (yuan string, exactly two decimals at most: ``"12.34"`` -> 1234 fen),
  ``gmt_payment`` (Beijing time: ``paid_at``), optional ``seller_id`` (checked when configured),
  ``buyer_id``, ``receipt_amount``, ``subject``, ...;
* a refund notice carries ``refund_fee`` (yuan), ``gmt_refund`` (Beijing time, may have milliseconds) and
  ``out_biz_no`` (the refund request no): status ``refunded``, amount ``refund_fee``, dedupe key
  ``<trade_no>:refund:<out_biz_no>`` (the trade's own ``trade_no`` stays the payment's key).

**Signature**: all parameters except ``sign`` and ``sign_type`` (blank values included, as Alipay's own
``getSignCheckContentV1``), percent-*decoded*, sorted by key, joined as ``k=v`` with ``&``, encoded in
``charset``; ``sign`` is base64 RSA-SHA256 (PKCS#1 v1.5) by Alipay's key ("支付宝公钥", not the app's).

Checks, in order: form shape; ``sign_type``; signature; ``app_id`` / ``seller_id``; ``notify_time``
within the window; fields and amounts. **Ack**: the plain text ``success`` (anything else, we send
``failure``, makes Alipay retry: 4m, 10m, 10m, 1h, 2h, 6h, 15h).

**Requests we sign** with the app's private key: the same sorted ``k=v`` content, but parameters with
blank values are left out (Alipay's ``getSignContent``). The APP pay order string
(``alipay.trade.app.pay``, ``product_code=QUICK_MSECURITY_PAY``) is the URL-encoded signed parameters; the
query is a form ``POST`` to ``/gateway.do``. The query's JSON answer is
``{"alipay_trade_query_response": {...}, "sign": "..."}``; the signature covers the response object's
*exact bytes as received* (not re-serialised). ``code`` ``10000`` = found; ``40004`` with ``sub_code``
``ACQ.TRADE_NOT_EXIST`` = not found. ``TRADE_CLOSED`` with a ``send_pay_date`` was paid and then fully
refunded: ``succeeded`` (the refund is its own notice).

**Refund request** (``alipay.trade.refund``, a form ``POST`` to ``/gateway.do`` signed as the query):
``biz_content`` ``{"trade_no", "out_trade_no", "refund_amount" (yuan), "out_request_no" (our refund no:
Alipay's idempotency key for a partial refund), "refund_reason"}``. The answer
``{"alipay_trade_refund_response": {...}, "sign"}`` is verified over the node's bytes as received:
``code`` ``10000`` = accepted (Alipay then notifies the trade's ``notify_url`` with ``refund_fee`` and
``out_biz_no``); ``20000`` / ``ACQ.SYSTEM_ERROR`` = retry; any other ``sub_code``
(``ACQ.TRADE_STATUS_ERROR``, ``ACQ.SELLER_BALANCE_NOT_ENOUGH``, ``ACQ.REFUND_AMT_NOT_EQUAL_TOTAL`` ...) =
refused.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Mapping
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

from payment.adapters.providers.base import (
    DEFAULT_WINDOW,
    CallbackNotice,
    CallbackRejected,
    QueryAnswer,
    QueryRequest,
    RefundAnswer,
    RefundTarget,
    StatementAnswer,
    check_window,
    fen_to_yuan,
    load_rsa_private_key,
    load_rsa_public_key,
    rsa_sha256_sign,
    rsa_sha256_verify,
    shanghai_time,
    to_shanghai,
    yuan_to_fen,
)

GATEWAY = "https://openapi.alipay.com/gateway.do"
QUERY_METHOD = "alipay.trade.query"
QUERY_NODE = "alipay_trade_query_response"
REFUND_METHOD = "alipay.trade.refund"
REFUND_NODE = "alipay_trade_refund_response"
BILL_METHOD = "alipay.data.dataservice.bill.downloadurl.query"
BILL_NODE = "alipay_data_dataservice_bill_downloadurl_query_response"
BILL_NOT_READY = frozenset({"isp.bill_not_exist", "isp.bill_not_ready"})
MAX_STATEMENT_BYTES = 64 * 1024 * 1024  # a day's detail file unpacked; a larger member is refused
#: Answers that say "try again" (the same ``out_request_no`` is Alipay's idempotency key for a refund).
_RETRY_CODES = {"20000", "20001"}
_RETRY_SUB_CODES = {"ACQ.SYSTEM_ERROR", "ACQ.REFUND_FEE_ERROR_RETRY", "aop.ACQ.SYSTEM_ERROR"}

_CHARSETS = {"utf-8": "utf-8", "utf8": "utf-8", "gbk": "gbk", "gb2312": "gbk", "": "utf-8"}
_PAID = {"TRADE_SUCCESS", "TRADE_FINISHED"}


def sign_content(params: Mapping[str, str], *, for_request: bool = False) -> str:
    """The string an Alipay signature covers (see the module docstring): a notification's covers every
    parameter but ``sign`` and ``sign_type``; a request's every non-blank parameter but ``sign``."""
    if for_request:
        items = [(k, v) for k, v in params.items() if k != "sign" and v != ""]
    else:
        items = [(k, v) for k, v in params.items() if k not in ("sign", "sign_type")]
    return "&".join(f"{k}={v}" for k, v in sorted(items))


def parse_form(body: bytes) -> dict[str, str]:
    """A ``x-www-form-urlencoded`` body in its declared ``charset``; repeated keys refused."""
    try:
        text = body.decode("ascii")
    except UnicodeDecodeError:
        raise CallbackRejected("malformed", "form body is not percent-encoded") from None
    probe = dict(parse_qsl(text, keep_blank_values=True, encoding="latin-1"))
    charset = _CHARSETS.get(probe.get("charset", "").lower())
    if charset is None:
        raise CallbackRejected("malformed", "unsupported charset")
    try:
        pairs = parse_qsl(
            text, keep_blank_values=True, strict_parsing=True, encoding=charset, errors="strict"
        )
    except (ValueError, UnicodeDecodeError):
        raise CallbackRejected("malformed", "not a form body") from None
    params: dict[str, str] = {}
    for key, value in pairs:
        if key in params:
            raise CallbackRejected("malformed", f"repeated parameter {key}")
        params[key] = value
    return params


def _required(params: Mapping[str, Any], key: str) -> str:
    value = params.get(key)
    if not isinstance(value, str) or value == "":
        raise CallbackRejected("malformed", f"missing {key}")
    return value


def _alipay_time(value: str) -> datetime:
    """Beijing time, with or without milliseconds (``gmt_refund`` has them)."""
    return shanghai_time(value, "%Y-%m-%d %H:%M:%S.%f" if "." in value else "%Y-%m-%d %H:%M:%S")


class AlipayAdapter:
    """Configured with:

    * ``app_id``: our application; notices for another app are refused (``wrong_recipient``);
    * ``alipay_public_key``: Alipay's RSA2 public key (PEM, or the bare base64 the console shows);
    * ``app_private_key``: our application's private key (PEM, PKCS#8 or PKCS#1) that signs requests;
    * ``seller_id``: our Alipay merchant id (``2088...``), checked when given;
    * ``window``: tolerance on ``notify_time`` (default 5 minutes).
    """

    name = "alipay"

    def __init__(
        self,
        *,
        app_id: str,
        alipay_public_key: str | bytes,
        app_private_key: str | bytes,
        seller_id: str | None = None,
        window: timedelta = DEFAULT_WINDOW,
    ) -> None:
        self.app_id, self.seller_id, self.window = app_id, seller_id, window
        self._alipay_key = load_rsa_public_key(alipay_public_key)
        self._app_key = load_rsa_private_key(app_private_key)

    # --------------------------------------------------------------------------------- callbacks
    def verify_callback(self, *, headers: Mapping[str, str], body: bytes, now: datetime) -> CallbackNotice:
        params = parse_form(body)
        sign_type = _required(params, "sign_type")
        if sign_type != "RSA2":
            raise CallbackRejected("unsupported_algorithm", sign_type)
        charset = _CHARSETS[params.get("charset", "").lower()]
        rsa_sha256_verify(self._alipay_key, sign_content(params).encode(charset), _required(params, "sign"))
        if params.get("app_id") != self.app_id:
            raise CallbackRejected("wrong_recipient", "app_id")
        if self.seller_id is not None and params.get("seller_id", self.seller_id) != self.seller_id:
            raise CallbackRejected("wrong_recipient", "seller_id")
        notified_at = shanghai_time(_required(params, "notify_time"))
        check_window(notified_at, now, self.window)
        nonce = _required(params, "notify_id")
        order_no, trade_no = _required(params, "out_trade_no"), _required(params, "trade_no")
        status = _required(params, "trade_status")
        raw: dict[str, Any] = {k: v for k, v in params.items() if k != "sign"}
        if params.get("refund_fee"):
            return CallbackNotice(
                provider=self.name,
                provider_txn_id=f"{trade_no}:refund:{_required(params, 'out_biz_no')}",
                order_no=order_no,
                amount_fen=yuan_to_fen(params["refund_fee"]),
                status="refunded",
                paid_at=_alipay_time(_required(params, "gmt_refund")),
                nonce=nonce,
                timestamp=notified_at,
                raw=raw,
            )
        if status == "WAIT_BUYER_PAY":
            raise CallbackRejected("not_final", status, acknowledge=True)
        if status in _PAID:
            notice_status, paid_at = "succeeded", _alipay_time(_required(params, "gmt_payment"))
        elif status == "TRADE_CLOSED":
            notice_status, paid_at = "closed", None
        else:
            raise CallbackRejected("malformed", f"trade_status {status!r}")
        return CallbackNotice(
            provider=self.name,
            provider_txn_id=trade_no,
            order_no=order_no,
            amount_fen=yuan_to_fen(_required(params, "total_amount")),
            status=notice_status,  # type: ignore[arg-type]
            paid_at=paid_at,
            nonce=nonce,
            timestamp=notified_at,
            raw=raw,
        )

    def ack(self, ok: bool, message: str = "") -> tuple[int, str, bytes]:
        return 200, "text/plain", b"success" if ok else b"failure"

    # --------------------------------------------------------------------------------- requests
    def sign_params(self, params: Mapping[str, str]) -> dict[str, str]:
        """``params`` plus ``sign`` (RSA2 with the app key over the request sign content)."""
        signed = dict(params)
        signed["sign"] = rsa_sha256_sign(self._app_key, sign_content(signed, for_request=True).encode())
        return signed

    def _common(self, method: str, now: datetime) -> dict[str, str]:
        return {
            "app_id": self.app_id,
            "method": method,
            "format": "JSON",
            "charset": "utf-8",
            "sign_type": "RSA2",
            "timestamp": to_shanghai(now),
            "version": "1.0",
        }

    def build_order_request(
        self, *, order_no: str, amount_fen: int, description: str, notify_url: str, now: datetime
    ) -> dict[str, Any]:
        """The APP pay order string the app hands to the Alipay SDK (``alipay.trade.app.pay``)."""
        if not isinstance(amount_fen, int) or isinstance(amount_fen, bool) or amount_fen <= 0:
            raise ValueError("amount_fen must be a positive int")
        biz = {
            "out_trade_no": order_no,
            "total_amount": fen_to_yuan(amount_fen),
            "subject": description,
            "product_code": "QUICK_MSECURITY_PAY",
        }
        params = self._common("alipay.trade.app.pay", now) | {
            "notify_url": notify_url,
            "biz_content": json.dumps(biz, ensure_ascii=False, separators=(",", ":")),
        }
        signed = self.sign_params(params)
        return {
            "provider": self.name,
            "order_string": urlencode(sorted(signed.items()), quote_via=quote),
            "params": signed,
        }

    def build_query_request(self, *, order_no: str, now: datetime) -> QueryRequest:
        params = self._common(QUERY_METHOD, now) | {
            "biz_content": json.dumps({"out_trade_no": order_no}, separators=(",", ":"))
        }
        body = urlencode(sorted(self.sign_params(params).items()), quote_via=quote).encode("ascii")
        return QueryRequest(
            "POST", "/gateway.do", {"Content-Type": "application/x-www-form-urlencoded;charset=utf-8"}, body
        )

    def parse_query_response(
        self, *, status_code: int, headers: Mapping[str, str], body: bytes, order_no: str, now: datetime
    ) -> QueryAnswer:
        if status_code != 200:
            raise CallbackRejected("malformed", f"HTTP {status_code}")
        node, signed_text, sign = response_node(body, QUERY_NODE)
        rsa_sha256_verify(self._alipay_key, signed_text.encode(), sign)
        if node.get("code") == "40004" and node.get("sub_code") == "ACQ.TRADE_NOT_EXIST":
            return QueryAnswer(self.name, order_no, "not_found", raw=node)
        if node.get("code") != "10000":
            raise CallbackRejected("malformed", f"code {node.get('code')} {node.get('sub_code')}")
        if node.get("out_trade_no") != order_no:
            raise CallbackRejected("malformed", "answer about another order")
        status = _required(node, "trade_status")
        if status == "WAIT_BUYER_PAY":
            return QueryAnswer(self.name, order_no, "pending", raw=node)
        paid = status in _PAID or (status == "TRADE_CLOSED" and bool(node.get("send_pay_date")))
        if not paid and status != "TRADE_CLOSED":
            raise CallbackRejected("malformed", f"trade_status {status!r}")
        return QueryAnswer(
            provider=self.name,
            order_no=order_no,
            status="succeeded" if paid else "closed",
            provider_txn_id=_required(node, "trade_no"),
            amount_fen=yuan_to_fen(_required(node, "total_amount")),
            paid_at=_alipay_time(_required(node, "send_pay_date")) if paid else None,
            raw=node,
        )

    # ---------------------------------------------------------------------------------- refunds
    def build_refund_request(self, target: RefundTarget, *, now: datetime) -> QueryRequest:
        if target.refund_fen <= 0 or target.refund_fen > target.total_fen:
            raise ValueError("a refund is positive and at most the order's total")
        biz = {
            "trade_no": target.provider_txn_id,
            "out_trade_no": target.order_no,
            "refund_amount": fen_to_yuan(target.refund_fen),
            "out_request_no": target.refund_no,
            "refund_reason": target.reason[:80],
        }
        params = self._common(REFUND_METHOD, now) | {
            "biz_content": json.dumps(biz, ensure_ascii=False, separators=(",", ":"))
        }
        body = urlencode(sorted(self.sign_params(params).items()), quote_via=quote).encode("ascii")
        return QueryRequest(
            "POST", "/gateway.do", {"Content-Type": "application/x-www-form-urlencoded;charset=utf-8"}, body
        )

    def parse_refund_response(
        self, *, status_code: int, headers: Mapping[str, str], body: bytes, refund_no: str, now: datetime
    ) -> RefundAnswer:
        if status_code != 200:
            raise CallbackRejected("malformed", f"HTTP {status_code}")
        node, signed_text, sign = response_node(body, REFUND_NODE)
        rsa_sha256_verify(self._alipay_key, signed_text.encode(), sign)
        code, sub_code = str(node.get("code") or ""), str(node.get("sub_code") or "")
        if code == "10000":
            trade_no = _required(node, "trade_no")
            return RefundAnswer(
                self.name,
                refund_no,
                "accepted",
                provider_refund_id=f"{trade_no}:refund:{refund_no}",
                raw=node,
            )
        message = str(node.get("sub_msg") or node.get("msg") or "")
        if code in _RETRY_CODES or sub_code in _RETRY_SUB_CODES:
            return RefundAnswer(
                self.name, refund_no, "retry", code=sub_code or code, message=message, raw=node
            )
        if not code:
            raise CallbackRejected("malformed", "answer without code")
        return RefundAnswer(self.name, refund_no, "refused", code=sub_code or code, message=message, raw=node)

    # ------------------------------------------------------------------------------- statements
    def build_statement_request(self, *, day: date, now: datetime) -> QueryRequest:
        """查询对账单下载地址: the day's ``trade`` bill (业务明细)."""
        biz = {"bill_type": "trade", "bill_date": day.isoformat()}
        params = self._common(BILL_METHOD, now) | {"biz_content": json.dumps(biz, separators=(",", ":"))}
        body = urlencode(sorted(self.sign_params(params).items()), quote_via=quote).encode("ascii")
        return QueryRequest(
            "POST", "/gateway.do", {"Content-Type": "application/x-www-form-urlencoded;charset=utf-8"}, body
        )

    def parse_statement_response(
        self, *, status_code: int, headers: Mapping[str, str], body: bytes, day: date, now: datetime
    ) -> StatementAnswer:
        """The signed answer: a one-time download address (a zip); ``isp.bill_not_exist`` is not ready."""
        if status_code != 200:
            raise CallbackRejected("malformed", f"HTTP {status_code}")
        node, signed_text, sign = response_node(body, BILL_NODE)
        rsa_sha256_verify(self._alipay_key, signed_text.encode(), sign)
        if node.get("code") != "10000":
            sub_code = str(node.get("sub_code") or node.get("code"))
            if sub_code in BILL_NOT_READY:
                return StatementAnswer(self.name, day, "not_ready", code=sub_code)
            raise CallbackRejected("malformed", f"code {node.get('code')} {sub_code}")
        download = QueryRequest("GET", _required(node, "bill_download_url"), {})
        return StatementAnswer(self.name, day, "ready", download=download)

    def statement_file(self, answer: StatementAnswer, data: bytes) -> bytes:
        """Alipay's download is a zip of the day's detail (业务明细) and its summary (汇总), GBK: the detail
        CSV. A plain CSV is taken as it is."""
        if not data.startswith(b"PK"):
            return data
        try:
            archive = zipfile.ZipFile(io.BytesIO(data))
            for info in archive.infolist():
                name = info.filename  # flagged UTF-8; else GBK bytes that zipfile read as cp437
                if not info.flag_bits & 0x800:
                    name = name.encode("cp437").decode("gb18030", errors="replace")
                if name.endswith("业务明细.csv") and "汇总" not in name:
                    if info.file_size > MAX_STATEMENT_BYTES:
                        raise CallbackRejected("malformed", "the statement file is too large")
                    return archive.read(info)
        except (zipfile.BadZipFile, OSError) as exc:
            raise CallbackRejected(
                "malformed", f"the statement zip cannot be read ({type(exc).__name__})"
            ) from None
        raise CallbackRejected("malformed", "the statement zip has no 业务明细 file")


def response_node(body: bytes, node_name: str) -> tuple[dict[str, Any], str, str]:
    """``(node, its exact text as received, sign)`` from an Alipay gateway answer. The signature covers the
    node's raw text, so it is cut out of the body (``raw_decode`` finds where it ends), never re-dumped."""
    try:
        text = body.decode("utf-8")
        envelope = json.loads(text)
    except (ValueError, UnicodeDecodeError):
        raise CallbackRejected("malformed", "answer is not JSON") from None
    if not isinstance(envelope, dict) or not isinstance(envelope.get(node_name), dict):
        raise CallbackRejected("malformed", f"no {node_name}")
    sign = envelope.get("sign")
    if not isinstance(sign, str) or not sign:
        raise CallbackRejected("bad_signature", "unsigned answer")
    marker = f'"{node_name}"'
    try:
        start = text.index(":", text.index(marker) + len(marker)) + 1
        while text[start] in " \t\r\n":
            start += 1
        node, end = json.JSONDecoder().raw_decode(text, start)
    except (ValueError, IndexError):
        raise CallbackRejected("malformed", f"{node_name} not found in place") from None
    if node != envelope[node_name]:
        raise CallbackRejected("malformed", f"{node_name} not found in place")
    return node, text[start:end], sign
