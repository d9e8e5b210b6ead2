"""Staff account lockout: after ``max_failures`` wrong passwords in a row, the account is locked for
``lock_for``. The counter lives in the database (``staff_users.failed_attempts`` / ``locked_until``), so
every API replica sees the same count; these rules are pure.

- A success resets the counter.
- The failure that reaches the limit locks the account and resets the counter, so after the lock expires
  the user has ``max_failures`` fresh attempts.
- Attempts while locked are refused without checking the password and do not extend the lock (otherwise
  anyone who knows a username could keep its owner out for ever).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class LockoutState:
    failed_attempts: int = 0
    locked_until: datetime | None = None


@dataclass(frozen=True)
class LockoutPolicy:
    max_failures: int = 5
    lock_for: timedelta = timedelta(minutes=15)

    def is_locked(self, state: LockoutState, now: datetime) -> bool:
        return state.locked_until is not None and now < state.locked_until

    def after_failure(self, state: LockoutState, now: datetime) -> LockoutState:
        if self.is_locked(state, now):
            return state
        failures = state.failed_attempts + 1
        if failures >= self.max_failures:
            return LockoutState(failed_attempts=0, locked_until=now + self.lock_for)
        return LockoutState(failed_attempts=failures, locked_until=None)

    def after_success(self, state: LockoutState) -> LockoutState:
        return LockoutState()
