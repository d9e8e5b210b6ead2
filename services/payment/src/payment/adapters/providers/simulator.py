"""The provider simulator: the *providers'* side of every channel, for dev, tests and load tests.

:class:`ProviderSimulator` holds the providers' private keys (generated at construction, or loaded with
:meth:`ProviderSimulator.from_keys`) and our merchant keys, and

* hands out adapters configured with the matching public keys (:meth:`~ProviderSimulator.adapters`,
  ``wechat_adapter()``, ``alipay_adapter()``, ``bank_adapter(code)``), so tests never copy keys around;
* produces callbacks signed **exactly as each provider does** (the formats in :mod:`.wechat`,
  :mod:`.alipay`, :mod:`.bank`, :mod:`.bankxml` for the banks configured for XML: ``ccb`` and ``abc`` by
  default, beside the JSON banks ``icbc`` and ``boc``): :meth:`~ProviderSimulator.wechat_callback`,
  :meth:`~ProviderSimulator.alipay_callback`, :meth:`~ProviderSimulator.bank_callback` (each a
  :class:`SimCallback`: provider, order no, path, headers, raw body);
* keeps a provider-side order book (every callback it signs records the order) and answers the order query
  as the provider would (:meth:`~ProviderSimulator.query`, signed), also over HTTP
  (:meth:`~ProviderSimulator.asgi_app`: ``GET /v3/pay/transactions/out-trade-no/{no}``, ``POST
  /v3/pay/transactions/app``, ``POST /v3/refund/domestic/refunds``, ``POST /gateway.do`` (query and
  ``alipay.trade.refund``), ``POST /bank/{code}/api/query``, ``/api/pay``, ``/api/refund``; requests are
  checked against our merchant keys: 401 when they do not verify);
* answers refund requests as the providers do (:meth:`~ProviderSimulator.refund`: idempotent by refund
  number, refused beyond what is left of the trade; :meth:`~ProviderSimulator.script_refunds` for system
  errors and refusals) and queues the signed refund notice each accepted refund then sends
  (:meth:`~ProviderSimulator.take_refund_notices`);
* writes each provider's daily statement (:func:`statement_csv`), and its own lines for a day
  (:meth:`~ProviderSimulator.statement_entries`).

:func:`deliver` posts callbacks to the service the way providers do in real life: each one ``copies``
times, concurrently (``concurrency`` in flight), shuffled (out of order), each copy after a random delay
(late). The same signed bytes are re-sent, so copies after the first are replays by nonce.

Daily statements (对账单), :func:`statement_csv` (``payment.domain.statements`` parses exactly these):

**wechat** (微信支付 交易账单), UTF-8 without BOM, ``\\n`` line ends. Header::

    交易时间,公众账号ID,商户号,微信订单号,商户订单号,交易类型,交易状态,订单金额,退款金额,手续费

every cell of a row prefixed with a backtick; ``交易时间`` Asia/Shanghai ``YYYY-MM-DD HH:MM:SS``;
``交易类型`` ``APP``;
``交易状态`` ``SUCCESS`` (payment: ``订单金额`` = amount, ``退款金额`` ``0.00``) or ``REFUND`` (``订单金额`` =
the original order's amount, ``退款金额`` = the refund); amounts in yuan with two decimals; ``手续费`` signed
yuan. Then a blank line, ``总交易单数,应结订单总金额,退款总金额,手续费总金额`` and one backticked row: rows,
sum of payments, sum of refunds, signed sum of fees.

**alipay** (支付宝 业务明细), **GBK**, ``\\n`` line ends: comment lines ``#支付宝业务明细查询``,
``#账号：[<seller id>]``, ``#起始日期：[YYYY年MM月DD日 00:00:00]   终止日期：[<next day> 00:00:00]``,
``#---...业务明细列表---...``; header
``支付宝交易号,商户订单号,业务类型,商品名称,创建时间,完成时间,订单金额（元）,商家实收（元）,服务费（元）,退款批次号/请求号``;
rows with ``业务类型`` ``交易`` (positive amounts) or ``退款`` (negative ``订单金额`` and ``商家实收``, the
refund request no in the last column); ``商家实收`` = amount - fee; times Asia/Shanghai; then
``#---...业务明细列表结束---...``, ``#交易合计：<n>笔，共<yuan>元``, ``#退款合计：<m>笔，共-<yuan>元``,
``#导出时间：[<next day> 08:00:00]``.

**bank:<code>** (银企直连 对账文件), UTF-8, ``\\n``: header
``bank_serial_no,order_no,amount_fen,status,paid_at``; rows
``<serial>,<order no>,<fen>,SUCCESS,<RFC 3339 +08:00>``; footer ``TOTAL,<count>,<sum fen>``. Payments only
(a refund entry is refused).

Rows are written in ``occurred_at`` order; the caller chooses which entries belong to the day. Money is
integer fen in every input.
"""

from __future__ import annotations

import asyncio
import base64
import csv
import hashlib
import io
import json
import random
import secrets
import time
import zipfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal, Protocol
from urllib.parse import parse_qsl, urlencode

from cryptography.hazmat.primitives.asymmetric import rsa

from payment.adapters.providers import bankxml, sm2, withholding
from payment.adapters.providers.alipay import BILL_METHOD, BILL_NODE, QUERY_NODE, AlipayAdapter, sign_content
from payment.adapters.providers.bank import BankDirectAdapter, Signer, SignType, Verifier
from payment.adapters.providers.base import (
    DEFAULT_WINDOW,
    SHANGHAI,
    CallbackRejected,
    fen_to_yuan,
    load_rsa_private_key,
    private_pem,
    public_pem,
    require_aware,
    rsa_sha256_sign,
    rsa_sha256_verify,
    to_shanghai,
    yuan_to_fen,
)
from payment.adapters.providers.config import AlipayConfig, BankConfig, ProvidersConfig, WeChatConfig
from payment.adapters.providers.wechat import (
    SIGNATURE_TYPE,
    WeChatPayAdapter,
    aes_gcm_encrypt,
    message_to_sign,
)

Provider = str  # "wechat" | "alipay" | "bank:<code>"


@dataclass(frozen=True)
class SimCallback:
    """A provider's notification as it goes on the wire."""

    provider: str
    order_no: str
    path: str  # where the service receives it: /callbacks/wechat, /callbacks/alipay, /callbacks/bank/<code>
    headers: dict[str, str]
    body: bytes


@dataclass
class SimOrder:
    """The provider's view of one order."""

    provider: str
    order_no: str
    amount_fen: int
    status: Literal["succeeded", "failed", "closed", "pending"]
    txn_id: str | None = None
    paid_at: datetime | None = None


@dataclass(frozen=True)
class StatementEntry:
    """One line of a provider's statement. Field names match ``payment.domain.statements.StatementLine`` so
    either can be passed to :func:`statement_csv`."""

    provider_txn_id: str
    order_no: str
    amount_fen: int  # magnitude, > 0
    occurred_at: datetime  # aware
    kind: str = "payment"  # payment | refund
    fee_fen: int | None = 0
    refund_no: str | None = None
    order_amount_fen: int | None = None  # a refund's original order amount (WeChat's 订单金额)
    description: str = "缴费"


@dataclass(frozen=True)
class Delivery:
    """One delivery attempt of :func:`deliver`."""

    callback: SimCallback
    copy: int
    status_code: int | None  # None: the request failed (``error``)
    body: bytes
    seconds: float
    error: str | None = None


class _Entry(Protocol):
    provider_txn_id: str
    order_no: str
    amount_fen: int
    occurred_at: datetime
    kind: Any
    fee_fen: int | None
    refund_no: str | None


# ---------------------------------------------------------------------------------------------- keys
@dataclass
class SimulatorKeys:
    """Every key the simulator and the adapters need: the providers' private keys and ours. PEM strings
    (RSA) and hex strings (SM2); :meth:`to_json` / :meth:`from_json` to share them between processes."""

    wechat_platform_private: str
    wechat_platform_serial: str
    wechat_merchant_private: str
    wechat_merchant_serial: str
    wechat_apiv3_key: str
    alipay_private: str
    alipay_app_private: str
    banks: dict[str, dict[str, str]] = field(default_factory=dict)
    # banks[code] = {"sign_type", "bank_private", "bank_key_id", "merchant_private", "merchant_key_id",
    #                "format" (JSON | XML notifications; JSON when absent)}

    @staticmethod
    def generate(banks: Mapping[str, SignType], xml_banks: Iterable[str] = ()) -> SimulatorKeys:
        def new_rsa() -> str:
            return private_pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))

        bank_keys: dict[str, dict[str, str]] = {}
        for code, sign_type in banks.items():
            if sign_type == "SM2":
                bank_private, merchant_private = sm2.generate_keypair()[0], sm2.generate_keypair()[0]
            else:
                bank_private, merchant_private = new_rsa(), new_rsa()
            bank_keys[code] = {
                "sign_type": sign_type,
                "bank_private": bank_private,
                "bank_key_id": f"{code.upper()}-BANK-01",
                "merchant_private": merchant_private,
                "merchant_key_id": f"{code.upper()}-MER-01",
                "format": "XML" if code in set(xml_banks) else "JSON",
            }
        return SimulatorKeys(
            wechat_platform_private=new_rsa(),
            wechat_platform_serial="PUB_KEY_ID_0119000001" + secrets.token_hex(4).upper(),
            wechat_merchant_private=new_rsa(),
            wechat_merchant_serial=secrets.token_hex(20).upper(),
            wechat_apiv3_key=secrets.token_hex(16),
            alipay_private=new_rsa(),
            alipay_app_private=new_rsa(),
            banks=bank_keys,
        )

    def to_json(self) -> str:
        return json.dumps(self.__dict__, indent=2)

    @staticmethod
    def from_json(text: str) -> SimulatorKeys:
        return SimulatorKeys(**json.loads(text))


def _rsa_public(private: str) -> str:
    return public_pem(load_rsa_private_key(private))


def _bank_public(sign_type: str, private: str) -> str:
    return sm2.public_key_of(private) if sign_type == "SM2" else _rsa_public(private)


def _compact(data: Any) -> bytes:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()


def _rfc3339_shanghai(instant: datetime) -> str:
    return require_aware(instant).astimezone(SHANGHAI).isoformat(timespec="seconds")


# ----------------------------------------------------------------------------------------- simulator
class ProviderSimulator:
    """The providers' side (see the module docstring). ``clock`` gives "now" when a call does not pass it."""

    def __init__(
        self,
        *,
        keys: SimulatorKeys | None = None,
        banks: Mapping[str, SignType] | None = None,
        xml_banks: Iterable[str] | None = None,
        mchid: str = "1900000109",
        appid: str = "wxd678efh567hg6787",
        alipay_app_id: str = "2021000000000001",
        alipay_seller_id: str = "2088000000000001",
        merchant_no: str = "M000000001",
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        if banks is None:  # two JSON banks and two XML banks, one of each signing RSA2 and SM2
            banks, xml_banks = {"icbc": "RSA2", "boc": "SM2", "ccb": "RSA2", "abc": "SM2"}, ("ccb", "abc")
        self.keys = keys or SimulatorKeys.generate(dict(banks), xml_banks or ())
        self.mchid, self.appid = mchid, appid
        self.alipay_app_id, self.alipay_seller_id = alipay_app_id, alipay_seller_id
        self.merchant_no = merchant_no
        self.clock = clock or (lambda: datetime.now(UTC))
        k = self.keys
        self._wechat_key = load_rsa_private_key(k.wechat_platform_private)
        self._wechat_merchant_public = load_rsa_private_key(k.wechat_merchant_private).public_key()
        self._alipay_key = load_rsa_private_key(k.alipay_private)
        self._alipay_app_public = load_rsa_private_key(k.alipay_app_private).public_key()
        self._bank_signers = {
            code: Signer(b["sign_type"], b["bank_private"], b["bank_key_id"])  # type: ignore[arg-type]
            for code, b in k.banks.items()
        }
        self._merchant_verifiers = {
            code: Verifier(
                b["sign_type"],  # type: ignore[arg-type]
                {b["merchant_key_id"]: _bank_public(b["sign_type"], b["merchant_private"])},
            )
            for code, b in k.banks.items()
        }
        self.orders: dict[tuple[str, str], SimOrder] = {}
        # Refunds the providers accepted, by (provider, refund no): (order no, amount); the notices they
        # send once a refund is done (:meth:`take_refund_notices`); scripted answers to the next refund
        # requests (:meth:`script_refunds`).
        self.refunds: dict[tuple[str, str], tuple[str, int]] = {}
        self.refund_notices: list[SimCallback] = []
        self.refund_requests: list[tuple[str, str]] = []
        self._refund_script: list[str] = []
        # Statement downloads: days whose file the provider has not made yet ((provider, day): answered "not
        # ready"), the one-time download tokens handed out, and every statement request served.
        self.statements_not_ready: set[tuple[str, date]] = set()
        self._statement_files: dict[str, bytes] = {}
        self.statement_requests: list[tuple[str, date]] = []
        # Transaction ids must not repeat across simulator instances (a test run, a benchmark, the next run
        # against the same stack): the sequence starts from the clock, not from zero.
        self._seq = time.time_ns() // 1_000 % 10**10

    @classmethod
    def from_keys(cls, keys_json: str, **kwargs: Any) -> ProviderSimulator:
        return cls(keys=SimulatorKeys.from_json(keys_json), **kwargs)

    @property
    def bank_codes(self) -> list[str]:
        return sorted(self.keys.banks)

    def _now(self, now: datetime | None) -> datetime:
        return require_aware(now or self.clock())

    def _next(self) -> int:
        self._seq = (self._seq + 1) % 10**10
        return self._seq

    # ---------------------------------------------------------------------------------- adapters
    def merchant_config(self, *, base_url: str = "") -> ProvidersConfig:
        """The merchant's side of these keys, as a deployment configures it (``UTILIS_PROVIDERS_FILE``):
        our ids and private keys and the providers' *public* keys, none of the providers' private keys.
        ``base_url``: where this simulator's :meth:`asgi_app` is served (banks' gateways are
        ``<base_url>/bank/<code>``). Every adapter the service and the tests use is built from it (or from
        its parts below), so the production configuration path is the one every test exercises."""
        return ProvidersConfig(
            wechat=self._wechat_config(),
            alipay=self._alipay_config(),
            banks={code: self._bank_config(code, base_url) for code in self.keys.banks},
        )

    def _wechat_config(self) -> WeChatConfig:
        k = self.keys
        return WeChatConfig(
            mchid=self.mchid,
            appid=self.appid,
            apiv3_key=k.wechat_apiv3_key,
            merchant_serial=k.wechat_merchant_serial,
            merchant_private_key=k.wechat_merchant_private,
            platform_public_keys={k.wechat_platform_serial: _rsa_public(k.wechat_platform_private)},
        )

    def _alipay_config(self) -> AlipayConfig:
        return AlipayConfig(
            app_id=self.alipay_app_id,
            seller_id=self.alipay_seller_id,
            app_private_key=self.keys.alipay_app_private,
            alipay_public_key=_rsa_public(self.keys.alipay_private),
        )

    def _bank_config(self, code: str, base_url: str = "") -> BankConfig:
        b = self.keys.banks[code]
        return BankConfig(
            merchant_no=self.merchant_no,
            sign_type=b["sign_type"],  # type: ignore[arg-type]
            format=self.bank_format(code),  # type: ignore[arg-type]
            merchant_key_id=b["merchant_key_id"],
            merchant_private_key=b["merchant_private"],
            bank_public_keys={b["bank_key_id"]: _bank_public(b["sign_type"], b["bank_private"])},
            gateway_url=f"{base_url.rstrip('/')}/bank/{code}" if base_url else "",
        )

    def wechat_adapter(self, *, window: timedelta = DEFAULT_WINDOW) -> WeChatPayAdapter:
        return self._wechat_config().adapter(window)

    def alipay_adapter(self, *, window: timedelta = DEFAULT_WINDOW) -> AlipayAdapter:
        return self._alipay_config().adapter(window)

    def bank_adapter(
        self, code: str, *, window: timedelta = DEFAULT_WINDOW, base_url: str = ""
    ) -> BankDirectAdapter:
        return self._bank_config(code, base_url).adapter(code, window)

    def bank_format(self, code: str) -> str:
        return self.keys.banks[code].get("format", "JSON")

    def adapters(self, *, window: timedelta = DEFAULT_WINDOW, base_url: str = "") -> dict[str, Any]:
        """``{provider name: adapter}`` for every channel (what ``Channels`` takes), built from
        :meth:`merchant_config` exactly as a deployment's providers file is."""
        return self.merchant_config(base_url=base_url).adapters(window=window)

    # ------------------------------------------------------------------------------- order book
    def register_order(self, provider: Provider, order_no: str, amount_fen: int) -> SimOrder:
        """The provider learns of an order (a prepay / pay request): pending until paid or closed."""
        key = (provider, order_no)
        if key not in self.orders:
            self.orders[key] = SimOrder(provider, order_no, amount_fen, "pending")
        return self.orders[key]

    def _record(
        self,
        provider: str,
        order_no: str,
        amount_fen: int,
        status: str,
        txn_id: str | None,
        paid_at: datetime | None,
    ) -> None:
        self.orders[(provider, order_no)] = SimOrder(
            provider,
            order_no,
            amount_fen,
            status,
            txn_id,
            paid_at,  # type: ignore[arg-type]
        )

    # -------------------------------------------------------------------------------- callbacks
    def _wechat_signed_headers(self, body: bytes, now: datetime, nonce: str | None = None) -> dict[str, str]:
        timestamp = str(int(now.timestamp()))
        nonce = nonce or secrets.token_hex(16).upper()
        return {
            "Content-Type": "application/json",
            "Wechatpay-Timestamp": timestamp,
            "Wechatpay-Nonce": nonce,
            "Wechatpay-Serial": self.keys.wechat_platform_serial,
            "Wechatpay-Signature-Type": SIGNATURE_TYPE,
            "Wechatpay-Signature": rsa_sha256_sign(self._wechat_key, message_to_sign(timestamp, nonce, body)),
        }

    def _wechat_transaction(self, order: SimOrder, state: str) -> dict[str, Any]:
        data: dict[str, Any] = {
            "mchid": self.mchid,
            "appid": self.appid,
            "out_trade_no": order.order_no,
            "trade_type": "APP",
            "trade_state": state,
            "trade_state_desc": {"SUCCESS": "支付成功", "CLOSED": "已关闭", "NOTPAY": "未支付"}.get(
                state, state
            ),
            "bank_type": "OTHERS",
            "attach": "",
            "payer": {"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"},
            "amount": {
                "total": order.amount_fen,
                "payer_total": order.amount_fen,
                "currency": "CNY",
                "payer_currency": "CNY",
            },
        }
        if order.txn_id:
            data["transaction_id"] = order.txn_id
        if order.paid_at:
            data["success_time"] = _rfc3339_shanghai(order.paid_at)
        return data

    def _wechat_envelope(
        self, plain: dict[str, Any], original_type: str, event: str, summary: str, now: datetime
    ) -> bytes:
        nonce = secrets.token_urlsafe(9)[:12]
        associated = original_type
        return _compact(
            {
                "id": f"EV-{secrets.token_hex(12)}",
                "create_time": _rfc3339_shanghai(now),
                "resource_type": "encrypt-resource",
                "event_type": event,
                "summary": summary,
                "resource": {
                    "original_type": original_type,
                    "algorithm": "AEAD_AES_256_GCM",
                    "ciphertext": aes_gcm_encrypt(
                        self.keys.wechat_apiv3_key.encode(), nonce, associated, _compact(plain)
                    ),
                    "associated_data": associated,
                    "nonce": nonce,
                },
            }
        )

    def wechat_callback(
        self,
        order_no: str,
        amount_fen: int,
        txn_id: str | None = None,
        paid_at: datetime | None = None,
        *,
        now: datetime | None = None,
        trade_state: str = "SUCCESS",
        nonce: str | None = None,
    ) -> SimCallback:
        """A ``TRANSACTION.SUCCESS`` (or other ``trade_state``) notification, signed now."""
        now = self._now(now)
        paid = trade_state == "SUCCESS"
        txn_id = txn_id or (f"42000{now:%Y%m%d}{self._next():010d}" if paid else None)
        order = SimOrder(
            "wechat",
            order_no,
            amount_fen,
            "succeeded" if paid else "closed",
            txn_id,
            (paid_at or now) if paid else None,
        )
        if trade_state in ("SUCCESS", "CLOSED", "PAYERROR"):
            self._record(
                "wechat",
                order_no,
                amount_fen,
                {"SUCCESS": "succeeded", "CLOSED": "closed"}.get(trade_state, "failed"),
                txn_id,
                order.paid_at,
            )
        body = self._wechat_envelope(
            self._wechat_transaction(order, trade_state),
            "transaction",
            f"TRANSACTION.{trade_state}",
            "支付成功",
            now,
        )
        return SimCallback(
            "wechat", order_no, "/callbacks/wechat", self._wechat_signed_headers(body, now, nonce), body
        )

    def wechat_refund_callback(
        self,
        order_no: str,
        refund_fen: int,
        *,
        txn_id: str,
        refund_id: str | None = None,
        out_refund_no: str | None = None,
        total_fen: int | None = None,
        refunded_at: datetime | None = None,
        now: datetime | None = None,
    ) -> SimCallback:
        """A ``REFUND.SUCCESS`` notification."""
        now = self._now(now)
        plain = {
            "mchid": self.mchid,
            "out_trade_no": order_no,
            "transaction_id": txn_id,
            "out_refund_no": out_refund_no or f"R{order_no}",
            "refund_id": refund_id or f"50300{now:%Y%m%d}{self._next():010d}",
            "refund_status": "SUCCESS",
            "success_time": _rfc3339_shanghai(refunded_at or now),
            "user_received_account": "支付用户零钱",
            "amount": {
                "total": total_fen or refund_fen,
                "refund": refund_fen,
                "payer_total": total_fen or refund_fen,
                "payer_refund": refund_fen,
            },
        }
        body = self._wechat_envelope(plain, "refund", "REFUND.SUCCESS", "退款成功", now)
        return SimCallback(
            "wechat", order_no, "/callbacks/wechat", self._wechat_signed_headers(body, now), body
        )

    def alipay_notify_params(
        self,
        order_no: str,
        amount_fen: int,
        trade_no: str | None = None,
        paid_at: datetime | None = None,
        *,
        now: datetime | None = None,
        trade_status: str = "TRADE_SUCCESS",
        notify_id: str | None = None,
        refund_fen: int | None = None,
        out_biz_no: str | None = None,
    ) -> dict[str, str]:
        """The signed form parameters of an Alipay notification."""
        now = self._now(now)
        paid_at = paid_at or now
        trade_no = trade_no or f"{now.astimezone(SHANGHAI):%Y%m%d}2200140{self._next():010d}"
        params = {
            "gmt_create": to_shanghai(paid_at - timedelta(seconds=5)),
            "charset": "utf-8",
            "seller_id": self.alipay_seller_id,
            "subject": "缴费",
            "buyer_id": "2088102177846875",
            "invoice_amount": fen_to_yuan(amount_fen),
            "notify_id": notify_id or secrets.token_hex(16),
            "fund_bill_list": json.dumps(
                [{"amount": fen_to_yuan(amount_fen), "fundChannel": "ALIPAYACCOUNT"}], separators=(",", ":")
            ),
            "notify_type": "trade_status_sync",
            "trade_status": trade_status,
            "receipt_amount": fen_to_yuan(amount_fen),
            "buyer_pay_amount": fen_to_yuan(amount_fen),
            "app_id": self.alipay_app_id,
            "sign_type": "RSA2",
            "notify_time": to_shanghai(now),
            "version": "1.0",
            "out_trade_no": order_no,
            "total_amount": fen_to_yuan(amount_fen),
            "trade_no": trade_no,
            "auth_app_id": self.alipay_app_id,
            "point_amount": "0.00",
        }
        if trade_status in ("TRADE_SUCCESS", "TRADE_FINISHED"):
            params["gmt_payment"] = to_shanghai(paid_at)
        if refund_fen is not None:
            params["refund_fee"] = fen_to_yuan(refund_fen)
            params["gmt_refund"] = to_shanghai(now, "%Y-%m-%d %H:%M:%S.%f")[:-3]
            params["out_biz_no"] = out_biz_no or f"R{order_no}"
        elif trade_status in ("TRADE_SUCCESS", "TRADE_FINISHED"):
            self._record("alipay", order_no, amount_fen, "succeeded", trade_no, paid_at)
        elif trade_status == "TRADE_CLOSED":
            self._record("alipay", order_no, amount_fen, "closed", trade_no, None)
        params["sign"] = rsa_sha256_sign(self._alipay_key, sign_content(params).encode())
        return params

    def alipay_callback(
        self,
        order_no: str,
        amount_fen: int,
        trade_no: str | None = None,
        paid_at: datetime | None = None,
        **kwargs: Any,
    ) -> SimCallback:
        """An asynchronous notification (form body). Keyword arguments as :meth:`alipay_notify_params`."""
        params = self.alipay_notify_params(order_no, amount_fen, trade_no, paid_at, **kwargs)
        body = urlencode(params).encode("ascii")
        headers = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}
        return SimCallback("alipay", order_no, "/callbacks/alipay", headers, body)

    def bank_callback(
        self,
        bank_code: str,
        order_no: str,
        amount_fen: int,
        serial_no: str | None = None,
        paid_at: datetime | None = None,
        *,
        now: datetime | None = None,
        status: str = "SUCCESS",
        msg_type: str = "PAY_NOTIFY",
        nonce: str | None = None,
        refund_no: str | None = None,
        xml_encoding: str = "UTF-8",
    ) -> SimCallback:
        """A bank direct-connect notification signed with the bank's key (RSA2 or SM2, as configured); a
        ``REFUND_NOTIFY`` names the merchant's ``refund_no``."""
        now = self._now(now)
        paid_at = paid_at or now
        serial_no = serial_no or f"{bank_code.upper()}{now.astimezone(SHANGHAI):%Y%m%d}{self._next():010d}"
        payload: dict[str, Any] = {
            "msg_type": msg_type,
            "bank_code": bank_code,
            "merchant_no": self.merchant_no,
            "order_no": order_no,
            "bank_serial_no": serial_no,
            "amount_fen": amount_fen,
            "currency": "CNY",
            "status": status,
            "paid_time": to_shanghai(paid_at, "%Y%m%d%H%M%S") if status == "SUCCESS" else "",
            "payer_account_masked": "6222****1234",
            "fail_reason": "" if status != "FAILED" else "余额不足",
        }
        if msg_type == "REFUND_NOTIFY":
            payload["refund_no"] = refund_no or f"R{order_no}"
        if msg_type == "PAY_NOTIFY" and status in ("SUCCESS", "FAILED", "CLOSED"):
            state = {"SUCCESS": "succeeded", "FAILED": "failed", "CLOSED": "closed"}[status]
            self._record(
                f"bank:{bank_code}",
                order_no,
                amount_fen,
                state,
                serial_no,
                paid_at if status == "SUCCESS" else None,
            )
        headers, body = self._bank_message(bank_code, payload, now, nonce=nonce, encoding=xml_encoding)
        return SimCallback(f"bank:{bank_code}", order_no, f"/callbacks/bank/{bank_code}", headers, body)

    def _bank_message(
        self,
        code: str,
        payload: dict[str, Any],
        now: datetime,
        *,
        nonce: str | None = None,
        encoding: str = "UTF-8",
    ) -> tuple[dict[str, str], bytes]:
        """(headers, body) of a message as bank ``code`` sends it (a notification or an answer), signed with
        the bank's key in its format: JSON with signed headers, or an XML Message (:mod:`.bankxml`) signed
        over its body's bytes. ``payload`` is the JSON message (an empty ``fail_reason`` is left out of
        the XML)."""
        signer = self._bank_signers[code]
        if self.bank_format(code) != "XML":
            body = _compact(payload)
            return signer.headers(code, body, now=now, nonce=nonce), body
        head = {
            "TxCode": payload["msg_type"],
            "BankCode": code,
            "TxTime": to_shanghai(now, "%Y%m%d%H%M%S"),
            "Nonce": nonce or secrets.token_hex(16),
            "KeyId": signer.key_id,
            "SignType": signer.sign_type,
        }
        fields = {k: v for k, v in payload.items() if k != "fail_reason" or v}
        body = bankxml.build_message(head, bankxml.to_body(fields), signer.sign, encoding=encoding)
        return {"Content-Type": f"application/xml; charset={encoding}"}, body

    def _bank_answer(
        self, code: str, payload: dict[str, Any], now: datetime
    ) -> tuple[int, dict[str, str], bytes]:
        """The bank's signed answer to one of our requests, in the bank's format."""
        return 200, *self._bank_message(code, payload, now)

    def _bank_request(self, code: str, headers: Mapping[str, str], body: bytes) -> dict[str, Any] | None:
        """Our request to bank ``code`` as its JSON fields, if it verifies with our (the merchant's) key
        within the window; None if not."""
        verifier, now = self._merchant_verifiers[code], self._now(None)
        try:
            if self.bank_format(code) == "XML":
                return verifier.verify_xml(body, bank_code=code, now=now, window=DEFAULT_WINDOW)[0]
            verifier.verify(headers, body, bank_code=code, now=now, window=DEFAULT_WINDOW)
            return json.loads(body)
        except CallbackRejected:
            return None

    def callback(
        self,
        provider: Provider,
        order_no: str,
        amount_fen: int,
        txn_id: str | None = None,
        paid_at: datetime | None = None,
        *,
        now: datetime | None = None,
    ) -> SimCallback:
        """A success notification from ``provider`` (``wechat`` | ``alipay`` | ``bank:<code>``)."""
        if provider == "wechat":
            return self.wechat_callback(order_no, amount_fen, txn_id, paid_at, now=now)
        if provider == "alipay":
            return self.alipay_callback(order_no, amount_fen, txn_id, paid_at, now=now)
        if provider.startswith("bank:"):
            return self.bank_callback(provider[5:], order_no, amount_fen, txn_id, paid_at, now=now)
        raise ValueError(f"unknown provider {provider!r}")

    # ------------------------------------------------------------------------------------ query
    def query(
        self, provider: Provider, order_no: str, *, now: datetime | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        """The provider's signed answer to an order query: ``(status, headers, body)``."""
        now = self._now(now)
        order = self.orders.get((provider, order_no))
        if provider == "wechat":
            if order is None:
                status, body = 404, _compact({"code": "ORDER_NOT_EXIST", "message": "订单不存在"})
            else:
                state = {
                    "succeeded": "SUCCESS",
                    "closed": "CLOSED",
                    "failed": "PAYERROR",
                    "pending": "NOTPAY",
                }[order.status]
                status, body = 200, _compact(self._wechat_transaction(order, state))
            headers = self._wechat_signed_headers(body, now)
            return status, headers, body
        if provider == "alipay":
            if order is None:
                node: dict[str, Any] = {
                    "code": "40004",
                    "msg": "Business Failed",
                    "sub_code": "ACQ.TRADE_NOT_EXIST",
                    "sub_msg": "交易不存在",
                }
            else:
                node = {
                    "code": "10000",
                    "msg": "Success",
                    "buyer_logon_id": "159****5620",
                    "out_trade_no": order_no,
                    "trade_no": order.txn_id or "",
                    "trade_status": {
                        "succeeded": "TRADE_SUCCESS",
                        "closed": "TRADE_CLOSED",
                        "pending": "WAIT_BUYER_PAY",
                        "failed": "TRADE_CLOSED",
                    }[order.status],
                    "total_amount": fen_to_yuan(order.amount_fen),
                }
                if order.paid_at:
                    node["send_pay_date"] = to_shanghai(order.paid_at)
            node_text = json.dumps(node, ensure_ascii=False, separators=(",", ":"))
            sign = rsa_sha256_sign(self._alipay_key, node_text.encode())
            body = ('{"' + QUERY_NODE + '":' + node_text + ',"sign":"' + sign + '"}').encode()
            return 200, {"Content-Type": "application/json;charset=utf-8"}, body
        if provider.startswith("bank:"):
            code = provider[5:]
            payload: dict[str, Any] = {
                "msg_type": "QUERY_RESPONSE",
                "bank_code": code,
                "merchant_no": self.merchant_no,
                "order_no": order_no,
            }
            if order is None:
                payload["result"] = "NOT_FOUND"
            else:
                payload |= {
                    "result": "FOUND",
                    "status": {
                        "succeeded": "SUCCESS",
                        "closed": "CLOSED",
                        "failed": "FAILED",
                        "pending": "PROCESSING",
                    }[order.status],
                    "bank_serial_no": order.txn_id or "",
                    "amount_fen": order.amount_fen,
                    "paid_time": to_shanghai(order.paid_at, "%Y%m%d%H%M%S") if order.paid_at else "",
                }
            return self._bank_answer(code, payload, now)
        raise ValueError(f"unknown provider {provider!r}")

    # ---------------------------------------------------------------------------------- refunds
    def script_refunds(self, *outcomes: str) -> None:
        """The answers to the next refund requests, in order: ``"error"`` (the provider's system error:
        retry), ``"refuse"`` (a business refusal); afterwards requests are handled normally."""
        self._refund_script.extend(outcomes)

    def take_refund_notices(self) -> list[SimCallback]:
        """The refund notices the providers would now send (each accepted refund once), and forget them."""
        notices, self.refund_notices = self.refund_notices, []
        return notices

    def refund(
        self,
        provider: Provider,
        *,
        refund_no: str,
        order_no: str,
        txn_id: str,
        refund_fen: int,
        now: datetime,
    ) -> tuple[str, str]:
        """The provider handles a refund request: ``("accepted" | "retry" | "refused", reason code)``. The
        same refund number again is the same refund (accepted once, its notice sent once); a refund of an
        unknown or unpaid trade, or beyond what is left of it, is refused."""
        self.refund_requests.append((provider, refund_no))
        if self._refund_script:
            scripted = self._refund_script.pop(0)
            return ("retry", "SYSTEM_ERROR") if scripted == "error" else ("refused", "NOT_ENOUGH")
        if (provider, refund_no) in self.refunds:
            return "accepted", ""
        order = self.orders.get((provider, order_no))
        if order is None and provider.startswith("bank:"):  # the bank's own withholding debit
            order = self.orders.get((f"withholding:{provider.removeprefix('bank:')}", order_no))
        if order is None or order.status != "succeeded" or order.txn_id != txn_id:
            return "refused", "TRADE_NOT_EXIST"
        done = sum(f for (p, _), (o, f) in self.refunds.items() if p == provider and o == order_no)
        if refund_fen > order.amount_fen - done:
            return "refused", "REFUND_AMOUNT_EXCEEDED"
        self.refunds[(provider, refund_no)] = (order_no, refund_fen)
        if provider == "wechat":
            notice = self.wechat_refund_callback(
                order_no,
                refund_fen,
                txn_id=txn_id,
                out_refund_no=refund_no,
                total_fen=order.amount_fen,
                now=now,
            )
        elif provider == "alipay":
            notice = self.alipay_callback(
                order_no,
                order.amount_fen,
                txn_id,
                order.paid_at,
                now=now,
                trade_status="TRADE_CLOSED" if done + refund_fen == order.amount_fen else "TRADE_SUCCESS",
                refund_fen=refund_fen,
                out_biz_no=refund_no,
            )
        else:
            notice = self.bank_callback(
                provider[5:], order_no, refund_fen, now=now, status="SUCCESS", msg_type="REFUND_NOTIFY",
                refund_no=refund_no,
            )  # fmt: skip
        self.refund_notices.append(notice)
        return "accepted", ""

    # ----------------------------------------------------------------------------- withholding
    def withholding_result(
        self,
        request_file: bytes,
        *,
        failures: Mapping[str, str] | None = None,
        processed_at: datetime | None = None,
    ) -> bytes:
        """The bank's result file (:mod:`.withholding`) for a withholding request file: every line debited
        (``SUCCESS`` with a new bank serial no) except those ``failures`` names, by order no or by our
        account no, with the bank's reason code (e.g. ``INSUFFICIENT_FUNDS``, ``ACCOUNT_CLOSED``). The
        debited lines enter the order book as paid to ``withholding:<bank>``."""
        batch = withholding.parse_request_file(request_file)
        failures = failures or {}
        processed_at = self._now(processed_at)
        provider = f"withholding:{batch.bank_code}"
        lines = []
        for item in batch.items:
            reason = failures.get(item.order_no) or failures.get(item.account_no)
            if reason:
                lines.append(withholding.ResultLine(item.order_no, "FAILED", "", item.amount_fen, reason))
                self._record(provider, item.order_no, item.amount_fen, "failed", None, None)
                continue
            serial = f"{batch.bank_code.upper()}{processed_at.astimezone(SHANGHAI):%Y%m%d}{self._next():010d}"
            lines.append(withholding.ResultLine(item.order_no, "SUCCESS", serial, item.amount_fen))
            self._record(provider, item.order_no, item.amount_fen, "succeeded", serial, processed_at)
        return withholding.build_result_file(
            batch.batch_no, batch.merchant_no, batch.bank_code, lines, processed_at=processed_at
        )

    # ------------------------------------------------------------------------------ statements
    def statement_entries(
        self, provider: Provider, day: date, *, fee_per_mille: int = 0
    ) -> list[StatementEntry]:
        """The provider's paid orders of a Beijing ``day`` (from its order book) as statement entries; fee =
        amount × ``fee_per_mille`` / 1000, rounded half up to the fen (0 for banks)."""
        out = []
        for order in self.orders.values():
            if order.provider != provider or order.status != "succeeded" or order.paid_at is None:
                continue
            if order.paid_at.astimezone(SHANGHAI).date() != day:
                continue
            fee = 0 if provider.startswith("bank:") else (order.amount_fen * fee_per_mille + 500) // 1000
            out.append(
                StatementEntry(
                    order.txn_id or "", order.order_no, order.amount_fen, order.paid_at, fee_fen=fee
                )
            )
        return sorted(out, key=lambda e: (e.occurred_at, e.order_no))

    def statement_csv(
        self, provider: Provider, day: date, lines: Iterable[_Entry] | None = None, *, fee_per_mille: int = 0
    ) -> bytes:
        """:func:`statement_csv` with this simulator's identities (and its own entries by default)."""
        entries = (
            list(lines)
            if lines is not None
            else self.statement_entries(provider, day, fee_per_mille=fee_per_mille)
        )
        return statement_csv(
            provider, day, entries, mchid=self.mchid, appid=self.appid, alipay_account=self.alipay_seller_id
        )

    def statement_download(self, provider: Provider, day: date) -> bytes | None:
        """The day's statement as the provider's download serves it (Alipay's: a zip of the GBK detail
        and summary files); None while the day is in :attr:`statements_not_ready`."""
        self.statement_requests.append((provider, day))
        if (provider, day) in self.statements_not_ready:
            return None
        csv_bytes = self.statement_csv(provider, day)
        if provider != "alipay":
            return csv_bytes
        stem = f"{self.alipay_seller_id}_{day:%Y%m%d}"
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(f"{stem}_业务明细.csv", csv_bytes)  # already GBK, as Alipay writes it
            archive.writestr(f"{stem}_业务明细(汇总).csv", "#支付宝业务汇总查询\n".encode("gbk"))
        return out.getvalue()

    def _statement_token(self, content: bytes) -> str:
        token = secrets.token_urlsafe(16)
        self._statement_files[token] = content
        return token

    # --------------------------------------------------------------------------------- HTTP side
    def asgi_app(self) -> Any:
        """The providers' query and pay endpoints over HTTP (Starlette), signed as the providers sign and
        checking our requests' signatures (401 when they do not verify)."""
        from starlette.applications import Starlette
        from starlette.requests import Request
        from starlette.responses import Response
        from starlette.routing import Route

        def respond(answer: tuple[int, dict[str, str], bytes]) -> Response:
            status, headers, body = answer
            media = headers.pop("Content-Type", "application/json")
            return Response(body, status_code=status, headers=headers, media_type=media)

        def wechat_authorized(request: Request, body: bytes) -> bool:
            auth = request.headers.get("authorization", "")
            if not auth.startswith(SIGNATURE_TYPE + " "):
                return False
            fields = dict(
                part.split("=", 1) for part in auth[len(SIGNATURE_TYPE) + 1 :].split(",") if "=" in part
            )
            fields = {k.strip(): v.strip().strip('"') for k, v in fields.items()}
            path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            message = (
                f"{request.method}\n{path}\n{fields.get('timestamp')}\n{fields.get('nonce_str')}\n".encode()
                + body
                + b"\n"
            )
            try:
                rsa_sha256_verify(self._wechat_merchant_public, message, fields.get("signature", ""))
            except CallbackRejected:
                return False
            return fields.get("mchid") == self.mchid

        async def wechat_query(request: Request) -> Response:
            if not wechat_authorized(request, b""):
                return Response(status_code=401)
            return respond(self.query("wechat", request.path_params["order_no"]))

        async def wechat_prepay(request: Request) -> Response:
            body = await request.body()
            if not wechat_authorized(request, body):
                return Response(status_code=401)
            data = json.loads(body)
            self.register_order("wechat", data["out_trade_no"], data["amount"]["total"])
            answer = _compact({"prepay_id": f"wx{secrets.token_hex(14)}"})
            return respond((200, self._wechat_signed_headers(answer, self._now(None)), answer))

        def wechat_signed(status: int, data: dict[str, Any]) -> Response:
            body = _compact(data)
            return respond((status, self._wechat_signed_headers(body, self._now(None)), body))

        async def wechat_tradebill(request: Request) -> Response:
            if not wechat_authorized(request, b""):
                return wechat_signed(401, {"code": "SIGN_ERROR", "message": "签名错误"})
            day = date.fromisoformat(request.query_params["bill_date"])
            content = self.statement_download("wechat", day)
            if content is None:
                return wechat_signed(400, {"code": "STATEMENT_CREATING", "message": "账单生成中"})
            token = self._statement_token(content)
            return wechat_signed(
                200,
                {
                    "hash_type": "SHA1",
                    "hash_value": hashlib.sha1(content).hexdigest(),  # noqa: S324 - WeChat Pay's own choice
                    "download_url": f"{str(request.base_url).rstrip('/')}/v3/billdownload/file?token={token}",
                },
            )

        async def wechat_billfile(request: Request) -> Response:
            if not wechat_authorized(request, b""):
                return Response(status_code=401)
            content = self._statement_files.pop(request.query_params.get("token", ""), None)
            if content is None:
                return Response(status_code=404)
            return Response(content, media_type="application/octet-stream")

        async def alipay_billfile(request: Request) -> Response:
            content = self._statement_files.pop(request.query_params.get("token", ""), None)
            if content is None:
                return Response(status_code=404)
            return Response(content, media_type="application/zip")

        async def wechat_refund(request: Request) -> Response:
            body = await request.body()
            if not wechat_authorized(request, body):
                return wechat_signed(401, {"code": "SIGN_ERROR", "message": "签名错误"})
            data = json.loads(body)
            now = self._now(None)
            outcome, code = self.refund(
                "wechat",
                refund_no=data["out_refund_no"],
                order_no=data["out_trade_no"],
                txn_id=data["transaction_id"],
                refund_fen=data["amount"]["refund"],
                now=now,
            )
            if outcome == "retry":
                return wechat_signed(500, {"code": code, "message": "系统错误"})
            if outcome == "refused":
                return wechat_signed(403, {"code": code, "message": "退款被拒绝"})
            return wechat_signed(
                200,
                {
                    "refund_id": f"50300{now:%Y%m%d}{self._next():010d}",
                    "out_refund_no": data["out_refund_no"],
                    "transaction_id": data["transaction_id"],
                    "out_trade_no": data["out_trade_no"],
                    "channel": "ORIGINAL",
                    "user_received_account": "支付用户零钱",
                    "create_time": _rfc3339_shanghai(now),
                    "status": "PROCESSING",
                    "amount": data["amount"],
                },
            )

        def alipay_answer(node_name: str, node: dict[str, Any]) -> Response:
            node_text = json.dumps(node, ensure_ascii=False, separators=(",", ":"))
            sign = rsa_sha256_sign(self._alipay_key, node_text.encode())
            body = ('{"' + node_name + '":' + node_text + ',"sign":"' + sign + '"}').encode()
            return respond((200, {"Content-Type": "application/json;charset=utf-8"}, body))

        async def alipay_gateway(request: Request) -> Response:
            params = dict(parse_qsl((await request.body()).decode("ascii"), keep_blank_values=True))
            try:
                rsa_sha256_verify(
                    self._alipay_app_public,
                    sign_content(params, for_request=True).encode(),
                    params.get("sign", ""),
                )
            except CallbackRejected:
                return Response(status_code=401)
            if params.get("app_id") != self.alipay_app_id:
                return Response(status_code=400)
            biz = json.loads(params["biz_content"])
            if params.get("method") == BILL_METHOD:
                content = self.statement_download("alipay", date.fromisoformat(biz["bill_date"]))
                if content is None:
                    node = {"code": "40004", "msg": "Business Failed", "sub_code": "isp.bill_not_exist",
                            "sub_msg": "账单不存在"}  # fmt: skip
                else:
                    token = self._statement_token(content)
                    url = f"{str(request.base_url).rstrip('/')}/alipay/bill/download?token={token}"
                    node = {"code": "10000", "msg": "Success", "bill_download_url": url}
                return alipay_answer(BILL_NODE, node)
            if params.get("method") == "alipay.trade.refund":
                fen = yuan_to_fen(biz["refund_amount"])
                outcome, code = self.refund(
                    "alipay",
                    refund_no=biz["out_request_no"],
                    order_no=biz["out_trade_no"],
                    txn_id=biz["trade_no"],
                    refund_fen=fen,
                    now=self._now(None),
                )
                if outcome == "accepted":
                    node = {
                        "code": "10000",
                        "msg": "Success",
                        "trade_no": biz["trade_no"],
                        "out_trade_no": biz["out_trade_no"],
                        "buyer_logon_id": "159****5620",
                        "fund_change": "Y",
                        "refund_fee": biz["refund_amount"],
                    }
                elif outcome == "retry":
                    node = {
                        "code": "20000",
                        "msg": "Service Currently Unavailable",
                        "sub_code": "aop.unknow-error",
                    }
                else:
                    node = {
                        "code": "40004",
                        "msg": "Business Failed",
                        "sub_code": f"ACQ.{code}",
                        "sub_msg": "退款失败",
                    }
                return alipay_answer("alipay_trade_refund_response", node)
            if params.get("method") != "alipay.trade.query":
                return Response(status_code=400)
            return respond(self.query("alipay", biz["out_trade_no"]))

        async def bank_api(request: Request) -> Response:
            code, body = request.path_params["code"], await request.body()
            if code not in self._merchant_verifiers:
                return Response(status_code=404)
            data = self._bank_request(code, request.headers, body)
            if data is None:
                return Response(status_code=401)
            if request.path_params["op"] == "statement":
                day = datetime.strptime(data["bill_date"], "%Y%m%d").date()  # noqa: DTZ007 - a date
                content = self.statement_download(f"bank:{code}", day)
                answer = {
                    "msg_type": "STATEMENT_RESPONSE",
                    "bank_code": code,
                    "merchant_no": self.merchant_no,
                    "bill_date": data["bill_date"],
                    "return_code": "1001" if content is None else "0000",
                    "return_msg": "对账文件未生成" if content is None else "成功",
                    "file_name": f"{code.upper()}_{self.merchant_no}_{data['bill_date']}.csv",
                    "file_sha256": hashlib.sha256(content or b"").hexdigest(),
                    "file_content": base64.b64encode(content or b"").decode("ascii"),
                }
                return respond(self._bank_answer(code, answer, self._now(None)))
            if request.path_params["op"] == "refund":
                outcome, _reason = self.refund(
                    f"bank:{code}",
                    refund_no=data["refund_no"],
                    order_no=data["order_no"],
                    txn_id=data["bank_serial_no"],
                    refund_fen=data["refund_amount_fen"],
                    now=self._now(None),
                )
                return_code = {"accepted": "0000", "retry": "9000"}.get(outcome, "2002")
                answer = {
                    "msg_type": "REFUND_RESPONSE",
                    "bank_code": code,
                    "merchant_no": self.merchant_no,
                    "refund_no": data["refund_no"],
                    "return_code": return_code,
                    "return_msg": {"0000": "受理成功", "9000": "系统繁忙"}.get(return_code, "不可退款"),
                    "bank_refund_serial_no": f"RF{self._next():012d}" if outcome == "accepted" else "",
                }
                return respond(self._bank_answer(code, answer, self._now(None)))
            if request.path_params["op"] == "pay":
                self.register_order(f"bank:{code}", data["order_no"], data["amount_fen"])
                answer = {
                    "msg_type": "PAY_RESPONSE",
                    "bank_code": code,
                    "merchant_no": self.merchant_no,
                    "order_no": data["order_no"],
                    "return_code": "0000",
                    "return_msg": "受理成功",
                }
                return respond(self._bank_answer(code, answer, self._now(None)))
            return respond(self.query(f"bank:{code}", data["order_no"]))

        return Starlette(
            routes=[
                Route("/v3/pay/transactions/out-trade-no/{order_no}", wechat_query, methods=["GET"]),
                Route("/v3/pay/transactions/app", wechat_prepay, methods=["POST"]),
                Route("/v3/refund/domestic/refunds", wechat_refund, methods=["POST"]),
                Route("/v3/bill/tradebill", wechat_tradebill, methods=["GET"]),
                Route("/v3/billdownload/file", wechat_billfile, methods=["GET"]),
                Route("/alipay/bill/download", alipay_billfile, methods=["GET"]),
                Route("/gateway.do", alipay_gateway, methods=["POST"]),
                Route("/bank/{code}/api/{op:str}", bank_api, methods=["POST"]),
            ]
        )


# ---------------------------------------------------------------------------------------- delivery
async def deliver(
    url: str | Callable[[SimCallback], str],
    callbacks: Sequence[SimCallback],
    *,
    copies: int = 3,
    concurrency: int = 32,
    shuffle: bool = True,
    max_delay: float = 0.05,
    seed: int | None = None,
    client: Any = None,
    request_timeout: float = 30.0,
) -> list[Delivery]:
    """POST every callback ``copies`` times: shuffled across callbacks and copies (out of order), at most
    ``concurrency`` in flight, each after a random delay in ``[0, max_delay]`` seconds (late). ``url`` is
    the service's base URL (the callback's ``path`` is appended) or a function of the callback giving the
    full URL. ``client``: an ``httpx.AsyncClient`` to use (e.g. on an ASGI transport); else one is made.
    Returns every attempt, in completion order; a transport error is recorded, never raised."""
    import httpx

    rng = random.Random(seed)  # noqa: S311 - delivery order and delays, not secrets
    jobs = [(cb, i) for cb in callbacks for i in range(copies)]
    if shuffle:
        rng.shuffle(jobs)
    delays = [rng.uniform(0, max_delay) if max_delay > 0 else 0.0 for _ in jobs]
    limit = asyncio.Semaphore(concurrency)
    results: list[Delivery] = []

    def target(cb: SimCallback) -> str:
        return url(cb) if callable(url) else url.rstrip("/") + cb.path

    async def one(http: Any, cb: SimCallback, copy: int, delay: float) -> None:
        async with limit:
            if delay:
                await asyncio.sleep(delay)
            started = time.perf_counter()
            try:
                response = await http.post(target(cb), content=cb.body, headers=cb.headers)
            except httpx.HTTPError as exc:
                results.append(Delivery(cb, copy, None, b"", time.perf_counter() - started, repr(exc)))
                return
            results.append(
                Delivery(cb, copy, response.status_code, response.content, time.perf_counter() - started)
            )

    async def run(http: Any) -> None:
        await asyncio.gather(*(one(http, cb, copy, d) for (cb, copy), d in zip(jobs, delays, strict=True)))

    if client is not None:
        await run(client)
    else:
        async with httpx.AsyncClient(timeout=request_timeout) as http:
            await run(http)
    return results


# -------------------------------------------------------------------------------------- statements
WECHAT_HEADER = (
    "交易时间",
    "公众账号ID",
    "商户号",
    "微信订单号",
    "商户订单号",
    "交易类型",
    "交易状态",
    "订单金额",
    "退款金额",
    "手续费",
)
WECHAT_SUMMARY = ("总交易单数", "应结订单总金额", "退款总金额", "手续费总金额")
ALIPAY_HEADER = (
    "支付宝交易号",
    "商户订单号",
    "业务类型",
    "商品名称",
    "创建时间",
    "完成时间",
    "订单金额（元）",
    "商家实收（元）",
    "服务费（元）",
    "退款批次号/请求号",
)
BANK_HEADER = ("bank_serial_no", "order_no", "amount_fen", "status", "paid_at")


def _signed_yuan(fen: int) -> str:
    return ("-" if fen < 0 else "") + fen_to_yuan(abs(fen))


def _kind(entry: _Entry) -> str:
    return str(getattr(entry.kind, "value", entry.kind))


def _check_entry(entry: _Entry) -> None:
    if isinstance(entry.amount_fen, bool) or not isinstance(entry.amount_fen, int) or entry.amount_fen <= 0:
        raise ValueError(f"amount_fen must be a positive int: {entry!r}")
    if _kind(entry) not in ("payment", "refund"):
        raise ValueError(f"kind must be payment or refund: {entry!r}")
    require_aware(entry.occurred_at)


def _csv(rows: Iterable[Sequence[str]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerows(rows)
    return out.getvalue()


def statement_csv(
    provider: Provider,
    day: date,
    lines: Iterable[_Entry],
    *,
    mchid: str = "1900000109",
    appid: str = "wxd678efh567hg6787",
    alipay_account: str = "2088000000000001",
) -> bytes:
    """A provider's daily statement file (formats in the module docstring) from ``lines``
    (:class:`StatementEntry`, or anything with the same fields)."""
    entries = sorted(lines, key=lambda e: (e.occurred_at, e.order_no))
    for entry in entries:
        _check_entry(entry)
    payments = [e for e in entries if _kind(e) == "payment"]
    refunds = [e for e in entries if _kind(e) == "refund"]
    if provider == "wechat":
        rows = [list(WECHAT_HEADER)]
        for e in entries:
            refund = _kind(e) == "refund"
            order_amount = (getattr(e, "order_amount_fen", None) or e.amount_fen) if refund else e.amount_fen
            cells = [
                to_shanghai(e.occurred_at),
                appid,
                mchid,
                e.provider_txn_id,
                e.order_no,
                "APP",
                "REFUND" if refund else "SUCCESS",
                fen_to_yuan(order_amount),
                fen_to_yuan(e.amount_fen if refund else 0),
                _signed_yuan(e.fee_fen or 0),
            ]
            rows.append(["`" + c for c in cells])
        summary = [
            str(len(entries)),
            fen_to_yuan(sum(e.amount_fen for e in payments)),
            fen_to_yuan(sum(e.amount_fen for e in refunds)),
            _signed_yuan(sum(e.fee_fen or 0 for e in entries)),
        ]
        text = _csv(rows) + "\n" + _csv([list(WECHAT_SUMMARY), ["`" + c for c in summary]])
        return text.encode("utf-8")
    if provider == "alipay":
        rule = "#" + "-" * 41
        start, end = day, day + timedelta(days=1)
        head = [
            "#支付宝业务明细查询",
            f"#账号：[{alipay_account}]",
            f"#起始日期：[{start:%Y年%m月%d日} 00:00:00]   终止日期：[{end:%Y年%m月%d日} 00:00:00]",
            f"{rule}业务明细列表{rule[1:]}",
        ]
        rows = [list(ALIPAY_HEADER)]
        for e in entries:
            refund = _kind(e) == "refund"
            sign = -1 if refund else 1
            fee = e.fee_fen or 0
            rows.append(
                [
                    e.provider_txn_id,
                    e.order_no,
                    "退款" if refund else "交易",
                    getattr(e, "description", "缴费"),
                    to_shanghai(e.occurred_at - timedelta(seconds=1)),
                    to_shanghai(e.occurred_at),
                    _signed_yuan(sign * e.amount_fen),
                    _signed_yuan(sign * (e.amount_fen - fee)),
                    _signed_yuan(fee),
                    (e.refund_no or "") if refund else "",
                ]
            )
        tail = [
            f"{rule}业务明细列表结束{rule[1:]}",
            f"#交易合计：{len(payments)}笔，共{fen_to_yuan(sum(e.amount_fen for e in payments))}元",
            f"#退款合计：{len(refunds)}笔，共{_signed_yuan(-sum(e.amount_fen for e in refunds))}元",
            f"#导出时间：[{end:%Y年%m月%d日} 08:00:00]",
        ]
        text = "\n".join(head) + "\n" + _csv(rows) + "\n".join(tail) + "\n"
        return text.encode("gbk")
    if provider.startswith("bank:"):
        if refunds:
            raise ValueError("bank statements list payments only")
        rows = [list(BANK_HEADER)]
        for e in entries:
            paid = require_aware(e.occurred_at).astimezone(SHANGHAI).isoformat(timespec="seconds")
            rows.append([e.provider_txn_id, e.order_no, str(e.amount_fen), "SUCCESS", paid])
        rows.append(["TOTAL", str(len(entries)), str(sum(e.amount_fen for e in entries))])
        return _csv(rows).encode("utf-8")
    raise ValueError(f"unknown provider {provider!r}")
