"""Fencing decisions: where a re-fenced capture store may start, and what it is reported to have lost."""

from __future__ import annotations

import pytest

from posray.domain.fence import IssuedRanges, PriorFence, StoreMismatch, StoreState, plan_fence

STORE = "redis://r1:6379/0#posray"
R = 1000


def intact(counter: int, epoch: int = 1, reserved: int = 1000) -> StoreState:
    return StoreState(counter, counter, epoch, reserved)


class TestPlanFence:
    def test_a_first_fence_starts_above_the_ledger_and_the_store_and_loses_nothing(self):
        plan = plan_fence(40, StoreState(55, 50, None, None), None, STORE, None, R)
        assert (plan.epoch, plan.floor, plan.reserved) == (1, 55, 55 + R)
        assert plan.lost_from is None

    def test_a_restarted_store_with_all_its_data_loses_nothing(self):
        plan = plan_fence(300, intact(500), PriorFence(1, STORE, 1000), STORE, 500, R)
        assert (plan.epoch, plan.floor, plan.lost_from) == (2, 500, None)

    def test_a_fresh_process_on_an_intact_store_loses_nothing(self):
        plan = plan_fence(300, intact(500), PriorFence(1, STORE, 1000), STORE, None, R)
        assert plan.lost_from is None and plan.floor == 500

    def test_a_flushed_store_never_hands_out_a_recorded_sequence(self):
        plan = plan_fence(300, StoreState(0, 0, None, None), PriorFence(1, STORE, 1000), STORE, 340, R)
        assert plan.floor == 300

    def test_what_the_process_acknowledged_and_the_store_lost_is_exactly_reported(self):
        plan = plan_fence(300, StoreState(0, 0, None, None), PriorFence(1, STORE, 1000), STORE, 340, R)
        assert (plan.lost_from, plan.lost_to, plan.lost_exact) == (301, 340, True)

    def test_a_store_restored_from_an_older_copy_reports_what_it_rewound(self):
        plan = plan_fence(300, intact(310), PriorFence(1, STORE, 1000), STORE, 345, R)
        assert (plan.floor, plan.lost_from, plan.lost_to, plan.lost_exact) == (310, 311, 345, True)

    def test_when_nobody_knows_how_far_a_lost_store_got_the_whole_reservation_is_reported(self):
        plan = plan_fence(300, StoreState(0, 0, None, None), PriorFence(1, STORE, 1000), STORE, None, R)
        assert (plan.lost_from, plan.lost_to, plan.lost_exact) == (301, 1000, False)
        assert "fence is gone" in plan.reason

    @pytest.mark.parametrize("store, evidence", [
        (StoreState(500, 500, 1, 900), "reservation 900 is older"),
        (StoreState(200, 200, 1, 1000), "below the ledger's height"),
        (StoreState(500, 500, 7, 1000), "carries epoch 7"),
    ])
    def test_any_sign_of_a_rewound_store_counts_as_possible_loss(self, store, evidence):
        plan = plan_fence(300, store, PriorFence(1, STORE, 1000), STORE, None, R)
        assert plan.lost_from == max(300, store.counter) + 1 and plan.lost_to == 1000
        assert evidence in plan.reason

    def test_a_store_rewound_while_running_reports_from_the_first_reissued_sequence(self):
        plan = plan_fence(300, intact(330), PriorFence(1, STORE, 1000), STORE, 340, R, reissued_from=321)
        assert (plan.lost_from, plan.lost_to, plan.lost_exact) == (321, 340, False)

    def test_another_store_is_refused_unless_rebound(self):
        with pytest.raises(StoreMismatch, match="captured by redis://r1"):
            plan_fence(300, intact(0), PriorFence(1, STORE, 1000), "redis://r2:6379/0#posray", None, R)
        plan = plan_fence(300, StoreState(0, 0, None, None), PriorFence(1, STORE, 1000), "redis://r2:6379/0#posray",
                          None, R, rebind=True)
        assert plan.floor == 300


class TestIssuedRanges:
    def test_contiguous_and_out_of_order_ranges_merge(self):
        issued = IssuedRanges(10)
        assert issued.add(11, 12) and issued.add(16, 20) and issued.add(13, 15)
        assert issued.highest == 20 and issued._ranges == [[11, 20]]

    @pytest.mark.parametrize("first, last", [(12, 12), (9, 11), (15, 25), (5, 10)])
    def test_a_reissued_or_fenced_off_sequence_is_refused_and_not_recorded(self, first, last):
        issued = IssuedRanges(10)
        issued.add(11, 20)
        assert not issued.add(first, last)
        assert issued._ranges == [[11, 20]]

    def test_ranges_stay_bounded(self):
        issued = IssuedRanges(0)
        for i in range(IssuedRanges.RANGES_MAX + 50):
            issued.add(3 * i + 1, 3 * i + 1)  # holes that never fill
        assert len(issued._ranges) <= IssuedRanges.RANGES_MAX


class TestKeysLost:
    """Whether the new fence must remember that the store lacks idempotency keys it held."""

    def test_an_intact_store_keeps_its_keys(self):
        assert not plan_fence(300, intact(500), PriorFence(1, STORE, 1000), STORE, 500, R).keys_lost
        assert not plan_fence(300, intact(500), PriorFence(1, STORE, 1000), STORE, None, R).keys_lost

    def test_a_flushed_store_lost_its_keys_even_when_every_document_was_recorded(self):
        plan = plan_fence(300, StoreState(0, 0, None, None), PriorFence(1, STORE, 1000), STORE, 300, R)
        assert plan.lost_from is None and plan.keys_lost

    def test_a_rewound_store_lost_keys(self):
        assert plan_fence(300, intact(310), PriorFence(1, STORE, 1000), STORE, 345, R).keys_lost

    def test_a_store_taking_over_from_another_lacks_the_other_ones_keys(self):
        plan = plan_fence(300, intact(0, None, None), PriorFence(1, "redis://old#p", 1000), STORE, None, R, rebind=True)
        assert plan.keys_lost

    def test_a_first_fence_behind_a_ledger_it_did_not_fill_lacks_its_keys(self):
        assert plan_fence(40, StoreState(0, 0, None, None), None, STORE, None, R).keys_lost
        assert not plan_fence(40, StoreState(55, 50, None, None), None, STORE, None, R).keys_lost
        assert not plan_fence(0, StoreState(0, 0, None, None), None, STORE, None, R).keys_lost
