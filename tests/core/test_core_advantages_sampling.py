"""Hand-computed tests of sgcd.core.advantages (algorithm.md §2) and sgcd.core.sampling (§1)."""

from __future__ import annotations

import math

import pytest
import torch

from sgcd.core.advantages import ADVANTAGE_ESTIMATORS, grpo_advantages, rloo_advantages
from sgcd.core.registry import get
from sgcd.core.sampling import mixed_groups, refill_plan, success_from_rewards


def test_grpo_one_group():
    # R = [1, 0, 0, 1]: mean 0.5, unbiased std sqrt((4 * 0.25) / 3) = 0.577350
    # A = +-0.5 / (0.577350 + 1e-6) = +-0.866024
    a, m = grpo_advantages(torch.tensor([1.0, 0.0, 0.0, 1.0]), torch.tensor([0, 0, 0, 0]))
    expected = 0.5 / (math.sqrt(1 / 3) + 1e-6)
    torch.testing.assert_close(a, torch.tensor([expected, -expected, -expected, expected]))
    assert m["reward/adv_n_groups"] == 1.0 and m["reward/adv_mean"] == pytest.approx(0.0, abs=1e-7)


def test_grpo_two_groups_arbitrary_labels():
    # Labels 7 and 3 interleaved. Group 7: R = [1, 0.5] -> mean 0.75, std sqrt(2 * 0.0625 / 1) = 0.353553
    # -> A = +-0.25 / 0.353554 = +-0.707105. Group 3: R = [0, 0] -> all equal -> A = 0.
    a, m = grpo_advantages(torch.tensor([1.0, 0.0, 0.5, 0.0]), torch.tensor([7, 3, 7, 3]))
    expected = 0.25 / (math.sqrt(0.125) + 1e-6)
    torch.testing.assert_close(a, torch.tensor([expected, 0.0, -expected, 0.0]))
    assert m["reward/adv_zero_frac"] == 0.5


def test_drgrpo_skips_std():
    # norm_by_std=False: A = R - mean = [0.5, -0.5, -0.5, 0.5]
    a, _ = grpo_advantages(torch.tensor([1.0, 0.0, 0.0, 1.0]), torch.tensor([0, 0, 0, 0]), norm_by_std=False)
    torch.testing.assert_close(a, torch.tensor([0.5, -0.5, -0.5, 0.5]))
    a2, _ = ADVANTAGE_ESTIMATORS["drgrpo"](rewards=torch.tensor([1.0, 0.0]), group_ids=torch.tensor([1, 1]))
    torch.testing.assert_close(a2, torch.tensor([0.5, -0.5]))


def test_eps_in_denominator():
    # eps = 0.5: R = [1, 0] -> mean 0.5, std sqrt(0.5) = 0.707107 -> A = 0.5 / 1.207107 = 0.414214
    a, _ = grpo_advantages(torch.tensor([1.0, 0.0]), torch.tensor([0, 0]), eps=0.5)
    torch.testing.assert_close(a, torch.tensor([0.414214, -0.414214]), atol=1e-6, rtol=0)


def test_singletons_and_all_equal_give_zero():
    # Group 0 has one member; group 1 has three equal rewards: both exactly 0, never NaN.
    a, m = grpo_advantages(torch.tensor([1.0, 0.3, 0.3, 0.3]), torch.tensor([0, 1, 1, 1]))
    assert torch.equal(a, torch.zeros(4))
    assert m["reward/adv_singleton_frac"] == 0.25
    a, _ = rloo_advantages(torch.tensor([1.0]), torch.tensor([0]))
    assert torch.equal(a, torch.zeros(1))


def test_integer_rewards_give_float():
    a, _ = grpo_advantages(torch.tensor([1, 0]), torch.tensor([0, 0]))
    assert a.dtype == torch.float32 and a[0] > 0


def test_rloo():
    # R = [1, 0, 0]: A_0 = 1 - (0 + 0)/2 = 1; A_1 = 0 - (1 + 0)/2 = -0.5; A_2 = -0.5
    a, _ = get("advantage", "rloo")(rewards=torch.tensor([1.0, 0.0, 0.0]), group_ids=torch.tensor([0, 0, 0]))
    torch.testing.assert_close(a, torch.tensor([1.0, -0.5, -0.5]))


def test_bad_rewards_named():
    with pytest.raises(ValueError, match="trajectory 2"):
        grpo_advantages(torch.tensor([1.0, 0.0, float("nan")]), torch.tensor([0, 0, 0]))
    with pytest.raises(ValueError, match=r"\(B,\)"):
        grpo_advantages(torch.tensor([1.0, 0.0]), torch.tensor([0, 0, 0]))


def test_empty_batch():
    a, m = grpo_advantages(torch.zeros(0), torch.zeros(0, dtype=torch.long))
    assert a.shape == (0,) and m["reward/adv_n_groups"] == 0.0


def test_mixed_groups():
    # success [1,0 | 1,1 | 0,0], groups [0,0 | 1,1 | 2,2]: group 0 mixed, group 1 all pass, group 2 all fail.
    (keep, mixed), m = mixed_groups(torch.tensor([1, 0, 1, 1, 0, 0]), torch.tensor([0, 0, 1, 1, 2, 2]))
    assert keep.tolist() == [True, True, False, False, False, False]
    assert mixed.tolist() == [0]
    assert m["sampling/n_mixed"] == 1 and m["sampling/all_pass"] == 1 and m["sampling/all_fail"] == 1
    assert m["sampling/mixed_frac"] == pytest.approx(1 / 3)
    # per-group pass rates 0.5, 1, 0 -> mean 0.5
    assert m["sampling/pass_rate_mean"] == pytest.approx(0.5)


def test_mixed_groups_singleton_is_never_mixed():
    (keep, mixed), m = mixed_groups(torch.tensor([True, False]), torch.tensor([5, 9]))
    assert keep.tolist() == [False, False] and mixed.numel() == 0 and m["sampling/mixed_frac"] == 0.0


def test_success_threshold_and_group_mean():
    # threshold 1.0: [1.0, 0.99, 1.0] -> [T, F, T]
    s, _ = success_from_rewards(torch.tensor([1.0, 0.99, 1.0]))
    assert s.tolist() == [True, False, True]
    # above_group_mean: group 0 R = [0.2, 0.4, 0.6] (mean 0.4) -> [F, F, T]; group 1 R = [0.5, 0.5] -> [F, F]
    s, m = success_from_rewards(
        torch.tensor([0.2, 0.4, 0.6, 0.5, 0.5]), torch.tensor([0, 0, 0, 1, 1]), mode="above_group_mean"
    )
    assert s.tolist() == [False, False, True, False, False]
    assert m["sampling/success_rate"] == pytest.approx(0.2)
    with pytest.raises(ValueError, match="group_ids"):
        success_from_rewards(torch.tensor([0.2]), mode="above_group_mean")
    with pytest.raises(ValueError, match="unknown success mode"):
        success_from_rewards(torch.tensor([0.2]), mode="median")


def test_refill_plan():
    # Target met -> stop.
    d, _ = refill_plan(target_groups=8, found_groups=8, rounds_used=1)
    assert (d.n_more, d.stop, d.reason) == (0, True, "target_met")
    # Missing 5 after round 3 of 3 -> stop short (the trainer trains on what it has).
    d, m = refill_plan(target_groups=8, found_groups=3, rounds_used=3, max_rounds=3)
    assert (d.n_more, d.stop, d.reason) == (0, True, "max_rounds") and m["sampling/stopped_short"] == 1.0
    # 3 mixed of 6 sampled -> rate 0.5; missing 5 -> ceil(5 / 0.5) = 10 more.
    d, _ = refill_plan(target_groups=8, found_groups=3, rounds_used=1, sampled_groups=6)
    assert (d.n_more, d.stop) == (10, False)
    # No mixed group yet in 4 sampled -> 2 * missing = 16 (under the cap 4 * 8 = 32).
    d, _ = refill_plan(target_groups=8, found_groups=0, rounds_used=1, sampled_groups=4)
    assert d.n_more == 16
    # Cap: 1 mixed of 20 -> ceil(7 * 20) = 140, capped at max_per_round = 12.
    d, _ = refill_plan(target_groups=8, found_groups=1, rounds_used=1, sampled_groups=20, max_per_round=12)
    assert d.n_more == 12
    # Nothing sampled yet -> ask for exactly the missing count.
    d, _ = refill_plan(target_groups=4, found_groups=0, rounds_used=0)
    assert (d.n_more, d.stop) == (4, False)
    with pytest.raises(ValueError, match="max_rounds"):
        refill_plan(target_groups=4, found_groups=0, rounds_used=0, max_rounds=0)


def test_registry_lookup_names_choices():
    assert get("advantage", "grpo") is grpo_advantages
    with pytest.raises(ValueError, match="choose one of .*'drgrpo'"):
        get("advantage", "ppo")
    with pytest.raises(ValueError, match="unknown registry family"):
        get("optimizer", "adam")
    for family, name in (("credit", "sgcd"), ("loss", "ppo-clip")):
        assert callable(get(family, name))
