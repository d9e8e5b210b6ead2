"""The adapters' shared rules: yuan strings to fen exactly, the timestamp window, replay by nonce."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from payment.adapters.providers.base import (
    CallbackNotice,
    CallbackRejected,
    InMemoryNonceStore,
    check_replay,
    check_window,
    fen_to_yuan,
    shanghai_time,
    yuan_to_fen,
)

from .conftest import NOW


@pytest.mark.parametrize(
    ("text", "fen"),
    [
        ("12.34", 1234),
        ("0.01", 1),
        ("0.10", 10),
        ("12.3", 1230),
        ("100", 10000),
        ("0", 0),
        ("0.00", 0),
        ("99999999.99", 9999999999),
    ],
)
def test_yuan_strings_become_fen_exactly(text: str, fen: int) -> None:
    assert yuan_to_fen(text) == fen


@pytest.mark.parametrize(
    "text",
    [
        "1.005",
        "12.345",
        "-1.00",
        "+1.00",
        "1e2",
        "1E-2",
        " 1.00",
        "1.00 ",
        "01.00",
        "1.",
        ".50",
        "",
        "NaN",
        "Infinity",
        "1,000.00",
        "１２.００",
        "0x10",
        "1_000",
    ],
)
def test_malformed_yuan_strings_are_refused(text: str) -> None:
    with pytest.raises(CallbackRejected) as err:
        yuan_to_fen(text)
    assert err.value.code == "bad_amount"


@given(st.integers(min_value=0, max_value=10**14))
def test_fen_to_yuan_round_trips(fen: int) -> None:
    assert yuan_to_fen(fen_to_yuan(fen)) == fen


def test_fen_to_yuan_refuses_negative_and_non_int() -> None:
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError):
            fen_to_yuan(bad)  # type: ignore[arg-type]


def test_beijing_wall_clock_is_converted_to_utc() -> None:
    assert shanghai_time("2026-11-23 10:15:30") == NOW
    with pytest.raises(CallbackRejected):
        shanghai_time("2026/11/23 10:15:30")


def test_window_is_checked_in_both_directions() -> None:
    window = timedelta(minutes=5)
    check_window(NOW - window, NOW, window)
    check_window(NOW + window, NOW, window)
    for off in (window + timedelta(seconds=1), -window - timedelta(seconds=1)):
        with pytest.raises(CallbackRejected) as err:
            check_window(NOW + off, NOW, window)
        assert err.value.code == "stale_timestamp"


def _notice(nonce: str | None, timestamp=NOW) -> CallbackNotice:
    return CallbackNotice("wechat", "T1", "P1", 100, "succeeded", NOW, nonce, timestamp, {})


async def test_a_nonce_seen_twice_within_the_window_is_a_replay() -> None:
    clock = [NOW]
    store = InMemoryNonceStore(timedelta(minutes=5), clock=lambda: clock[0])
    notice = _notice("N1")
    await check_replay(notice, store, NOW)  # first delivery passes
    await store.remember("wechat", "N1")  # remembered after the commit
    with pytest.raises(CallbackRejected) as err:
        await check_replay(notice, store, NOW + timedelta(seconds=1))
    assert err.value.code == "replayed"
    # another provider's identical nonce is not a replay
    await check_replay(CallbackNotice("alipay", "T1", "P1", 100, "succeeded", NOW, "N1", NOW, {}), store, NOW)


async def test_the_store_forgets_after_the_window_and_the_stale_check_covers_that() -> None:
    clock = [NOW]
    store = InMemoryNonceStore(timedelta(minutes=5), clock=lambda: clock[0])
    await store.remember("wechat", "N1")
    clock[0] = NOW + timedelta(minutes=5, seconds=1)
    assert not await store.seen("wechat", "N1")
    # ... but the same notice is then outside its window: refused as stale, never applied twice
    with pytest.raises(CallbackRejected) as err:
        await check_replay(_notice("N1"), store, clock[0])
    assert err.value.code == "stale_timestamp"


async def test_a_notice_without_nonce_passes_the_replay_check() -> None:
    await check_replay(_notice(None, None), InMemoryNonceStore(), NOW)
