"""Fuzz: arbitrary model output through airline-lite's `step` (1,000 episodes of 2-5 turns, so thousands of
steps) and through the parser (1,000 texts).

Invariants: no exception escapes; every error becomes an "Error: ..." observation and is counted (the count of
format + tool errors grows by exactly the number of error observations of the turn); a turn with no tool-call
markup ends the episode with reward 0 or 1; no tool ever crashes (internal_errors stays 0); after the end, a
step is an observation too.
"""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sgcd.envs.airline_lite import make_domain
from sgcd.envs.airline_lite.tools import TOOLS
from sgcd.envs.toolcalls import has_tool_markup, parse_tool_calls

DOMAIN = make_domain(test_size=20)
TASKS = DOMAIN.tasks("test")
NAMES = sorted(TOOLS) + ["nope", ""]
PARAMS = sorted({p for _, params, _, _ in TOOLS.values() for p in params["properties"]}) + ["x"]
IDS = sorted({t.data["intent"].get("reservation_id", "ABC123") for t in TASKS}) + ["credit_card_1", "HA100"]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 30),
    st.floats(allow_nan=True),
    st.text(max_size=12),
    st.sampled_from(IDS),
)
json_values = st.recursive(
    scalars,
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
    max_leaves=6,
)


@st.composite
def call_text(draw) -> str:
    body = {
        "name": draw(st.sampled_from(NAMES)),
        "arguments": draw(st.dictionaries(st.sampled_from(PARAMS), json_values, max_size=5)),
    }
    if draw(st.booleans()):
        body[draw(st.sampled_from(["args", "id", "arguments"]))] = draw(json_values)
    raw = json.dumps(body)
    cut = draw(st.integers(0, len(raw)))
    raw = raw if draw(st.integers(0, 3)) else raw[:cut]  # sometimes truncated JSON
    close = draw(st.sampled_from(["</tool_call>", "</tool_call>", "", "</tool_call></tool_call>"]))
    return f"<tool_call>{raw}{close}"


turn_text = st.one_of(
    st.text(max_size=80),
    call_text(),
    st.lists(call_text(), min_size=2, max_size=6).map("".join),
    st.tuples(st.text(max_size=20), call_text(), st.text(max_size=20)).map("".join),
    st.sampled_from(["", "<tool_call>", "</tool_call>", "<tool_call></tool_call>", "x" * 7000]),
)


def n_error_observations(observation: str) -> int:
    return sum(1 for line in observation.split("\n") if line.startswith("Error:"))


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
@given(st.integers(0, len(TASKS) - 1), st.lists(turn_text, min_size=1, max_size=4))
def test_arbitrary_output_never_escapes(task_index, turns):
    env = DOMAIN.make_env(TASKS[task_index])
    env.reset()
    errors_before, done = 0, False
    for text in turns + ["final answer"]:
        result = env.step(text)
        counts = result.info["counts"]
        assert counts["internal_errors"] == 0, env.steps[-1].observation
        if done:  # a step after the end: an observation, counted
            assert result.done and counts["after_end"] >= 1 and result.messages[0].content.startswith("Error")
            break
        step = result.info["step"]
        errors_now = counts["tool_errors"] + counts["format_errors"]
        assert errors_now - errors_before == n_error_observations(step.observation), (text, step.observation)
        assert step.error == (errors_now > errors_before)
        if not result.done:
            assert all(m.role == "tool" for m in result.messages) and len(result.messages) >= 1
        errors_before = errors_now
        if not has_tool_markup(text) and len(text) <= env.limits.max_chars:
            assert result.done and result.info["reason"] == "final_answer"
        if result.done:
            assert result.reward in (0.0, 1.0) and result.info["episode"].task_id == TASKS[task_index].task_id
            done = True


@settings(max_examples=1000, deadline=None, derandomize=True)
@given(
    st.lists(
        st.one_of(st.text(max_size=30), st.sampled_from(["<tool_call>", "</tool_call>", "{", '"name"'])),
        max_size=8,
    )
)
def test_parser_never_raises_and_markup_always_yields_something(pieces):
    text = "".join(pieces)
    calls, errors = parse_tool_calls(text)
    assert all(isinstance(e, str) and e for e in errors)
    assert bool(calls or errors) == has_tool_markup(text)
