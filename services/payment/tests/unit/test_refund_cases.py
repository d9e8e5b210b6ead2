"""The refund case state machine: a case is refunded through ``refunding`` (which a rejected refund undoes)
or applied at once; a resolved case never moves again."""

from __future__ import annotations

import pytest

from payment.domain.refund_cases import CaseStatus, Resolution, can_move, target_of


def test_resolutions_take_an_open_case_to_refunding_or_applied() -> None:
    assert target_of(Resolution.REFUND) is CaseStatus.REFUNDING
    assert target_of(Resolution.TOP_UP) is CaseStatus.APPLIED
    assert can_move(CaseStatus.OPEN, CaseStatus.REFUNDING) and can_move(CaseStatus.OPEN, CaseStatus.APPLIED)


def test_a_refund_in_progress_ends_refunded_or_reopens_the_case() -> None:
    assert can_move(CaseStatus.REFUNDING, CaseStatus.REFUNDED)
    assert can_move(CaseStatus.REFUNDING, CaseStatus.OPEN)
    assert not can_move(CaseStatus.REFUNDING, CaseStatus.APPLIED)  # the money may be leaving
    assert not can_move(CaseStatus.OPEN, CaseStatus.REFUNDED)  # only the provider's notice refunds


@pytest.mark.parametrize("final", [CaseStatus.REFUNDED, CaseStatus.APPLIED, CaseStatus.DISMISSED])
def test_a_resolved_case_never_moves_again(final) -> None:
    assert not any(can_move(final, target) for target in CaseStatus)
