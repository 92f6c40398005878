"""Paired statistics by hand: McNemar's exact p, the bootstrap CI, the paired delta and the horizon bins."""

from __future__ import annotations

import pytest

from sgcd.eval.stats import bootstrap_ci, horizon_bin, mcnemar_exact, paired_delta


def test_mcnemar_exact_by_hand():
    assert mcnemar_exact(0, 0) == 1.0  # no discordant task: no evidence
    # n = 1, k = 0: P[X <= 0] = C(1,0) / 2 = 0.5, two-sided 1.0
    assert mcnemar_exact(1, 0) == 1.0
    # n = 5, k = 0: 1 / 32, two-sided 2 / 32 = 0.0625
    assert mcnemar_exact(5, 0) == pytest.approx(0.0625)
    assert mcnemar_exact(0, 5) == pytest.approx(0.0625)  # symmetric in b and c
    # n = 10, k = 2: (C(10,0) + C(10,1) + C(10,2)) / 1024 = 56 / 1024, two-sided 112 / 1024 = 0.109375
    assert mcnemar_exact(2, 8) == pytest.approx(0.109375)


def test_paired_delta_by_hand():
    before = {"a": 1.0, "b": 0.0, "c": 0.0, "d": 1.0, "only_before": 1.0}
    after = {"a": 1.0, "b": 1.0, "c": 1.0, "d": 0.0, "only_after": 0.0}
    out = paired_delta(before, after, n_boot=2000)
    # shared tasks a-d: diffs 0, +1, +1, -1 -> delta 1/4; d lost (b = 1), b and c gained (c = 2)
    assert out["n"] == 4 and out["delta"] == pytest.approx(0.25)
    assert out["before"] == 0.5 and out["after"] == 0.75
    assert out["lost"] == 1 and out["gained"] == 2
    assert out["p"] == pytest.approx(1.0)  # n = 3, k = 1: (1 + 3) / 8 = 0.5, two-sided 1.0
    lo, hi = out["ci"]
    assert -1.0 <= lo < 0.25 < hi <= 1.0


def test_bootstrap_ci_of_a_constant_is_the_constant_and_it_is_seeded():
    assert bootstrap_ci([0.5] * 10, n_boot=500) == (0.5, 0.5)
    diffs = [0.0] * 80 + [1.0] * 20  # mean 0.2, sd of the mean sqrt(0.16 / 100) = 0.04
    lo, hi = bootstrap_ci(diffs, n_boot=4000, seed=3)
    assert bootstrap_ci(diffs, n_boot=4000, seed=3) == (lo, hi)
    assert lo == pytest.approx(0.2 - 1.96 * 0.04, abs=0.02) and hi == pytest.approx(
        0.2 + 1.96 * 0.04, abs=0.02
    )


def test_horizon_bins():
    assert [horizon_bin(t) for t in (1, 2, 4, 5, 8, 9, 14)] == ["1", "2-4", "2-4", "5-8", "5-8", "9+", "9+"]
