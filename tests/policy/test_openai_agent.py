"""OpenAIAgent against a real HTTP server on 127.0.0.1 speaking chat completions; the client is the real one."""

from __future__ import annotations

import json

import pytest

from sgcd.envs.base import Task
from sgcd.policy.openai import OpenAIAgent, OpenAIAgentError
from sgcd.types import Message
from support.openai_double import OpenAIDouble, hang, http_error, reply

TOOLS = [{"type": "function", "function": {"name": "get_user_details", "parameters": {"type": "object"}}}]
HISTORY = [
    Message("system", "You are an airline agent."),
    Message("user", "Who am I? My id is mia_1."),
    Message(
        "assistant",
        'Checking. <tool_call>{"name": "get_user_details", "arguments": {"user_id": "mia_1"}}</tool_call>',
    ),
    Message("tool", '{"name": "Mia"}', name="get_user_details"),
    Message("tool", "Error: something else", name="error"),
]


def test_native_tools_round_trip():
    """Request: tools field + OpenAI-shaped history; reply tool_calls -> <tool_call> text the env parses."""
    with OpenAIDouble(
        [reply("Let me cancel.", tool_calls=[("cancel_reservation", {"reservation_id": "R1"})])]
    ) as srv:
        agent = OpenAIAgent("m", base_url=srv.base_url, max_retries=0, timeout=5, temperature=0.0)
        text = agent.act(HISTORY, TOOLS)
        body = srv.requests[0]["body"]
    assert (
        text
        == 'Let me cancel.\n<tool_call>{"name": "cancel_reservation", "arguments": {"reservation_id": "R1"}}</tool_call>'
    )
    assert body["tools"] == TOOLS and body["temperature"] == 0.0 and body["model"] == "m"
    msgs = body["messages"]
    assert msgs[2] == {
        "role": "assistant",
        "content": "Checking.",
        "tool_calls": [
            {
                "id": "call_2_0",
                "type": "function",
                "function": {"name": "get_user_details", "arguments": '{"user_id": "mia_1"}'},
            }
        ],
    }
    assert msgs[3] == {"role": "tool", "tool_call_id": "call_2_0", "content": '{"name": "Mia"}'}
    assert msgs[4]["role"] == "user" and "Error: something else" in msgs[4]["content"]  # no call to answer
    from sgcd.envs.toolcalls import parse_tool_calls

    calls, errors = parse_tool_calls(text)
    assert [(c.name, c.arguments) for c in calls] == [
        ("cancel_reservation", {"reservation_id": "R1"})
    ] and not errors


def test_text_mode_renders_tools_in_the_system_prompt():
    with OpenAIDouble([reply("All set.")]) as srv:
        agent = OpenAIAgent("m", base_url=srv.base_url, max_retries=0, timeout=5, tool_mode="text")
        assert agent.act(HISTORY, TOOLS) == "All set."
        body = srv.requests[0]["body"]
    assert "tools" not in body
    assert body["messages"][0]["content"].startswith("You are an airline agent.\n\n# Tools")
    assert body["messages"][2]["content"] == HISTORY[2].content  # Hermes text kept verbatim
    assert body["messages"][3] == {
        "role": "user",
        "content": '<tool_response>\n{"name": "Mia"}\n</tool_response>',
    }


def test_airline_lite_tools_native_without_mark_and_text_mode_compact():
    """airline-lite marks its schemas for the compact block: a native request gets them without the mark, the
    text mode's system prompt holds the same compact block HFPolicy renders."""
    from sgcd.envs.airline_lite.tools import schemas
    from sgcd.envs.toolcalls import TOOL_FORMAT_KEY
    from sgcd.policy.chat import plain_tools, render_tools_compact

    tools = list(schemas())
    with OpenAIDouble([reply("ok"), reply("ok")]) as srv:
        for mode in ("native", "text"):
            agent = OpenAIAgent("m", base_url=srv.base_url, max_retries=0, timeout=5, tool_mode=mode)
            assert agent.act(HISTORY[:2], tools) == "ok"
        native, text = (r["body"] for r in srv.requests)
    assert native["tools"] == plain_tools(tools) and all(TOOL_FORMAT_KEY not in t for t in native["tools"])
    assert native["tools"][0]["function"]["parameters"]["required"] == ["user_id"]
    assert text["messages"][0]["content"] == f"{HISTORY[0].content}\n\n{render_tools_compact(tools)}"


def test_retries_then_succeeds_and_counts_usage():
    with OpenAIDouble([http_error(500), reply("ok", usage=(10, 2))]) as srv:
        agent = OpenAIAgent("m", base_url=srv.base_url, max_retries=2, timeout=5)
        assert agent.act(HISTORY[:2], []) == "ok"
        assert srv.request_count == 2
    assert (agent.stats.requests, agent.stats.prompt_tokens, agent.stats.completion_tokens) == (1, 10, 2)


def test_timeout_is_a_clear_error_without_the_key(monkeypatch):
    monkeypatch.setenv("SGCD_TEST_KEY", "sk-verysecretvalue123456")
    with OpenAIDouble([hang(3.0)]) as srv:
        agent = OpenAIAgent(
            "m", base_url=srv.base_url, api_key_env="SGCD_TEST_KEY", max_retries=0, timeout=0.3
        )
        with pytest.raises(OpenAIAgentError, match="Timeout") as info:
            agent.act(HISTORY[:2], [])
    assert "verysecret" not in str(info.value) and agent.stats.failures == 1


def test_drives_a_tool_env_to_the_end():
    """A scripted server plays the agent against a real ToolEnv-style episode through act()."""
    from sgcd.envs.toolcalls import ToolEnv, ToolSpec
    from sgcd.types import Observation

    spec = ToolSpec(
        name="get_user_details",
        description="",
        parameters={"type": "object", "properties": {"user_id": {"type": "string"}}, "required": ["user_id"]},
        fn=lambda a: json.dumps({"name": "Mia"}),
    )
    env = ToolEnv(
        task=Task("t", "test", "f", "who"),
        opening=Observation(tuple(HISTORY[:2]), (spec.schema(),)),
        tools={"get_user_details": spec},
        verify=lambda text: (float("Mia" in text), {}),
    )
    script = [reply(None, tool_calls=[("get_user_details", {"user_id": "mia_1"})]), reply("You are Mia.")]
    with OpenAIDouble(script) as srv:
        agent = OpenAIAgent("m", base_url=srv.base_url, max_retries=0, timeout=5)
        obs = env.reset()
        result = env.step(agent.act(env.messages, obs.tools))
        assert not result.done and "Mia" in result.messages[0].content
        result = env.step(agent.act(env.messages, obs.tools))
        assert srv.requests[1]["body"]["messages"][-1]["role"] == "tool"
    assert result.done and result.reward == 1.0
