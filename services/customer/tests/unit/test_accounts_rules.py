"""Account numbers and the lifecycle rules."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from customer.domain import accounts as rules
from customer.domain.accounts import AccountStatus, Utility
from customer.domain.premises import address_key, format_address


@given(st.sampled_from(list(Utility)), st.integers(min_value=1, max_value=10**9 - 1))
def test_issued_numbers_validate_and_every_single_digit_error_is_caught(utility: Utility, seq: int) -> None:
    no = rules.issue_account_no(utility, seq)
    assert len(no) == 11 and no[0] == rules.UTILITY_DIGIT[utility] and rules.is_valid_issued_account_no(no)
    for i in range(1, 11):
        for d in "0123456789":
            if d != no[i]:
                assert not rules.is_valid_issued_account_no(no[:i] + d + no[i + 1 :])


@given(st.integers(min_value=1, max_value=10**9 - 1))
def test_adjacent_transpositions_are_caught(seq: int) -> None:
    no = rules.issue_account_no(Utility.GAS, seq)
    for i in range(1, 10):
        swapped = no[:i] + no[i + 1] + no[i] + no[i + 2 :]
        # Luhn misses only the 0<->9 swap.
        if swapped != no and {no[i], no[i + 1]} != {"0", "9"}:
            assert not rules.is_valid_issued_account_no(swapped)


def test_known_number() -> None:
    # Heating, sequence 1: body 1000000001; Luhn over it gives 7 (worked: doubled digits 1*2... sum 3 -> 7).
    assert rules.issue_account_no(Utility.HEATING, 1) == "10000000017"


def test_lifecycle_transitions() -> None:
    rules.check_suspend(AccountStatus.ACTIVE)
    rules.check_resume(AccountStatus.SUSPENDED)
    rules.check_close(AccountStatus.SUSPENDED, outstanding_fen=0)
    rules.check_transfer(AccountStatus.SUSPENDED, None, same_holder=False)
    with pytest.raises(rules.LifecycleError) as e:
        rules.check_suspend(AccountStatus.SUSPENDED)
    assert e.value.code == "account_not_active"
    with pytest.raises(rules.LifecycleError) as e:
        rules.check_resume(AccountStatus.ACTIVE)
    assert e.value.code == "account_not_suspended"
    with pytest.raises(rules.LifecycleError) as e:
        rules.check_close(AccountStatus.ACTIVE, outstanding_fen=1)
    assert e.value.code == "outstanding_balance"
    with pytest.raises(rules.LifecycleError) as e:
        rules.check_transfer(AccountStatus.CLOSED, 0, same_holder=False)
    assert e.value.code == "account_closed"
    with pytest.raises(rules.LifecycleError) as e:
        rules.check_transfer(AccountStatus.ACTIVE, 0, same_holder=True)
    assert e.value.code == "transfer_to_same_customer"


@pytest.mark.parametrize(
    "parts",
    [
        ("南岗区", "学府四道街小区", "12", "3", "502"),
        ("南岗区", "学府四道街小区", "12栋", "3单元", "502室"),
        (" 南岗区", "学府四道街 小区", "１２号楼", "３", "５０２"),
    ],
)
def test_one_dwelling_one_address_key(parts: tuple[str, ...]) -> None:
    assert address_key(*parts) == "南岗区|学府四道街小区|12|3|502"
    assert format_address(*parts) == "南岗区学府四道街小区12栋3单元502室"


def test_different_rooms_differ() -> None:
    assert address_key("道里区", "中海锦城", "1", "1", "101") != address_key(
        "道里区", "中海锦城", "1", "1", "102"
    )
