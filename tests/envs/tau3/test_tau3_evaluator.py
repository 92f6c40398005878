"""tau2's DB x COMMUNICATE verifier: substring rules, replay semantics, premature endings, by hand."""

from __future__ import annotations

from sgcd.envs.tau3_airline.evaluator import Evaluator, communicate_checks
from sgcd.envs.tau3_airline.tools import Toolkit
from sgcd.types import ToolCall


def test_communicate_is_case_insensitive_with_commas_removed_from_messages_only():
    texts = ["Your refund is $1,000 IN TOTAL.", "ok"]
    # "1000": the message becomes "your refund is $1000 in total." -> found
    # "in total": lower-cased both sides -> found
    # "1,000": commas are removed from the message, not from the required string -> not found (tau2's rule)
    got = communicate_checks(["1000", "In Total", "1,000"], texts)
    assert got == (("1000", True), ("In Total", True), ("1,000", False))
    assert communicate_checks(["x"], ["", "   "]) == (("x", False),)  # empty messages hold nothing
    assert communicate_checks([], ["anything"]) == ()


def _gold_calls(task):
    return [ToolCall(a["name"], a["arguments"]) for a in task.data["evaluation_criteria"]["actions"]]


def test_gold_calls_match_and_extra_write_breaks_db(domain, tasks):
    ev = Evaluator(domain.data)
    task = tasks["11"]  # one update_reservation_flights; must communicate "5244"
    gold = _gold_calls(task)
    v = ev.evaluate(task.data, gold, ["The total is 5,244."], "user_stop")
    assert (v.reward, v.db, v.communicate, v.db_match) == (1.0, 1.0, 1.0, True)
    # without the number the DB still matches but COMMUNICATE fails: reward = 1 x 0
    v = ev.evaluate(task.data, gold, ["Done."], "user_stop")
    assert (v.reward, v.db, v.communicate) == (0.0, 1.0, 0.0)
    # an extra state change (a certificate) makes the final database differ from gold's
    extra = [*gold, ToolCall("send_certificate", {"user_id": "emma_kim_9957", "amount": 100})]
    v = ev.evaluate(task.data, extra, ["5244"], "user_stop")
    assert (v.reward, v.db, v.communicate) == (0.0, 0.0, 1.0)
    # reads and failed writes change nothing: gold plus both still matches
    noise = [ToolCall("get_user_details", {"user_id": "emma_kim_9957"}), ToolCall("cancel_reservation", {})]
    assert ev.evaluate(task.data, [*noise, *gold], ["5244"], "agent_stop").reward == 1.0


def test_premature_endings_score_zero_whatever_was_done(domain, tasks):
    ev = Evaluator(domain.data)
    task = tasks["5"]  # no writes, nothing to communicate: an empty conversation is a success...
    assert ev.evaluate(task.data, [], [], "user_stop").reward == 1.0
    for ending in ("max_steps", "too_many_errors", "agent_error", "user_error"):
        v = ev.evaluate(task.data, [], [], ending)  # ...unless it did not end by a stop
        assert (v.reward, v.termination) == (0.0, ending)


def test_live_database_equals_replay(domain, tasks):
    # The environment hands its own database instead of replaying; both give the same verdict.
    ev = Evaluator(domain.data)
    task = tasks["7"]
    calls = _gold_calls(task)[:3]  # a partial solution: DB must mismatch either way
    kit = Toolkit(domain.data)
    for c in calls:
        kit.call(c.name, dict(c.arguments))
    live = ev.evaluate(task.data, calls, ["1628"], "user_stop", live=kit)
    replayed = ev.evaluate(task.data, calls, ["1628"], "user_stop")
    assert live == replayed and live.db == 0.0
