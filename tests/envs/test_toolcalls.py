"""Tool-call parsing, argument validation and the generic ToolEnv's error accounting and limits."""

from __future__ import annotations

from sgcd.envs.base import Task
from sgcd.envs.toolcalls import (
    Limits,
    ToolEnv,
    ToolError,
    ToolSpec,
    format_tool_call,
    parse_tool_calls,
    validate_arguments,
)
from sgcd.types import Message, Observation

SCHEMA = {
    "type": "object",
    "properties": {"a": {"type": "integer"}, "b": {"type": "string", "enum": ["x", "y"]}},
    "required": ["a"],
}


def test_format_then_parse_roundtrip_two_calls():
    text = "thinking " + format_tool_call("f", {"a": 1}) + format_tool_call("g", {"b": "x"})
    calls, errors = parse_tool_calls(text)
    assert errors == []
    assert [(c.name, c.arguments) for c in calls] == [("f", {"a": 1}), ("g", {"b": "x"})]


def test_parse_malformed_cases_each_give_one_error():
    cases = {
        "<tool_call>{not json}</tool_call>": "not valid JSON",
        "<tool_call>[1, 2]</tool_call>": "JSON object",
        '<tool_call>{"arguments": {}}</tool_call>': "no string 'name'",
        '<tool_call>{"name": "f", "arguments": 3}</tool_call>': "must be a JSON object",
        '<tool_call>{"name": "f", "args": {}}</tool_call>': "unexpected keys",
        '<tool_call>{"name": "f", "arguments": "{bad"}</tool_call>': "not a JSON object",
        "only a closing tag </tool_call>": "without a matching",
        "<tool_call>{broken": "unclosed",
    }
    for text, fragment in cases.items():
        calls, errors = parse_tool_calls(text)
        assert calls == [], text
        assert len(errors) == 1 and fragment in errors[0], (text, errors)


def test_parse_lenient_forms():
    # arguments as a JSON string (OpenAI style) and an unclosed trailing block whose JSON parses
    calls, errors = parse_tool_calls('<tool_call>{"name": "f", "arguments": "{\\"a\\": 2}"}</tool_call>')
    assert errors == [] and calls[0].arguments == {"a": 2}
    calls, errors = parse_tool_calls('<tool_call>{"name": "f", "arguments": {"a": 1}}')
    assert errors == [] and calls[0].name == "f"
    assert parse_tool_calls("just an answer") == ([], [])


def test_validate_arguments_missing_extra_and_types():
    assert validate_arguments({"a": 1, "b": "x"}, SCHEMA) == []
    assert validate_arguments({}, SCHEMA) == ["missing required argument 'a'"]
    assert validate_arguments({"a": 1, "c": 0}, SCHEMA) == ["unexpected argument 'c'"]
    # a bool is not an integer in JSON schema terms, and enums are enforced
    assert validate_arguments({"a": True}, SCHEMA) == ["argument 'a' must be integer, got bool"]
    assert "must be one of" in validate_arguments({"a": 1, "b": "z"}, SCHEMA)[0]
    assert validate_arguments({"a": 1, "c": 0}, {**SCHEMA, "additionalProperties": True}) == []


def _env(limits: Limits = Limits(), answer_ok: str = "ok") -> ToolEnv:
    state = {"n": 0}

    def add(args):
        state["n"] += args["a"]
        return str(state["n"])

    def refuse(args):
        raise ToolError("no")

    def crash(args):
        raise KeyError("bug")

    tools = {
        "add": ToolSpec("add", "add a", SCHEMA, add, is_write=True),
        "refuse": ToolSpec("refuse", "always refuses", {"type": "object", "properties": {}}, refuse),
        "crash": ToolSpec("crash", "a buggy tool", {"type": "object", "properties": {}}, crash),
    }
    task = Task("t/0", "test", "fam", "do it")
    opening = Observation((Message("user", "do it"),), tuple(t.schema() for t in tools.values()))
    return ToolEnv(task, opening, tools, lambda ans: (float(ans == answer_ok), {"n": state["n"]}), limits)


def test_env_counts_every_error_and_final_answer_verifies():
    env = _env()
    env.reset()
    r = env.step(
        format_tool_call("add", {"a": 2}) + format_tool_call("nope", {}) + "<tool_call>{x</tool_call>"
    )
    # one good call, one unknown tool (tool error), one broken block (format error): 3 observations
    assert not r.done and len(r.messages) == 3
    assert r.info["counts"]["tool_errors"] == 1 and r.info["counts"]["format_errors"] == 1
    assert r.info["counts"]["writes"] == 1 and r.info["step"].error
    r = env.step(format_tool_call("refuse", {}) + format_tool_call("add", {"a": "2"}))
    assert r.info["counts"]["tool_errors"] == 3  # a ToolError and an ill-typed argument
    r = env.step(format_tool_call("crash", {}))
    assert r.info["counts"]["internal_errors"] == 1 and r.messages[0].content.startswith("Error:")
    r = env.step("ok")
    assert r.done and r.reward == 1.0 and r.info["reason"] == "final_answer"
    ep = r.info["episode"]
    assert ep.success and [s.final for s in ep.steps] == [False, False, False, True]
    assert ep.steps[0].calls[0].is_write and not ep.steps[0].calls[0].error
    # a step after the end is an observation, counted, never an exception
    late = env.step(format_tool_call("add", {"a": 1}))
    assert (
        late.done and late.info["counts"]["after_end"] == 1 and late.messages[0].content.startswith("Error")
    )


def test_limits_end_the_episode_with_zero_reward_and_a_reason():
    env = _env(Limits(max_turns=2))
    env.reset()
    assert not env.step(format_tool_call("add", {"a": 1})).done
    r = env.step(format_tool_call("add", {"a": 1}))
    assert r.done and r.reward == 0.0 and r.info["reason"].startswith("max_turns")
    env = _env(Limits(max_errors=1))
    env.reset()
    r = env.step("<tool_call>x</tool_call><tool_call>y</tool_call>")  # 2 errors > 1
    assert r.done and r.reward == 0.0 and r.info["reason"].startswith("max_errors")
    env = _env(Limits(max_calls=2, max_calls_per_turn=1))
    env.reset()
    r = env.step(format_tool_call("add", {"a": 1}) * 2)  # second call in the turn rejected, not run
    assert r.info["counts"]["calls"] == 1 and r.info["counts"]["format_errors"] == 1
    env.step(format_tool_call("add", {"a": 1}))
    r = env.step(format_tool_call("add", {"a": 1}))  # third call > max_calls 2
    assert r.done and r.info["reason"].startswith("max_calls")


def test_over_long_output_is_rejected_unread():
    env = _env(Limits(max_chars=50))
    env.reset()
    r = env.step(format_tool_call("add", {"a": 1}) + " " * 60)
    assert not r.done and r.info["counts"]["format_errors"] == 1 and r.info["counts"]["calls"] == 0
    assert "too long" in r.messages[0].content


def test_hidden_required_still_enforced():
    spec = ToolSpec("add", "", SCHEMA, lambda a: "", show_required=False)
    assert "required" not in spec.schema()["function"]["parameters"]
    env = _env()
    env.tools["add"] = ToolSpec("add", "", SCHEMA, lambda a: "1", show_required=False)
    env.reset()
    r = env.step(format_tool_call("add", {}))
    assert "missing required argument 'a'" in r.messages[0].content
