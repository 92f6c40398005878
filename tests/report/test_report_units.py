"""Units of the report: the compact per-token blob, group selection, byte budget, escaping, figure helpers."""

from __future__ import annotations

import json
import math

from hypothesis import given
from hypothesis import strategies as st

from sgcd.report.figures import SPARK_H, bound_fractions, collect_weights, sparklines
from sgcd.report.heatmap import build_payload, color_bounds, script_safe_json, select_groups
from sgcd.report.rundir import Group, Sibling


def _sib(tokens, weights, teacher, student, mask, types, success=True, adv=0.5) -> Sibling:
    n = len(tokens)
    return Sibling(1.0 if success else 0.0, success, adv, tokens, mask, types, weights, teacher, student,
                   [0] * n, list(range(n)))  # fmt: skip


def _group(step: int, sibs: list[Sibling]) -> Group:
    return Group(step, f"t{step}", "do it", None, "", sibs, f"samples/step_{step:06d}.jsonl:1")


def test_pack_encodes_one_sibling_exactly():
    # tokens: "a", "<b>", "a" -> table ["a", "<b>"], indices [0, 1, 0] (the repeated "a" is interned once).
    # weights x1000 rounded: 1.2346 -> 1235 (1234.6 rounds up), 0.8 -> 800, nan -> null.
    # log-probs x100 rounded: -0.504 -> -50, -1.0 -> -100, nan -> null; types "120", mask "110".
    sib = _sib(["a", "<b>", "a"], [1.2346, 0.8, math.nan], [-0.504, -1.0, math.nan], [-0.2, -0.3, 0.0],
               [1, 1, 0], [1, 2, 0])  # fmt: skip
    payload = build_payload([_group(3, [sib])], eps=0.2)
    blob = json.loads(payload.json_text)
    assert blob["tok"] == ["a", "<b>"]
    s = blob["groups"][0]["sibs"][0]
    assert s["k"] == [0, 1, 0]
    assert s["w"] == [1235, 800, None]
    assert s["t"] == [-50, -100, None]
    assert s["u"] == [-20, -30, 0]
    assert (s["y"], s["m"], s["n"], s["s"]) == ("120", "110", 3, 1)
    assert payload.n_tokens == 3 and payload.n_groups == 1 and payload.dropped_groups == 0
    assert "<" not in payload.json_text  # the "<b>" token is \u003c-escaped


def test_max_tokens_truncates_and_counts():
    sib = _sib(list("abcdef"), [1.0] * 6, [0.0] * 6, [0.0] * 6, [1] * 6, [1] * 6)
    payload = build_payload([_group(1, [sib, sib])], eps=0.2, max_tokens=4)
    s = json.loads(payload.json_text)["groups"][0]["sibs"][0]
    assert len(s["k"]) == 4 and s["n"] == 6  # 4 drawn, the page says 2 more exist
    assert payload.truncated_siblings == 2 and payload.n_tokens == 8


def test_select_groups_spreads_over_steps_and_keeps_latest():
    groups = [_group(step, []) for step in (9, 0, 1, 2, 3, 4, 5, 6, 7, 8)]  # unsorted on purpose
    # 10 groups, 4 wanted: indices round(i * 9 / 3) for i = 0..3 -> 0, 3, 6, 9 -> steps 0, 3, 6, 9.
    assert [g.step for g in select_groups(groups, 4)] == [0, 3, 6, 9]
    assert [g.step for g in select_groups(groups, 1)] == [9]
    assert select_groups(groups, 0) == []
    assert len(select_groups(groups[:3], 8)) == 3


def test_byte_budget_drops_oldest_groups_first():
    sib = _sib(["tok"] * 200, [1.1] * 200, [-1.0] * 200, [-1.0] * 200, [1] * 200, [1] * 200)
    groups = [_group(step, [sib, sib]) for step in range(5)]
    one = len(build_payload(groups[-1:], eps=0.2).json_text.encode())
    payload = build_payload(groups, eps=0.2, budget_bytes=int(2.5 * one))
    # each group packs to about `one` bytes, so 2 groups fit in 2.5x and the 3 oldest are dropped.
    assert [g.step for g in payload.groups] == [3, 4]
    assert payload.dropped_groups == 3
    assert len(payload.json_text.encode()) <= int(2.5 * one)


@given(st.recursive(st.text(), lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(), c, max_size=4)))
def test_script_safe_json_round_trips_and_cannot_close_a_script(obj):
    text = script_safe_json(obj)
    assert not any(ch in text for ch in "<>&\u2028\u2029")
    assert json.loads(text) == obj


def test_bound_fractions_by_hand():
    # eps 0.2: bounds 0.6 and 1.4. 0.6 is at low; 1.4 twice at high; 0.7 and 1.0 inside -> 1/5 and 2/5.
    assert bound_fractions([0.6, 0.7, 1.0, 1.4, 1.4], 0.2) == (0.2, 0.4)
    assert bound_fractions([], 0.2) == (0.0, 0.0)
    assert color_bounds(0.2) == (0.8, 1.2)


def test_collect_weights_uses_action_tokens_only():
    ok = _sib(["a", "b", "c"], [1.2, 0.9, 5.0], [0.0] * 3, [0.0] * 3, [1, 1, 0], [1, 2, 0])
    bad = _sib(["a", "b"], [0.8, math.nan], [0.0] * 2, [0.0] * 2, [1, 1], [3, 3], success=False, adv=-0.5)
    splits = collect_weights([_group(1, [ok, bad])])
    # the masked observation token (w = 5.0) and the NaN weight are left out.
    assert splits.by_outcome == {"success": [1.2, 0.9], "failure": [0.8]}
    assert splits.by_type == {"reasoning": [1.2], "tool_call": [0.9], "answer": [0.8]}


def test_sparkline_points_by_hand():
    # steps 0, 1, 2 over a 160-wide box -> x = 0, 80, 160; values 0, 1, 0.5 with lo 0, span 1 and a 28-high box
    # -> y = 26 - 24 * v = 26, 2, 14 (2 px margin top and bottom, larger values higher up).
    assert SPARK_H == 28
    (line,) = sparklines({"reward/mean": ([0, 1, 2], [0.0, 1.0, 0.5])})
    assert line.points == "0.0,26.0 80.0,2.0 160.0,14.0"
    assert (line.namespace, line.last, line.lo, line.hi, line.n) == ("reward", 0.5, 0.0, 1.0, 3)


def test_headline_picks_success_keys_not_counts():
    from sgcd.report.figures import HEADLINES, _match

    series = {k: ([0], [0.0]) for k in ("eval/success", "eval/n_tasks", "eval/pass^2", "eval/write_share")}
    # "eval/success" first (exact), then "*success*" adds nothing new, then "pass*" adds eval/pass^2
    assert _match(series, HEADLINES["held-out success"]) == ["eval/success", "eval/pass^2"]


def test_episode_lines_from_a_text_level_episode():
    from sgcd.report.rundir import episode_lines

    episode = {
        "steps": [
            {"calls": [{"name": "get_reservation", "error": False, "is_write": False}]},
            {"calls": [{"name": "cancel", "error": True}, {"name": "book", "is_write": True}]},
            {"calls": []},
        ],
        "info": {"reason": "final_answer", "verifier": {"db_match": False, "required": {"x": 1}}},
    }
    assert episode_lines(episode) == [
        "calls: get_reservation -> cancel [x] -> book [w]",
        "ended: final_answer",
        "verifier: db_match=False",  # nested values are left out
    ]
    assert episode_lines(None) == [] and episode_lines({}) == ["calls: none"]


def test_study_curve_points_by_hand():
    """The compare page and `sgcd compare` draw curves from sgcd.report.study alone: per step, the values of
    the seeds that logged it (mean and min-max band over those), the first key any run logged."""
    from pathlib import Path

    from sgcd.report.study import Run, curve_points

    # seed A logs steps 0-2 with 1, 2, 3 (step 2 logged twice: the last value counts); seed B steps 1-3 with
    # 3, 4, 5 under the fallback key only, which A also logs at step 0
    rows_a = [
        {"step": 0, "x": 1.0, "y": 9.0},
        {"step": 1, "x": 2.0},
        {"step": 2, "x": 0.0},
        {"step": 2, "x": 3.0},
    ]
    a = Run("grpo", 0, Path("a"), "finished", metrics=rows_a)
    b = Run(
        "grpo",
        1,
        Path("b"),
        "finished",
        metrics=[{"step": s, "y": v} for s, v in ((1, 3.0), (2, 4.0), (3, 5.0))],
    )
    assert curve_points([a, b], ("x", "y")) == ("x", {0: [1.0], 1: [2.0], 2: [3.0]})
    assert curve_points([a, b], ("y",)) == ("y", {0: [9.0], 1: [3.0], 2: [4.0], 3: [5.0]})
    assert curve_points([a, b], ("z",)) == (None, {})
