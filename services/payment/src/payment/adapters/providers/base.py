"""The contract between the payment service and its channel adapters, and the checks every adapter shares.

An adapter turns one provider's published wire format into a :class:`CallbackNotice` (the provider's
*verified* word on one of our orders), answers the provider in the format it expects, builds the signed
request that starts a payment, and builds / verifies the provider's answer to "what happened to this
order?" (the pending-too-long path). Adapters are pure: no I/O, no clock (``now`` is always passed in), no
framework; the caller does the HTTP.

Rules every adapter follows (decisions, documented here once):

* **Signature over the raw body.** The signature is checked on the exact bytes received, before anything
  is parsed; a body is never re-serialised for verification. A signature that does not verify, an unknown
  key id / certificate serial, or an unsupported algorithm refuses the callback (:class:`CallbackRejected`).
* **Timestamp window.** The signed timestamp must lie within ``window`` (default
  :data:`DEFAULT_WINDOW`, 5 minutes) of ``now``, in *both* directions (a timestamp from the future is as
  suspect as an old one): ``stale_timestamp``.
* **Replay.** A callback whose nonce was already processed is a replay. Adapters cannot know that (they
  keep no state): :func:`check_replay` does it against a :class:`NonceStore` (the service's Redis one;
  :class:`InMemoryNonceStore` for unit tests). A nonce only has to be remembered for the window: a copy
  older than the window is refused as stale before the store is asked. Expected behaviour of a store:
  ``seen(provider, nonce)`` is True iff ``remember(provider, nonce)`` was called for that pair within the
  last ``window``; ``remember`` is called **after** the notice's effects are committed (a failed write
  then does not swallow the provider's retry). Concurrent copies may all pass ``seen``; applying a notice
  exactly once is the service's job (dedupe by ``provider_txn_id`` under the order lock).
* **Money** is integer fen. Yuan strings (Alipay) are parsed exactly with ``Decimal``: more than two
  decimals, signs, exponents, blanks are refused (:func:`yuan_to_fen`); floats are never used.
* **Instants** are aware UTC datetimes. Provider-local times (Alipay, banks) are Asia/Shanghai and
  converted here; naive ``now`` values are refused (``ValueError``, a programming error).
* **Refusal codes** (``CallbackRejected.code``) are stable snake_case strings used in metrics and logs:
  ``bad_signature``, ``stale_timestamp``, ``malformed``, ``unknown_key``, ``unsupported_algorithm``,
  ``decrypt_failed``, ``wrong_recipient`` (addressed to another merchant / app / bank), ``bad_amount``,
  ``replayed``, ``not_final`` (a well-signed notice about a state we do not act on, e.g. Alipay's
  ``WAIT_BUYER_PAY``: ``acknowledge`` is True, the provider should be told "received" so it stops
  retrying, and nothing is applied).
* **Refund requests** name the provider's transaction id and our refund number (``out_refund_no``), the
  provider's idempotency key: sending the same request again never refunds twice, so the caller may retry
  it on timeouts and provider errors. Their answers are verified like callbacks (:class:`RefundAnswer`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Literal, Protocol, runtime_checkable
from zoneinfo import ZoneInfo

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509 import load_pem_x509_certificate

#: Default tolerance between a callback's signed timestamp and our clock (both directions).
DEFAULT_WINDOW = timedelta(minutes=5)
#: Providers' local time zone (Alipay's and banks' timestamps are Beijing time).
SHANGHAI = ZoneInfo("Asia/Shanghai")

NoticeStatus = Literal["succeeded", "failed", "closed", "refunded"]
#: A query answer: a payment later refunded is still ``succeeded`` here (refunds have their own notices).
QueryStatus = Literal["succeeded", "failed", "closed", "pending", "not_found"]


# --------------------------------------------------------------------------------------------- errors
class CallbackRejected(Exception):
    """A callback (or a query answer) that must not be applied. ``code`` is stable snake_case (see the
    module docstring); ``acknowledge`` is True when the provider should nevertheless be told "received"
    (``not_final``). The message never contains the body or any secret."""

    def __init__(self, code: str, detail: str = "", *, acknowledge: bool = False) -> None:
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code
        self.detail = detail
        self.acknowledge = acknowledge


# -------------------------------------------------------------------------------------- value objects
@dataclass(frozen=True)
class CallbackNotice:
    """What a verified callback says about one of our orders."""

    provider: str  # "wechat" | "alipay" | "bank:<bank code>" | "counter" | "withholding:<bank code>"
    provider_txn_id: str  # the provider's transaction id: the dedupe key
    order_no: str  # our order number (out_trade_no)
    amount_fen: int  # paid amount (for "refunded": the refunded amount)
    status: NoticeStatus
    paid_at: datetime | None  # aware UTC
    nonce: str | None  # for replay protection by the caller (None when the scheme has none)
    timestamp: datetime | None  # the signed timestamp, aware UTC
    raw: dict[str, Any] = field(default_factory=dict)  # decrypted / parsed provider payload (audit)
    failure_reason: str | None = None  # a failed payment: the provider's reason, as it states it


@dataclass(frozen=True)
class QueryRequest:
    """A signed request to the provider's order-query endpoint; the caller sends it (``base_url`` is the
    provider's gateway, the simulator's in dev and tests)."""

    method: str
    path: str  # with the query string, if any
    headers: dict[str, str]
    body: bytes = b""

    def url(self, base_url: str) -> str:
        """The request's URL: ``path`` under ``base_url``, or ``path`` itself when the provider gave an
        absolute URL (a statement's download address)."""
        if "://" in self.path:
            return self.path
        return base_url.rstrip("/") + self.path


@dataclass(frozen=True)
class StatementAnswer:
    """The provider's verified answer to a statement request (对账单下载) for one business day:

    * ``ready``: the file is either in the answer (``content``, banks) or behind ``download`` (a request
      for the address the provider gave: WeChat signs it, Alipay's is a one-time URL); ``digest``
      (algorithm, hex), when the provider states one, is what the file's bytes must hash to;
    * ``not_ready``: the provider has not made the day's file yet (or had no transaction that day): ask
      again later.
    """

    provider: str
    day: date
    status: Literal["ready", "not_ready"]
    download: QueryRequest | None = None
    content: bytes | None = None
    digest: tuple[str, str] | None = None
    code: str | None = None


def check_digest(answer: StatementAnswer, data: bytes) -> bytes:
    """``data`` if it hashes to the digest the provider's signed answer stated; CallbackRejected if not."""
    if answer.digest is not None:
        algorithm, expected = answer.digest
        if algorithm.lower() not in ("sha1", "sha256"):
            raise CallbackRejected("unsupported_algorithm", f"statement digest {algorithm}")
        actual = hashlib.new(algorithm.lower(), data).hexdigest()
        if not hmac.compare_digest(actual, expected.lower()):
            raise CallbackRejected("malformed", "the statement file does not match its digest")
    return data


@dataclass(frozen=True)
class QueryAnswer:
    """The provider's verified answer about one order. ``pending`` (not paid yet) and ``not_found`` (the
    provider never saw the order) are answers too: the service closes the order, or asks again later."""

    provider: str
    order_no: str
    status: QueryStatus
    provider_txn_id: str | None = None
    amount_fen: int | None = None
    paid_at: datetime | None = None
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def final(self) -> bool:
        return self.status in ("succeeded", "failed", "closed")

    def to_notice(self) -> CallbackNotice:
        """The answer as a notice the service applies like a callback (no nonce: it was our request)."""
        if not self.final or self.provider_txn_id is None or self.amount_fen is None:
            raise ValueError(f"a {self.status!r} answer is not a notice")
        return CallbackNotice(
            provider=self.provider,
            provider_txn_id=self.provider_txn_id,
            order_no=self.order_no,
            amount_fen=self.amount_fen,
            status=self.status,  # type: ignore[arg-type]  # final => a NoticeStatus
            paid_at=self.paid_at,
            nonce=None,
            timestamp=None,
            raw=self.raw,
        )


@dataclass(frozen=True)
class RefundAnswer:
    """The provider's verified answer to a refund request (:meth:`ProviderAdapter.build_refund_request`):

    * ``accepted``: the provider took the refund (processing or already done); its refund notice completes
      it here (``provider_refund_id`` when the answer names one);
    * ``refused``: a business refusal that a retry with the same ``out_refund_no`` would not change (not
      enough balance, trade not refundable, amount too large ...): ``code`` / ``message`` are the
      provider's; the refund fails;
    * ``retry``: the provider is busy or failed (its system error, rate limit): ask again later with the
      same refund number (the provider's idempotency key).

    An answer that does not verify (forged, unsigned, malformed) raises :class:`CallbackRejected`: nothing is
    concluded from it, the request is retried later."""

    provider: str
    refund_no: str
    status: Literal["accepted", "refused", "retry"]
    provider_refund_id: str | None = None
    code: str | None = None
    message: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RefundTarget:
    """What a refund request names: our refund number (the provider's ``out_refund_no`` / ``out_request_no``:
    its idempotency key), the paid order as the provider knows it (``order_no`` and its transaction id), the
    amount refunded now and the order's paid total (fen)."""

    refund_no: str
    order_no: str
    provider_txn_id: str
    refund_fen: int
    total_fen: int
    reason: str
    notify_url: str


# ------------------------------------------------------------------------------------------- protocol
@runtime_checkable
class ProviderAdapter(Protocol):
    """What the service layer calls. Every method is pure; ``now`` is aware UTC."""

    name: str

    def verify_callback(self, *, headers: Mapping[str, str], body: bytes, now: datetime) -> CallbackNotice:
        """Verify the signature over the raw body and the timestamp window, then decrypt / parse.
        Raises :class:`CallbackRejected`."""
        ...

    def ack(self, ok: bool, message: str = "") -> tuple[int, str, bytes]:
        """(HTTP status, content type, body) in the provider's expected format."""
        ...

    def build_order_request(
        self, *, order_no: str, amount_fen: int, description: str, notify_url: str, now: datetime
    ) -> dict[str, Any]:
        """What the app (or the bank) needs to start paying; signed with our key."""
        ...

    def build_query_request(self, *, order_no: str, now: datetime) -> QueryRequest:
        """The signed order-query request (pending too long: ask the provider)."""
        ...

    def parse_query_response(
        self, *, status_code: int, headers: Mapping[str, str], body: bytes, order_no: str, now: datetime
    ) -> QueryAnswer:
        """Verify and parse the provider's answer to :meth:`build_query_request`. Raises
        :class:`CallbackRejected` for a forged, stale or malformed answer."""
        ...

    def build_refund_request(self, target: RefundTarget, *, now: datetime) -> QueryRequest:
        """The signed refund request (the same ``target.refund_no`` on every retry)."""
        ...

    def parse_refund_response(
        self, *, status_code: int, headers: Mapping[str, str], body: bytes, refund_no: str, now: datetime
    ) -> RefundAnswer:
        """Verify and classify the provider's answer to :meth:`build_refund_request`. Raises
        :class:`CallbackRejected` for an answer that does not verify."""
        ...

    def build_statement_request(self, *, day: date, now: datetime) -> QueryRequest:
        """The signed request for the provider's statement (对账单) of the Beijing business ``day``."""
        ...

    def parse_statement_response(
        self, *, status_code: int, headers: Mapping[str, str], body: bytes, day: date, now: datetime
    ) -> StatementAnswer:
        """Verify the provider's answer to :meth:`build_statement_request`. Raises :class:`CallbackRejected`
        for an answer that does not verify."""
        ...

    def statement_file(self, answer: StatementAnswer, data: bytes) -> bytes:
        """The statement's CSV from what the download returned (its digest checked, unpacked)."""
        ...


# ---------------------------------------------------------------------------------------- replay check
class NonceStore(Protocol):
    """Nonces already processed, remembered for the callback window (see the module docstring)."""

    async def seen(self, provider: str, nonce: str) -> bool: ...

    async def remember(self, provider: str, nonce: str) -> None: ...


class InMemoryNonceStore:
    """A :class:`NonceStore` in a dict, for unit tests and the simulator: entries expire ``window`` after
    they were remembered, by ``clock`` (aware UTC; settable in tests)."""

    def __init__(
        self, window: timedelta = DEFAULT_WINDOW, clock: Callable[[], datetime] | None = None
    ) -> None:
        self.window = window
        self.clock = clock or (lambda: datetime.now(UTC))
        self._until: dict[tuple[str, str], datetime] = {}

    async def seen(self, provider: str, nonce: str) -> bool:
        until = self._until.get((provider, nonce))
        if until is None:
            return False
        if until <= self.clock():
            del self._until[(provider, nonce)]
            return False
        return True

    async def remember(self, provider: str, nonce: str) -> None:
        self._until[(provider, nonce)] = self.clock() + self.window


async def check_replay(
    notice: CallbackNotice, store: NonceStore, now: datetime, *, window: timedelta = DEFAULT_WINDOW
) -> None:
    """Refuse a notice whose nonce was already processed (``replayed``), or whose signed timestamp is
    outside the window (``stale_timestamp``: the store forgets nonces after the window, so the two checks
    only protect together). Does not remember the nonce: call ``store.remember`` after the commit. A
    notice without a nonce (a scheme without one, a query answer) passes: the service dedupes it by
    ``provider_txn_id``."""
    if notice.nonce is None:
        return
    if notice.timestamp is not None:
        check_window(notice.timestamp, now, window)
    if await store.seen(notice.provider, notice.nonce):
        raise CallbackRejected("replayed", f"nonce already processed for {notice.provider}")


# --------------------------------------------------------------------------------------- shared checks
def require_aware(now: datetime) -> datetime:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("naive datetime: pass an aware UTC instant")
    return now.astimezone(UTC)


def check_window(signed_at: datetime, now: datetime, window: timedelta) -> None:
    """``stale_timestamp`` unless ``|now - signed_at| <= window``."""
    if abs(require_aware(now) - signed_at) > window:
        raise CallbackRejected("stale_timestamp", f"signed at {signed_at.isoformat()}")


def header(headers: Mapping[str, str], name: str) -> str:
    """A header by name, case-insensitively (Starlette headers already are; plain dicts are not).
    Missing or empty: ``malformed``."""
    value = headers.get(name)
    if value is None:
        lower = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lower), None)
    if value is None or value.strip() == "":
        raise CallbackRejected("malformed", f"missing header {name}")
    return value.strip()


def optional_header(headers: Mapping[str, str], name: str) -> str | None:
    try:
        return header(headers, name)
    except CallbackRejected:
        return None


def unix_seconds(value: str) -> datetime:
    """A decimal Unix timestamp in seconds (WeChat's ``Wechatpay-Timestamp``)."""
    if not re.fullmatch(r"[0-9]{1,12}", value):
        raise CallbackRejected("malformed", "timestamp is not Unix seconds")
    return datetime.fromtimestamp(int(value), UTC)


def shanghai_time(value: str, fmt: str = "%Y-%m-%d %H:%M:%S") -> datetime:
    """A Beijing-time wall clock string (e.g. Alipay's ``2026-11-23 10:15:00``) as aware UTC."""
    try:
        local = datetime.strptime(value, fmt)  # noqa: DTZ007 - the zone is attached on the next line
    except (TypeError, ValueError):
        raise CallbackRejected("malformed", f"time {value!r} is not {fmt}") from None
    return local.replace(tzinfo=SHANGHAI).astimezone(UTC)


def to_shanghai(instant: datetime, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    return require_aware(instant).astimezone(SHANGHAI).strftime(fmt)


def rfc3339_time(value: str) -> datetime:
    """An RFC 3339 instant with an explicit offset (WeChat's ``2026-11-23T10:15:00+08:00``) as UTC."""
    try:
        parsed = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise CallbackRejected("malformed", f"time {value!r} is not RFC 3339") from None
    if parsed.tzinfo is None:
        raise CallbackRejected("malformed", f"time {value!r} has no offset")
    return parsed.astimezone(UTC)


_YUAN = re.compile(r"(0|[1-9][0-9]{0,12})(\.[0-9]{1,2})?")


def yuan_to_fen(value: str) -> int:
    """An amount in yuan as a decimal string (``"12.34"``, ``"0.01"``, ``"100"``) in integer fen, exactly.
    Refused (``bad_amount``): more than two decimals (``"1.005"``), a sign, an exponent, blanks, leading
    zeros (``"01.00"``), an empty string, a trailing dot, anything not a plain decimal."""
    if not isinstance(value, str) or not _YUAN.fullmatch(value):
        raise CallbackRejected("bad_amount", f"not a yuan amount: {value!r}")
    try:
        fen = Decimal(value) * 100
    except InvalidOperation:  # pragma: no cover - the pattern admits only plain decimals
        raise CallbackRejected("bad_amount", f"not a yuan amount: {value!r}") from None
    if fen != fen.to_integral_value():  # pragma: no cover - at most two decimals by the pattern
        raise CallbackRejected("bad_amount", f"more than two decimals: {value!r}")
    return int(fen)


def fen_to_yuan(fen: int) -> str:
    """Integer fen as the yuan string providers expect (``1234`` -> ``"12.34"``; never negative)."""
    if not isinstance(fen, int) or isinstance(fen, bool) or fen < 0:
        raise ValueError(f"fen must be a non-negative int, got {fen!r}")
    return f"{fen // 100}.{fen % 100:02d}"


def json_object(data: bytes, what: str = "body") -> dict[str, Any]:
    """``data`` parsed as a JSON object, or :class:`CallbackRejected` ``malformed``."""
    try:
        parsed = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise CallbackRejected("malformed", f"{what} is not JSON") from None
    if not isinstance(parsed, dict):
        raise CallbackRejected("malformed", f"{what} is not an object")
    return parsed


def b64decode_strict(value: str, what: str = "signature") -> bytes:
    try:
        return base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise CallbackRejected("malformed", f"{what} is not base64") from None


# ------------------------------------------------------------------------------------------------ RSA
def load_rsa_public_key(pem: str | bytes, *, at: datetime | None = None) -> rsa.RSAPublicKey:
    """An RSA public key from a PEM ``PUBLIC KEY`` / ``RSA PUBLIC KEY`` or an X.509 ``CERTIFICATE`` (for a
    certificate, ``at`` must fall in its validity). A bare base64 body (as providers' consoles show it) is
    accepted as ``PUBLIC KEY``."""
    data = pem.encode("ascii") if isinstance(pem, str) else pem
    if b"-----BEGIN" not in data:
        data = b"-----BEGIN PUBLIC KEY-----\n" + data.strip() + b"\n-----END PUBLIC KEY-----\n"
    if b"CERTIFICATE" in data:
        cert = load_pem_x509_certificate(data)
        if at is not None and not (cert.not_valid_before_utc <= at <= cert.not_valid_after_utc):
            raise ValueError("certificate not valid at the given time")
        key = cert.public_key()
    else:
        key = serialization.load_pem_public_key(data)
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("not an RSA public key")
    if key.key_size < 2048:
        raise ValueError("RSA keys shorter than 2048 bits are refused")
    return key


def load_rsa_private_key(pem: str | bytes) -> rsa.RSAPrivateKey:
    """An RSA private key from PEM (PKCS#8 ``PRIVATE KEY`` or PKCS#1 ``RSA PRIVATE KEY``)."""
    data = pem.encode("ascii") if isinstance(pem, str) else pem
    key = serialization.load_pem_private_key(data, password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("not an RSA private key")
    return key


def rsa_sha256_sign(key: rsa.RSAPrivateKey, message: bytes) -> str:
    """RSA-SHA256 (PKCS#1 v1.5), base64 (WeChat's, Alipay's RSA2 and banks' RSA2 signature)."""
    return base64.b64encode(key.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode("ascii")


def rsa_sha256_verify(key: rsa.RSAPublicKey, message: bytes, signature_b64: str) -> None:
    """``bad_signature`` unless the base64 signature verifies (``malformed`` if not base64)."""
    signature = b64decode_strict(signature_b64)
    try:
        key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        raise CallbackRejected("bad_signature") from None


def public_pem(key: rsa.RSAPrivateKey | rsa.RSAPublicKey) -> str:
    public = key.public_key() if isinstance(key, rsa.RSAPrivateKey) else key
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


def private_pem(key: rsa.RSAPrivateKey, *, pkcs1: bool = False) -> str:
    fmt = serialization.PrivateFormat.TraditionalOpenSSL if pkcs1 else serialization.PrivateFormat.PKCS8
    return key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption()).decode("ascii")
