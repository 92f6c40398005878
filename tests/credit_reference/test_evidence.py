"""Evidence selection (which siblings are shown, in which order) and the compact step rendering."""

from __future__ import annotations

import re

from cref_groups import GRD, RES_ID, call, cancel_episodes, cancel_group, episode

from sgcd.credit_reference import select_evidence, signature
from sgcd.credit_reference.evidence import render_step
from sgcd.types import Step


def test_signature_is_tool_and_sorted_keys():
    assert signature(call("book", zeta=1, alpha=2)) == "book(alpha,zeta)"
    assert signature(call("book", error=True, alpha=2)) == "book(alpha)!error"


def test_selection_on_a_group_and_on_episodes_agree():
    g = cancel_group()
    ev_g, ev_e = select_evidence(g), select_evidence(cancel_episodes())
    assert ev_g.shown_successes == ev_e.shown_successes and ev_g.shown_failures == ev_e.shown_failures
    assert ev_g.instruction == g.instruction and ev_g.tools == g.prompt.tools
    # shortest success first: B (3 steps) before A (4 steps)
    assert [e.info["label"] for e in ev_g.shown_successes] == ["B", "A"]
    # failures by divergence from nearest success: E at action 1, D at 2, C at 3
    assert [e.info["label"] for e in ev_g.shown_failures] == ["E", "D", "C"]


def test_at_most_two_successes_and_three_failures_ties_by_reward():
    eps = cancel_episodes()
    # a third, longer success and a fourth failure that departs at action 2 like D but scored 0.5
    eps.append(
        episode(
            "A2", True, [GRD, GRD, GRD, call("cancel_reservation", write=True, reservation_id=RES_ID)], "x"
        )
    )
    eps.append(episode("F", False, [call("get_user_details", user_id="u"), call("noop")], "y", reward=0.5))
    ev = select_evidence(eps)
    assert [e.info["label"] for e in ev.shown_successes] == ["B", "A"]
    # E (action 1); then F and D both depart at action 2: F has the higher reward; C is cut
    assert [e.info["label"] for e in ev.shown_failures] == ["E", "F", "D"]
    assert len(ev.successes) == 3 and len(ev.failures) == 4  # all siblings still counted


def test_step_line_format_limits_and_error_flag():
    assert render_step(0, Step(turn=0, text="", calls=(call("f"),))) == "[0] - | call: f() | obs: "
    long_thought = "think " * 100  # 600 chars
    step = Step(
        turn=0,
        text=long_thought + '<tool_call>{"name": "x"}</tool_call>',
        calls=(call("lookup", error=True, q="y" * 400),),
        observation="z" * 500,
        error=True,
    )
    line = render_step(3, step)
    m = re.fullmatch(r"\[3\] (.*) \| call: (.*) \| obs: ERROR: (.*)", line)
    assert m is not None, line
    thought, calls, obs = m.groups()
    assert len(thought) == 200 and thought.endswith("…") and "<tool_call>" not in line
    assert len(calls) == 300 and calls.startswith('lookup(q="yyy')
    assert len(obs) == 300


def test_reply_step_and_render_sections():
    text = select_evidence(cancel_group()).render()
    assert text.startswith("Task: ")
    assert text.count("=== Success") == 2 and text.count("=== Failure") == 3
    assert "[1] reply: I am sorry" not in text  # C's reply is step 2
    assert "[2] reply: I am sorry, I cannot cancel this reservation. | obs: " in text
    assert "final answer: Reservation ZFA04Y is cancelled" in text and "reward: 0.00 (failure)" in text
    assert "obs: ERROR: Error: not found" in text
