"""One tau3-airline episode: opening, tool and user turns, tau2's step/error limits, endings, Episode info."""

from __future__ import annotations

import pytest

from sgcd.envs import get_domain
from sgcd.envs.toolcalls import format_tool_call

USER = "emma_kim_9957"
READ = format_tool_call("get_user_details", {"user_id": USER})
BAD = format_tool_call("get_user_details", {"user_id": "nobody"})


def test_opening_is_policy_then_the_users_first_message(domain, tasks):
    env = domain.make_env(tasks["0"])
    obs = env.reset()
    assert [m.role for m in obs.messages] == ["system", "user"]
    assert domain.data.policy in obs.messages[0].content
    assert "EHGLP3" in obs.messages[1].content and USER in obs.messages[1].content  # reason + known info
    assert len(obs.tools) == 14 and all(t["type"] == "function" for t in obs.tools)
    with pytest.raises(RuntimeError, match="single-use"):
        env.reset()


def test_gold_episode_scores_one_with_breakdown_and_write_flags(domain, tasks, play):
    task = tasks["11"]
    _, results = play(domain.make_env(task), domain.gold_turns(task))
    last = results[-1]
    assert last.done and last.reward == 1.0
    assert last.info["reward_breakdown"] == {"db": 1.0, "communicate": 1.0}
    assert last.info["termination"] == "user_stop"  # the scripted user stops at the closing message
    ep = last.info["episode"]
    calls = [c for s in ep.steps for c in s.calls]
    assert [c.name for c in calls] == ["update_reservation_flights"] and calls[0].is_write
    assert ep.success and ep.steps[-1].final and ep.messages[-1].content == "###STOP###"
    assert [r.done for r in results] == [False, True]


def test_tool_turn_returns_results_and_malformed_markup_is_an_error(domain, tasks):
    env = domain.make_env(tasks["0"])
    env.reset()
    r = env.step("Let me look." + READ)
    assert (
        not r.done and r.messages[0].role == "tool" and '"user_id": "emma_kim_9957"' in r.messages[0].content
    )
    assert env.texts[-1] == "Let me look."  # prose beside a call counts as a message for COMMUNICATE
    r = env.step('<tool_call>{"name": "get_user_details", "arguments": </tool_call>')
    assert not r.done and r.messages[0].content.startswith("Error: ") and r.info["step"].error
    assert r.info["counts"]["format_errors"] == 1 and r.info["counts"]["errors"] == 1


def test_step_limit_by_hand(play):
    # tau2 counting: the first user message is step 1; each agent message and each batch of tool results
    # is one more. Turn 1 (a call): steps 2, 3. Turn 2: steps 4, 5 -> 5 >= max_steps=5 after the results.
    dom = get_domain("tau3-airline", max_steps=5)
    task = dom.tasks("base")[0]
    _, results = play(dom.make_env(task), [READ, READ, READ])
    assert len(results) == 2 and results[-1].done
    assert results[-1].info["termination"] == "max_steps" and results[-1].reward == 0.0
    assert results[-1].info["counts"]["steps"] == 5


def test_error_limit_overrides_even_a_correct_solution(play):
    # task 5 needs no write: any conversation that ends by a stop scores 1. Three failed calls reach
    # max_errors=3 after the tool results, and the episode ends at once with reward 0.
    dom = get_domain("tau3-airline", max_errors=3)
    task = next(t for t in dom.tasks("base") if t.task_id == "5")
    _, results = play(dom.make_env(task), [BAD + BAD + BAD, "All done."])
    assert len(results) == 1 and results[0].info["termination"] == "too_many_errors"
    assert results[0].reward == 0.0 and results[0].info["counts"]["tool_errors"] == 3


def test_agent_stop_token_empty_message_and_steps_after_the_end(domain, tasks, play):
    # tau2's conversation mode: the agent cannot stop; its ###STOP### goes to the user (who stops here)
    env = domain.make_env(tasks["5"])
    _, results = play(env, ["Goodbye. ###STOP###"])
    assert results[0].info["termination"] == "user_stop" and results[0].reward == 1.0
    assert env.messages[-1].role == "user"
    env = domain.make_env(tasks["5"])
    _, results = play(env, ["   "])
    assert results[0].info["termination"] == "agent_error" and results[0].reward == 0.0
    again = env.step(READ)  # after the end: the same final result, nothing runs
    assert again.done and again.reward == 0.0 and again.info["termination"] == "agent_error"
    assert len(env.calls) == 0


def test_scripted_user_answers_questions_then_stops(domain, tasks):
    env = domain.make_env(tasks["0"])
    env.reset()
    r = env.step("Could you tell me your user id?")
    assert r.messages[0].role == "user" and "emma_kim_9957" in r.messages[0].content  # the known info
    r = env.step("Thanks, I have checked. The reservation cannot be cancelled.")  # no question: stop
    assert r.done and r.info["termination"] == "user_stop" and r.reward == 1.0  # task 0: nothing to do


def test_domain_options_are_checked(domain):
    with pytest.raises(ValueError, match="unknown tau3-airline option"):
        get_domain("tau3-airline", colour="red")
    with pytest.raises(ValueError, match="max_steps='many'"):
        get_domain("tau3-airline", max_steps="many")
    with pytest.raises(ValueError, match="user must be 'scripted' or 'openai:MODEL'"):
        get_domain("tau3-airline", user="gpt")
    with pytest.raises(ValueError, match="no split 'dev'"):
        domain.tasks("dev")
    assert get_domain("tau3-airline", max_steps="30", verify="true").limits.max_steps == 30
