"""The LLM user over the OpenAI protocol, against the local HTTP double on 127.0.0.1: role flip, termination
tokens (stop, transfer, out-of-scope), tau2's step limit, and a failing endpoint ending the episode."""

from __future__ import annotations

import pytest

from sgcd.envs import get_domain
from sgcd.envs.tau3_airline.prompts import GREETING, USER_GUIDELINES
from sgcd.envs.toolcalls import format_tool_call
from support.openai_double import OpenAIDouble, http_error, reply

FIRST = "Hi, I'd like to change reservation XEWRD9. I'm james_lee_6136."


def _env(srv, task_id="13", **opts):
    dom = get_domain(
        "tau3-airline",
        user="openai:sim",
        user_base_url=srv.base_url,
        user_max_retries=0,
        user_timeout=5,
        **opts,
    )
    return next(t for t in dom.tasks("base") if t.task_id == task_id), dom


def test_protocol_role_flip_and_stop():
    with OpenAIDouble([reply(FIRST), reply("Great, thanks! ###STOP###")]) as srv:
        task, dom = _env(srv)
        env = dom.make_env(task)
        obs = env.reset()
        assert obs.messages[-1].content == FIRST
        first = srv.requests[0]["body"]
        assert first["model"] == "sim" and first["temperature"] == 0.0
        system = first["messages"][0]
        assert system["role"] == "system" and USER_GUIDELINES in system["content"]
        assert "XEWRD9" in system["content"] and "ATL to LAS" in system["content"]  # the scenario
        assert first["messages"][1:] == [{"role": "user", "content": GREETING}]
        # tool traffic never reaches the user
        r = env.step(format_tool_call("get_reservation_details", {"reservation_id": "XEWRD9"}))
        assert not r.done and srv.request_count == 1
        r = env.step("Origin and destination cannot be changed; I can transfer you.")
        assert r.done and r.info["termination"] == "user_stop"
        # the agent's message is the LLM's "user" turn; the LLM's own earlier message its "assistant" turn
        assert srv.requests[1]["body"]["messages"][1:] == [
            {"role": "user", "content": GREETING},
            {"role": "assistant", "content": FIRST},
            {"role": "user", "content": "Origin and destination cannot be changed; I can transfer you."},
        ]
        # task 13's gold is only a transfer (no state change), nothing to communicate: a stop scores 1
        assert r.reward == 1.0 and r.info["episode"].messages[-1].content.endswith("###STOP###")


@pytest.mark.parametrize("token", ["###TRANSFER###", "###OUT-OF-SCOPE###"])
def test_transfer_and_out_of_scope_end_as_user_stops(token):
    with OpenAIDouble([reply(FIRST), reply(token)]) as srv:
        task, dom = _env(srv)
        env = dom.make_env(task)
        env.reset()
        summary = {"summary": "Wants ATL-LAS instead of ATL-LAX; origin/destination cannot change."}
        r = env.step(format_tool_call("transfer_to_human_agents", summary))
        assert r.messages[0].content == "Transfer successful" and not r.done
        r = env.step("YOU ARE BEING TRANSFERRED TO A HUMAN AGENT. PLEASE HOLD ON.")
        assert r.done and r.info["termination"] == "user_stop" and r.reward == 1.0
        calls = [c for s in r.info["episode"].steps for c in s.calls]
        assert [(c.name, c.is_write) for c in calls] == [("transfer_to_human_agents", False)]


def test_a_user_who_never_stops_hits_the_step_limit():
    # Steps: first user message = 1; then each agent message and each user answer is one step:
    # agent 2, user 3, agent 4, user 5, agent 6, user 7 -> 7 >= max_steps=7 -> ended, reward 0.
    with OpenAIDouble(handler=lambda body: reply("Are you sure? Please check again.")) as srv:
        task, dom = _env(srv, max_steps=7)
        env = dom.make_env(task)
        env.reset()
        results = [env.step(f"Message {i}") for i in range(3)]
        assert [r.done for r in results] == [False, False, True]
        assert results[-1].info["termination"] == "max_steps" and results[-1].reward == 0.0
        assert srv.request_count == 4  # the opening + three answers


def test_endpoint_failure_ends_the_episode_as_user_error():
    with OpenAIDouble([reply(FIRST), http_error(500)]) as srv:
        task, dom = _env(srv)
        env = dom.make_env(task)
        env.reset()
        r = env.step("How can I help?")
        assert r.done and r.reward == 0.0 and r.info["termination"] == "user_error"
        assert "InternalServerError" in r.info["episode"].info["note"]
    with OpenAIDouble([reply("   ")]) as srv:  # an empty user message is a failure too, already at reset
        task, dom = _env(srv)
        env = dom.make_env(task)
        env.reset()
        r = env.step("Hello?")
        assert r.done and r.info["termination"] == "user_error" and "empty" in r.info["episode"].info["note"]


def test_llm_user_needs_an_endpoint(monkeypatch):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(ValueError, match="--user-base-url"):
        get_domain("tau3-airline", user="openai:sim")


def test_openai_policy_and_llm_user_end_to_end_through_evaluate():
    # Two doubles: one plays the agent (native tool calls), one the user. Task 0: the user wants EHGLP3
    # cancelled, which policy forbids; gold = no action, nothing to communicate -> any stop with no write = 1.
    from sgcd.eval import evaluate, make_runner

    agent_script = [reply(None, tool_calls=[("get_user_details", {"user_id": "emma_kim_9957"})])]
    agent_script.append(reply("I'm sorry, EHGLP3 cannot be cancelled under our policy."))
    user_script = [reply("Please cancel EHGLP3. I'm emma_kim_9957."), reply("I see. ###STOP###")]
    with OpenAIDouble(agent_script) as agent_srv, OpenAIDouble(user_script) as user_srv:
        task, dom = _env(user_srv, task_id="0")
        runner = make_runner("openai:agent", dom, base_url=agent_srv.base_url)
        result = evaluate(runner, dom, "base", limit=1, progress=False, policy="openai:agent")
    (record,) = result.records
    assert record.task_id == "0" and record.success and record.calls == 1 and record.writes == 0
    assert record.breakdown == {"db": 1.0, "communicate": 1.0} and record.reason == "user_stop"
    # the agent saw the tool schemas and the user's first message
    first = agent_srv.requests[0]["body"]
    assert len(first["tools"]) == 14 and first["messages"][-1]["content"].startswith("Please cancel EHGLP3")
