"""Resident SMS one-time codes in Redis: issue (with the anti-bombing limits) and verify (single use,
burned after too many wrong tries).

Keys (all under ``settings.redis_prefix``; ``<p>`` is the phone's blind index, never the phone):

- ``sms:code:<p>``: hash ``{digest, nonce, attempts}`` with the code's TTL. ``digest`` is an HMAC-SHA256
  of ``nonce:code`` under the blind-index key (``PiiCipher.blind_index``, field ``sms_otp``): the code is
  never stored, and a Redis dump alone does not let anyone try the million codes offline.
- ``sms:cooldown:<p>``: set for ``sms_phone_interval_seconds`` after each send.
- ``sms:day:<p>:<yyyymmdd>`` and ``sms:ip:<ip>:<yyyymmddhh>``: fixed-window counters (UTC).
"""

from __future__ import annotations

import hmac
import logging
import re
import secrets
from datetime import UTC, datetime, timedelta

from redis.asyncio import Redis

from gateway.adapters.sms import SmsSender
from gateway.settings import Settings
from utilis_shared.errors import Problem
from utilis_shared.pii import PiiCipher, mask_phone, normalise

log = logging.getLogger(__name__)
CODE_DIGITS = 6
_MAINLAND_MOBILE = re.compile(r"^1[3-9]\d{9}$")
RESIDENT_SUBJECT_PREFIX = "resident:"

# Count one try against the code atomically, only while the code exists (HINCRBY alone would recreate an
# expired code's hash without a TTL): returns {attempts, digest, nonce} or nil.
_COUNT_ATTEMPT = """
if redis.call('EXISTS', KEYS[1]) == 0 then return nil end
local n = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
return {n, redis.call('HGET', KEYS[1], 'digest'), redis.call('HGET', KEYS[1], 'nonce')}
"""


class InvalidPhone(Problem):
    status = 400
    code = "invalid_phone"


class RateLimited(Problem):
    status = 429
    code = "rate_limited"

    def __init__(self, detail: str, retry_after: int) -> None:
        retry_after = max(1, retry_after)
        super().__init__(detail, headers={"Retry-After": str(retry_after)}, retry_after=retry_after)


def normalise_phone(phone: str) -> str | None:
    """The mainland mobile number (11 digits, no +86), or None."""
    p = normalise(phone)
    return p if _MAINLAND_MOBILE.match(p) else None


def resident_subject(phone_bidx: str) -> str:
    """The token's ``sub`` for a resident: stable per phone, and no phone in it."""
    return RESIDENT_SUBJECT_PREFIX + phone_bidx[:32]


class SmsCodes:
    def __init__(self, redis: Redis, cipher: PiiCipher, sender: SmsSender, settings: Settings) -> None:
        self.redis = redis
        self.cipher = cipher
        self.sender = sender
        self.settings = settings
        self._count_attempt = redis.register_script(_COUNT_ATTEMPT)

    def phone_index(self, phone: str) -> str:
        return self.cipher.blind_index(phone, field="phone")

    def _key(self, *parts: str) -> str:
        return self.settings.redis_prefix + ":".join(parts)

    def _digest(self, nonce: str, code: str) -> str:
        return self.cipher.blind_index(f"{nonce}:{code}", field="sms_otp")

    async def send(self, phone: str, client_ip: str) -> int:
        """Send a new code to ``phone`` (replacing any earlier one); the code's lifetime in seconds.
        Raises ``RateLimited`` (429, Retry-After) past the per-IP, per-phone interval or daily limits."""
        s = self.settings
        number = normalise_phone(phone)
        if number is None:
            raise InvalidPhone("The phone number is not a mainland China mobile number.")
        now = datetime.now(UTC)
        await self._limit(
            self._key("sms", "ip", client_ip, now.strftime("%Y%m%d%H")),
            s.sms_ip_hourly_limit,
            window_end=now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1),
            now=now,
            what="this network address",
        )
        bidx = self.phone_index(number)
        cooldown = self._key("sms", "cooldown", bidx)
        if not await self.redis.set(cooldown, "1", nx=True, ex=s.sms_phone_interval_seconds):
            ttl = await self.redis.ttl(cooldown)
            raise RateLimited(
                "A code was sent to this phone moments ago; wait before asking again.",
                ttl if ttl > 0 else s.sms_phone_interval_seconds,
            )
        await self._limit(
            self._key("sms", "day", bidx, now.strftime("%Y%m%d")),
            s.sms_phone_daily_limit,
            window_end=now.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1),
            now=now,
            what="this phone today",
        )
        code = f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"
        nonce = secrets.token_hex(16)
        key = self._key("sms", "code", bidx)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(key)
            pipe.hset(key, mapping={"digest": self._digest(nonce, code), "nonce": nonce, "attempts": 0})
            pipe.expire(key, s.sms_code_ttl_seconds)
            await pipe.execute()
        await self.sender.send_code(number, code, ttl_seconds=s.sms_code_ttl_seconds)
        log.info("sms code issued", extra={"phone": mask_phone(number)})
        return s.sms_code_ttl_seconds

    async def _limit(self, key: str, limit: int, *, window_end: datetime, now: datetime, what: str) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.expire(key, int((window_end - now).total_seconds()) + 1, nx=True)
            count, _ = await pipe.execute()
        if count > limit:
            retry = int((window_end - now).total_seconds()) + 1
            raise RateLimited(f"Too many codes requested for {what}; try again later.", retry)

    async def verify(self, phone_bidx: str, code: str) -> bool:
        """True once for the right code (it is then deleted). Each try counts; the try that reaches
        ``sms_code_max_attempts`` without the right code deletes it (burned)."""
        key = self._key("sms", "code", phone_bidx)
        found = await self._count_attempt(keys=[key])
        if found is None:
            return False
        attempts, digest, nonce = int(found[0]), _text(found[1]), _text(found[2])
        if attempts > self.settings.sms_code_max_attempts:
            await self.redis.delete(key)
            return False
        if hmac.compare_digest(self._digest(nonce, code), digest):
            # Single use: of two concurrent right answers, only the one that deletes the key wins.
            return bool(await self.redis.delete(key))
        if attempts >= self.settings.sms_code_max_attempts:
            await self.redis.delete(key)
            log.info("sms code burned after wrong tries", extra={"subject": resident_subject(phone_bidx)})
        return False


def _text(value: bytes | str | None) -> str:
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else value
