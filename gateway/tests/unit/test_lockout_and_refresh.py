"""Lockout counting and the refresh-token family state machine: pure rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gateway.domain.lockout import LockoutPolicy, LockoutState
from gateway.domain.refresh import RefreshOutcome, TokenStatus, decide_refresh

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
policy = LockoutPolicy(max_failures=5, lock_for=timedelta(minutes=15))


def fail(state: LockoutState, times: int, now: datetime = T0) -> LockoutState:
    for _ in range(times):
        state = policy.after_failure(state, now)
    return state


def test_four_failures_do_not_lock_the_fifth_does_for_fifteen_minutes():
    four = fail(LockoutState(), 4)
    assert four == LockoutState(failed_attempts=4) and not policy.is_locked(four, T0)
    five = policy.after_failure(four, T0)
    assert five.locked_until == T0 + timedelta(minutes=15)
    assert policy.is_locked(five, T0 + timedelta(minutes=14, seconds=59))
    assert not policy.is_locked(five, T0 + timedelta(minutes=15))


def test_failures_while_locked_do_not_extend_the_lock():
    locked = fail(LockoutState(), 5)
    later = policy.after_failure(locked, T0 + timedelta(minutes=10))
    assert later == locked


def test_after_the_lock_expires_there_are_five_fresh_attempts():
    locked = fail(LockoutState(), 5)
    after = T0 + timedelta(minutes=16)
    four_more = fail(locked, 4, after)
    assert not policy.is_locked(four_more, after) and four_more.failed_attempts == 4
    assert policy.is_locked(policy.after_failure(four_more, after), after)


def test_a_success_resets_the_count_so_failures_must_be_consecutive():
    state = policy.after_success(fail(LockoutState(), 4))
    assert state == LockoutState()
    assert not policy.is_locked(fail(state, 4), T0)


def decide(**overrides) -> RefreshOutcome:
    args = {
        "status": TokenStatus.ACTIVE,
        "expires_at": T0 + timedelta(hours=1),
        "family_revoked": False,
        "family_expires_at": T0 + timedelta(days=7),
        "issued_to": "staff-console",
        "presented_by": "staff-console",
        "now": T0,
    }
    args.update(overrides)
    return decide_refresh(**args)


def test_an_active_token_is_rotated():
    assert decide() is RefreshOutcome.ROTATE


def test_a_rotated_token_coming_back_is_reuse():
    assert decide(status=TokenStatus.ROTATED) is RefreshOutcome.REUSE_DETECTED


@pytest.mark.parametrize(
    ("overrides", "outcome"),
    [
        ({"family_revoked": True}, RefreshOutcome.REVOKED),
        ({"status": TokenStatus.REVOKED}, RefreshOutcome.REVOKED),
        # Once the family is revoked, a reused token is simply refused (nothing more to revoke).
        ({"status": TokenStatus.ROTATED, "family_revoked": True}, RefreshOutcome.REVOKED),
        ({"expires_at": T0}, RefreshOutcome.EXPIRED),
        ({"family_expires_at": T0 - timedelta(seconds=1)}, RefreshOutcome.EXPIRED),
        ({"presented_by": "another-client"}, RefreshOutcome.WRONG_CLIENT),
        ({"presented_by": "another-client", "status": TokenStatus.ROTATED}, RefreshOutcome.WRONG_CLIENT),
    ],
)
def test_refusals(overrides, outcome):
    assert decide(**overrides) is outcome
