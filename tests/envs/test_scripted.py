"""Scripted agents: built from the domain hooks only; gold / read-only / noisy / replay behave as specified."""

from __future__ import annotations

import json
import random

import pytest

from sgcd.envs.airline_lite import make_domain
from sgcd.envs.scripted import (
    FALLBACK,
    ScriptAgent,
    noisy_script,
    perturb_turn,
    read_only_script,
    scripted_factory,
)
from sgcd.envs.toolcalls import format_tool_call, parse_tool_calls
from sgcd.types import Message

DOMAIN = make_domain(test_size=60)
TASK = DOMAIN.tasks("test")[5]


def test_script_agent_counts_assistant_turns_and_falls_back():
    agent = ScriptAgent(["a", "b"])
    msgs = [Message("user", "hi")]
    assert agent.act(msgs) == "a"
    msgs += [Message("assistant", "a"), Message("tool", "x", name="t")]
    assert agent.act(msgs) == "b"
    msgs += [Message("assistant", "b")]
    assert agent.act(msgs) == FALLBACK


def test_read_only_drops_exactly_write_calls():
    turns = [
        format_tool_call("get_user", {"user_id": "u"}),
        format_tool_call("cancel_reservation", {"reservation_id": "R"}),
        "bye",
    ]
    assert read_only_script(turns, DOMAIN.is_write_tool) == [turns[0], "bye"]


def test_noisy_extremes_and_seeding():
    turns = DOMAIN.gold_turns(TASK)
    assert noisy_script(turns, 0.0, random.Random(1)) == turns
    noisy = noisy_script(turns, 1.0, random.Random(1))
    assert noisy and noisy[-1] != turns[-1]  # the final answer is never dropped, only made vague
    assert all(t not in turns for t in noisy)  # p = 1: every kept turn is perturbed
    f1, f2 = scripted_factory("noisy:0.5", DOMAIN, seed=3), scripted_factory("noisy:0.5", DOMAIN, seed=3)
    tasks = DOMAIN.tasks("test")
    first = [f1(t).script for t in tasks]
    assert first == [f2(t).script for t in tasks]  # same seed, same attempt: same scripts
    # a second attempt at the same task draws new noise (pass^k needs independent trials)
    assert [f1(t).script for t in tasks] != first
    assert [scripted_factory("noisy:0.5", DOMAIN, seed=4)(t).script for t in tasks] != first


def test_perturb_changes_one_argument():
    text = format_tool_call(
        "update_baggage", {"reservation_id": "ABC", "total_bags": 3, "paid_bags": 1, "payment_id": "c"}
    )
    (orig,), _ = parse_tool_calls(text)
    (new,), _ = parse_tool_calls(perturb_turn(text, random.Random(0)))
    diff = [k for k in orig.arguments if orig.arguments[k] != new.arguments[k]]
    assert new.name == orig.name and len(diff) == 1


def test_replay_file(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text(json.dumps({"task_id": TASK.task_id, "turns": DOMAIN.gold_turns(TASK)}) + "\n\n")
    factory = scripted_factory(f"replay:{path}", DOMAIN)
    assert factory(TASK).script == DOMAIN.gold_turns(TASK)
    assert factory(DOMAIN.tasks("test")[0]).script == [FALLBACK]  # a task not recorded answers at once
    path.write_text('{"task_id": 3}\n')
    with pytest.raises(ValueError, match=r"r.jsonl:1: bad replay line"):
        scripted_factory(f"replay:{path}", DOMAIN)


def test_bad_specs_are_named():
    for spec, match in [
        ("noisy:abc", "needs a probability"),
        ("noisy:1.5", r"\[0, 1\]"),
        ("golden", "unknown scripted"),
    ]:
        with pytest.raises(ValueError, match=match):
            scripted_factory(spec, DOMAIN)
    with pytest.raises(ValueError, match="gold_turns"):
        scripted_factory("gold", object())(TASK)


def test_gold_episode_has_tool_outputs():
    from sgcd.envs.scripted import gold_episode

    ep = gold_episode(DOMAIN, TASK)
    assert ep.success and [s.text for s in ep.steps] == DOMAIN.gold_turns(TASK)
    roles = [m.role for m in ep.messages]
    assert roles[:2] == ["system", "user"] and roles.count("tool") == len(DOMAIN.gold_turns(TASK)) - 1
