"""TGC / SGC as AppWorld defines them, on hand-computed cases and as properties."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sgcd.envs.appworld.metrics import scenario_of, tgc_sgc, tgc_sgc_trials


def test_hand_computed_one_failing_task_zeroes_its_scenario():
    # scenario a: 3 tasks all pass; scenario b: 2 tasks, one fails.
    # TGC = 4 passing / 5 tasks = 80%; SGC = 1 fully passing scenario (a) / 2 = 50%.
    ids = ["aaa_1", "aaa_2", "aaa_3", "bbb_1", "bbb_2"]
    out = tgc_sgc(ids, [True, True, True, True, False])
    assert out == {"tgc": 80.0, "sgc": 50.0, "tasks": 5, "scenarios": 2}


def test_single_scenario_with_one_failure_has_sgc_zero():
    # 2 of 3 tasks pass: TGC = 66.67%, but the only scenario is not fully passed: SGC = 0.
    out = tgc_sgc(["82e2fac_1", "82e2fac_2", "82e2fac_3"], [True, False, True])
    assert out["tgc"] == pytest.approx(200 / 3)
    assert out["sgc"] == 0.0


def test_trials_are_scored_as_runs_and_averaged():
    # trial 0: a_1 ok, a_2 ok -> TGC 100, SGC 100; trial 1: a_1 ok, a_2 fail -> TGC 50, SGC 0. Mean: 75 / 50.
    out = tgc_sgc_trials(["a_1", "a_2", "a_1", "a_2"], [True, True, True, False])
    assert out == {"tgc": 75.0, "sgc": 50.0, "trials": 2}


def test_scenario_of_and_bad_input():
    assert scenario_of("82e2fac_1") == "82e2fac"
    assert scenario_of("82e2fac_1:tagged") == "82e2fac"
    with pytest.raises(ValueError, match="'nounderscore'"):
        scenario_of("nounderscore")
    with pytest.raises(ValueError, match="equal length"):
        tgc_sgc(["a_1"], [True, False])
    with pytest.raises(ValueError, match="once per run"):
        tgc_sgc(["a_1", "a_1"], [True, False])


runs = st.dictionaries(
    st.tuples(st.sampled_from("abcde"), st.integers(1, 4)).map(lambda t: f"{t[0]}_{t[1]}"),
    st.booleans(),
    min_size=1,
)


@given(runs)
def test_properties(run):
    ids, oks = list(run), list(run.values())
    out = tgc_sgc(ids, oks)
    assert out["tgc"] == pytest.approx(100 * sum(oks) / len(oks))
    scenarios = {i.split("_")[0] for i in ids}
    failing = {i.split("_")[0] for i, ok in run.items() if not ok}
    assert out["sgc"] == pytest.approx(100 * len(scenarios - failing) / len(scenarios))
    # order does not matter
    assert tgc_sgc(ids[::-1], oks[::-1]) == out
    # one trial is one run
    assert tgc_sgc_trials(ids, oks)["tgc"] == pytest.approx(out["tgc"])
