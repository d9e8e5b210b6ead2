"""Registering staff and clients (CLI commands; an admin API comes with the staff console), and the
development demo set."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from gateway.adapters.crypto import SecretHasher, new_secret
from gateway.adapters.orm import OAuthClient, StaffUser
from gateway.domain.channels import CHANNELS, grant_allowed, parse_channel
from gateway.domain.scopes import unknown_scopes
from utilis_shared.auth import Role
from utilis_shared.db import UnitOfWork

ROLES = tuple(r.value for r in Role)
SMS_OTP = "urn:utilis:params:oauth:grant-type:sms-otp"
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"  # noqa: S105  # a URN
CLIENT_GRANTS = (
    "password",
    "client_credentials",
    "refresh_token",
    SMS_OTP,
    TOKEN_EXCHANGE,
)
MIN_PASSWORD_LENGTH = 10


class AdminError(ValueError):
    pass


@dataclass(frozen=True)
class Created:
    name: str
    secret: str | None  # the generated password or client secret, shown once; None if it was given


async def add_staff(
    uow: UnitOfWork,
    hasher: SecretHasher,
    *,
    username: str,
    roles: list[str],
    password: str | None = None,
    display_name: str = "",
) -> Created:
    username = username.strip().lower()
    if not username or len(username) > 64:
        raise AdminError("username must be 1 to 64 characters")
    unknown = sorted(set(roles) - set(ROLES))
    if not roles or unknown:
        raise AdminError(
            f"roles must be among {', '.join(ROLES)} (unknown: {', '.join(unknown) or 'none given'})"
        )
    if password is not None and len(password) < MIN_PASSWORD_LENGTH:
        raise AdminError(f"a password has at least {MIN_PASSWORD_LENGTH} characters")
    if await uow.session.scalar(select(StaffUser.id).where(StaffUser.username == username)):
        raise AdminError(f"staff user {username!r} already exists")
    generated = None if password is not None else new_secret()
    uow.session.add(
        StaffUser(
            username=username,
            display_name=display_name,
            password_hash=hasher.hash(password or generated or ""),
            roles=sorted(set(roles)),
            status="active",
            failed_attempts=0,
        )
    )
    await uow.session.flush()
    return Created(username, generated)


async def add_client(
    uow: UnitOfWork,
    hasher: SecretHasher,
    *,
    client_id: str,
    scopes: list[str],
    secret: str | None = None,
    name: str = "",
    channel: str = "bank",
    grant_types: list[str] | None = None,
    public: bool = False,
) -> Created:
    if not client_id or len(client_id) > 100 or any(c.isspace() or c == ":" for c in client_id):
        raise AdminError("client_id must be 1 to 100 characters, without spaces or ':'")
    unknown = unknown_scopes(scopes)
    if unknown:
        raise AdminError(f"unknown scopes: {', '.join(unknown)} (see gateway.domain.scopes.SCOPES)")
    grants = grant_types or (["password", "refresh_token"] if public else ["client_credentials"])
    if set(grants) - set(CLIENT_GRANTS):
        raise AdminError(f"grant types must be among {', '.join(CLIENT_GRANTS)}")
    if public and "client_credentials" in grants:
        raise AdminError("a public client cannot use client_credentials")
    if public and secret:
        raise AdminError("a public client has no secret")
    try:
        known = parse_channel(channel)
    except ValueError as exc:
        raise AdminError(str(exc)) from None
    refused = [g for g in grants if not grant_allowed(g, known)]
    if refused:
        raise AdminError(
            f"a {known.value} client ({CHANNELS[known].kind.value}) may not use {', '.join(sorted(refused))}"
            " (see gateway.domain.channels)"
        )
    if await uow.session.get(OAuthClient, client_id):
        raise AdminError(f"client {client_id!r} already exists")
    generated = None if public or secret else new_secret()
    uow.session.add(
        OAuthClient(
            client_id=client_id,
            name=name,
            client_type="public" if public else "confidential",
            secret_hash=None if public else hasher.hash(secret or generated or ""),
            grant_types=sorted(set(grants)),
            scopes=sorted(set(scopes)),
            channel=known.value,
            status="active",
        )
    )
    await uow.session.flush()
    return Created(client_id, generated)


# ---------------------------------------------------------------------------------------------------
# Development demo set (`gateway seed-demo`, refused outside development). Documented in the README.
DEMO_PASSWORD = "utilis-dev-2026"  # noqa: S105  # every demo staff user's; development only
DEMO_STAFF: list[tuple[str, str, list[str]]] = [
    ("agent01", "李客服", ["agent"]),
    ("agent02", "王客服", ["agent"]),
    ("dispatcher01", "张调度", ["dispatcher"]),
    ("technician01", "赵维修", ["technician"]),
    ("inspector01", "刘安检", ["inspector"]),
    ("billing01", "陈收费", ["billing_clerk"]),
    ("supervisor01", "孙主管", ["billing_supervisor"]),
    ("analyst01", "周分析", ["analyst"]),
    ("admin01", "系统管理员", ["admin"]),
]
DEMO_CLIENTS: list[dict[str, object]] = [
    {
        "client_id": "icbc-harbin",
        "name": "工商银行哈尔滨分行",
        "secret": "dev-only-icbc-harbin-secret",
        "scopes": ["accounts:read", "bills:read", "payments:write", "reconciliation:read"],
        "channel": "bank",
    },
    {
        "client_id": "hlj-regulator",
        "name": "黑龙江省住房和城乡建设厅",
        "secret": "dev-only-hlj-regulator-secret",
        "scopes": ["reports:read"],
        "channel": "regulator",
    },
    # The residents' other self-service apps (the mobile app, `mobile-app`, comes with migration 0002):
    # public clients of the SMS-code sign-in, as that one.
    {
        "client_id": "wechat-mini-program",
        "name": "微信小程序",
        "scopes": [],
        "channel": "wechat_mini_program",
        "public": True,
        "grant_types": [SMS_OTP, "refresh_token"],
    },
    {
        "client_id": "alipay-mini-program",
        "name": "支付宝小程序",
        "scopes": [],
        "channel": "alipay_mini_program",
        "public": True,
        "grant_types": [SMS_OTP, "refresh_token"],
    },
    {
        "client_id": "web-portal",
        "name": "网上营业厅",
        "scopes": [],
        "channel": "web",
        "public": True,
        "grant_types": [SMS_OTP, "refresh_token"],
    },
    # The staff tools of assisted service: staff sign in (password) and act for a resident (token exchange).
    {
        "client_id": "service-counter",
        "name": "营业厅/社区服务点",
        "scopes": [],
        "channel": "service_counter",
        "public": True,
        "grant_types": ["password", "refresh_token", TOKEN_EXCHANGE],
    },
    {
        "client_id": "hotline-desk",
        "name": "客服热线坐席",
        "scopes": [],
        "channel": "hotline",
        "public": True,
        "grant_types": ["password", "refresh_token", TOKEN_EXCHANGE],
    },
]


async def seed_demo(uow: UnitOfWork, hasher: SecretHasher) -> list[str]:
    """Add the demo staff and clients (partners, the residents' apps, the assisted-service staff tools)
    that are missing; return what was added."""
    added = []
    for username, display_name, roles in DEMO_STAFF:
        if await uow.session.scalar(select(StaffUser.id).where(StaffUser.username == username)) is None:
            await add_staff(
                uow, hasher, username=username, roles=roles, password=DEMO_PASSWORD, display_name=display_name
            )
            added.append(f"staff {username} ({', '.join(roles)})")
    for spec in DEMO_CLIENTS:
        if await uow.session.get(OAuthClient, spec["client_id"]) is None:
            await add_client(uow, hasher, **spec)  # type: ignore[arg-type]
            what = " ".join(spec["scopes"]) or spec["channel"]  # type: ignore[arg-type]
            added.append(f"client {spec['client_id']} ({what})")
    return added
