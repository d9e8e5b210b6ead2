"""Channels: where a request comes from. Every OAuth client is registered as exactly one channel, copied
into its tokens' ``channel`` claim, so requests and payments are attributed to it and the utility can
report self-service usage per channel.

The list is closed (a check constraint on ``oauth_clients.channel``, migration 0004): a new channel is a
code change here plus a migration that widens the constraint. Each channel has a kind:

* ``self_service``: the resident on their own (apps, mini-programs, web, IVR);
* ``assisted``: staff acting for a resident (service counter, hotline; RFC 8693 token exchange);
* ``partner``: another organisation's system (banks, payment providers, the regulator);
* ``back_office``: staff doing their own work (the staff console).

Which grants a client of each kind may use is decided here too (``grant_allowed``): residents' SMS sign-in
only in self-service channels, the staff password grant only where staff work, the token exchange only in
assisted channels, client credentials only for partners.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ChannelKind(StrEnum):
    SELF_SERVICE = "self_service"
    ASSISTED = "assisted"
    PARTNER = "partner"
    BACK_OFFICE = "back_office"


class Channel(StrEnum):
    MOBILE_APP = "mobile_app"
    WECHAT_MINI_PROGRAM = "wechat_mini_program"
    ALIPAY_MINI_PROGRAM = "alipay_mini_program"
    WEB = "web"
    IVR = "ivr"
    SERVICE_COUNTER = "service_counter"
    HOTLINE = "hotline"
    STAFF_CONSOLE = "staff_console"
    BANK = "bank"
    PAYMENT_PROVIDER = "payment_provider"
    REGULATOR = "regulator"


@dataclass(frozen=True)
class ChannelInfo:
    channel: Channel
    kind: ChannelKind
    label: str  # as the utility's reports name it
    description: str

    @property
    def self_service(self) -> bool:
        return self.kind is ChannelKind.SELF_SERVICE


_S, _A, _P, _B = ChannelKind.SELF_SERVICE, ChannelKind.ASSISTED, ChannelKind.PARTNER, ChannelKind.BACK_OFFICE
CHANNELS: dict[Channel, ChannelInfo] = {
    info.channel: info
    for info in (
        ChannelInfo(Channel.MOBILE_APP, _S, "手机App", "The residents' mobile app (iOS, Android)."),
        ChannelInfo(Channel.WECHAT_MINI_PROGRAM, _S, "微信小程序", "The WeChat mini-program."),
        ChannelInfo(Channel.ALIPAY_MINI_PROGRAM, _S, "支付宝小程序", "The Alipay mini-program."),
        ChannelInfo(Channel.WEB, _S, "网上营业厅", "The web self-service portal."),
        ChannelInfo(Channel.IVR, _S, "语音自助", "Interactive voice response on the service number."),
        ChannelInfo(Channel.SERVICE_COUNTER, _A, "营业厅/社区服务点", "Counter or community service point."),
        ChannelInfo(Channel.HOTLINE, _A, "客服热线", "Agents on the hotline, for the caller."),
        ChannelInfo(Channel.STAFF_CONSOLE, _B, "员工工作台", "Staff on their own work, for nobody."),
        ChannelInfo(Channel.BANK, _P, "银行", "A bank's counters and systems (bill look-up, payment)."),
        ChannelInfo(Channel.PAYMENT_PROVIDER, _P, "第三方支付", "WeChat Pay, Alipay, UnionPay, ..."),
        ChannelInfo(Channel.REGULATOR, _P, "监管部门", "The regulator's reporting system."),
    )
}
if set(CHANNELS) != set(Channel):  # pragma: no cover - a programming error, caught at import
    raise RuntimeError("every channel needs its ChannelInfo")

CHANNEL_VALUES: tuple[str, ...] = tuple(c.value for c in Channel)
SELF_SERVICE_CHANNELS = frozenset(c for c, i in CHANNELS.items() if i.kind is ChannelKind.SELF_SERVICE)
ASSISTED_CHANNELS = frozenset(c for c, i in CHANNELS.items() if i.kind is ChannelKind.ASSISTED)
PARTNER_CHANNELS = frozenset(c for c, i in CHANNELS.items() if i.kind is ChannelKind.PARTNER)
STAFF_CHANNELS = ASSISTED_CHANNELS | {Channel.STAFF_CONSOLE}

# Grant type -> the channels whose clients may use it (a grant not listed is open to every channel).
_GRANT_CHANNELS: dict[str, frozenset[Channel]] = {
    "password": STAFF_CHANNELS,
    "client_credentials": PARTNER_CHANNELS,
    "urn:utilis:params:oauth:grant-type:sms-otp": SELF_SERVICE_CHANNELS,
    "urn:ietf:params:oauth:grant-type:token-exchange": ASSISTED_CHANNELS,
}


def parse_channel(value: str) -> Channel:
    """The channel named ``value``; ``ValueError`` naming the known ones if there is none."""
    try:
        return Channel(value.strip().lower())
    except ValueError:
        raise ValueError(f"unknown channel {value[:40]!r} (one of: {', '.join(CHANNEL_VALUES)})") from None


def channel_info(value: str | None) -> ChannelInfo | None:
    """The registry entry of a token's ``channel`` claim; None for a missing or unknown one."""
    try:
        return CHANNELS[Channel(value)] if value else None
    except ValueError:
        return None


def is_self_service(value: str | None) -> bool:
    info = channel_info(value)
    return info is not None and info.self_service


def grant_allowed(grant_type: str, channel: Channel) -> bool:
    allowed = _GRANT_CHANNELS.get(grant_type)
    return allowed is None or channel in allowed


def check_constraint_sql(column: str = "channel") -> str:
    """The SQL of the check constraint on a channel column (migration 0004 writes it out literally)."""
    return f"{column} IN ({', '.join(repr(v) for v in CHANNEL_VALUES)})"
