"""The Locust scenarios' knobs, from environment variables (``LOADTEST_*``); docs/capacity.md explains the
defaults. Times are seconds."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


def _f(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


@dataclass(frozen=True)
class Knobs:
    pool: Path  # the pool written by loadtests.prepare
    out: Path  # where the provider's ledger goes
    sms_log: Path  # the gateway API's log, where the development SMS adapter writes codes
    provider_keys: Path  # the provider simulator's key bundle (payment dev-keys)
    # Residents: think time between two screens, share of sessions that pay when something is owed, WeChat's
    # share of those payments (the rest Alipay), providers' second notification of a payment.
    think_min: float
    think_max: float
    pay_share: float
    wechat_share: float
    renotify_share: float
    settle_timeout: float  # how long a resident waits to see the bill paid before calling it a failure
    poll_seconds: float  # how often the app refreshes the amount due while waiting
    # Staff: agents' think time; user-class weights (residents : agents).
    agent_think_min: float
    agent_think_max: float
    resident_weight: int
    agent_weight: int
    bank_rate: float  # bank direct-connect payments per second (one bank user; 0: none)
    bank_code: str

    @staticmethod
    def from_env() -> Knobs:
        local = Path(os.environ.get("UTILIS_LOCAL_DIR", Path(__file__).resolve().parents[1] / ".local"))
        out = Path(os.environ.get("LOADTEST_OUT", local / "loadtest" / "last"))
        return Knobs(
            pool=Path(os.environ.get("LOADTEST_POOL", out / "pool.json")),
            out=out,
            sms_log=Path(os.environ.get("LOADTEST_SMS_LOG", local / "logs" / "gateway-api.log")),
            provider_keys=Path(
                os.environ.get("LOADTEST_PROVIDER_KEYS", local / "keys" / "payment-providers.json")
            ),
            think_min=_f("LOADTEST_THINK_MIN", 1.0),
            think_max=_f("LOADTEST_THINK_MAX", 3.0),
            pay_share=_f("LOADTEST_PAY_SHARE", 0.3),
            wechat_share=_f("LOADTEST_WECHAT_SHARE", 0.6),
            renotify_share=_f("LOADTEST_RENOTIFY_SHARE", 0.1),
            settle_timeout=_f("LOADTEST_SETTLE_TIMEOUT", 30.0),
            poll_seconds=_f("LOADTEST_POLL_SECONDS", 1.0),
            agent_think_min=_f("LOADTEST_AGENT_THINK_MIN", 2.0),
            agent_think_max=_f("LOADTEST_AGENT_THINK_MAX", 6.0),
            resident_weight=int(_f("LOADTEST_RESIDENT_WEIGHT", 19)),
            agent_weight=int(_f("LOADTEST_AGENT_WEIGHT", 1)),
            bank_rate=_f("LOADTEST_BANK_RATE", 1.0),
            bank_code=os.environ.get("LOADTEST_BANK_CODE", "icbc"),  # RSA2; boc signs SM2 (~30 ms a check)
        )
