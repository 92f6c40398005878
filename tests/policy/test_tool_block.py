"""The tool block of a text prompt (sgcd.policy.chat): JSON (Hermes) by default, compact signatures on request.

The expected compact text below is written out by hand from the rules in `render_tools_compact`'s docstring, so a
change to the notation shows up here as a diff of the exact text.
"""

from __future__ import annotations

import json

import pytest

from sgcd.envs.toolcalls import TOOL_FORMAT_KEY, ToolSpec
from sgcd.policy.chat import (
    plain_tools,
    render_prompt,
    render_tools,
    render_tools_compact,
    tool_format,
    with_tool_block,
)
from sgcd.types import Message

LOOKUP = ToolSpec(
    "lookup",
    "find a user",
    {
        "type": "object",
        "properties": {
            "user_id": {"type": "string", "description": "as given by the user"},
            "limit": {"type": "integer", "default": 5},
            "cabin": {"type": "string", "enum": ["economy", "business"]},
            "tags": {"type": "array", "items": {"type": "string"}},
            "when": {"type": ["number", "null"]},
            "address": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "zip": {"type": "integer"}},
                "required": ["city"],
            },
        },
        "required": ["user_id", "cabin"],
    },
    lambda a: "",
)
PING = ToolSpec("ping", "", {"type": "object", "properties": {}}, lambda a: "")


def test_compact_signature_notation():
    # user_id: string -> no type (strings are the default), required -> no "?"; its description follows as an
    # indented line. limit: integer, optional, default 5 -> "limit?: int = 5". cabin: enum of strings, required
    # -> bare alternatives. tags: array of strings -> "list[str]" (inside brackets the type is spelled out).
    # when: type list -> "float|null". address: object with properties -> "{city, zip?: int}".
    # Some argument is optional, so the instruction says "required unless marked ?".
    text = render_tools_compact([LOOKUP.schema(), PING.schema()])
    assert text == (
        "# Tools (arguments are str unless typed, required unless marked ?); call one as "
        '<tool_call>{"name": ..., "arguments": {...}}</tool_call>, reply without one when done:\n'
        "lookup(user_id, limit?: int = 5, cabin: economy|business, tags?: list[str], when?: float|null, "
        "address?: {city, zip?: int}) -> find a user\n"
        "  user_id: as given by the user\n"
        "ping()"
    )


def test_compact_says_all_required_when_nothing_is_optional():
    spec = ToolSpec(
        "f", "", {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}, None
    )
    assert "(arguments are str unless typed, all required)" in render_tools_compact([spec.schema()])
    assert render_tools_compact([spec.schema()]).endswith("\nf(n: int)")


def test_format_follows_the_schemas_mark_and_json_stays_the_default():
    plain = [LOOKUP.schema()]
    marked = [ToolSpec(**{**LOOKUP.__dict__, "tool_format": "compact"}).schema()]
    assert marked[0][TOOL_FORMAT_KEY] == "compact" and TOOL_FORMAT_KEY not in plain[0]
    assert tool_format(plain) == "json" and tool_format(marked) == "compact"
    assert tool_format(marked + plain) == "json"  # mixed marks: the default
    assert render_tools(marked) == render_tools_compact(marked)
    # JSON (Hermes) is what unmarked schemas get, one schema per line, never showing the mark
    assert render_tools(plain) == render_tools(marked, "json")
    assert json.dumps(plain[0], separators=(", ", ": ")) in render_tools(plain)
    assert TOOL_FORMAT_KEY not in render_tools(marked, "json")
    # a caller may force either format
    assert render_tools(plain, "compact") == render_tools_compact(plain)
    with pytest.raises(ValueError, match="tool format 'xml'"):
        render_tools(plain, "xml")


def test_mark_is_stripped_where_schemas_leave_as_data():
    marked = [ToolSpec(**{**LOOKUP.__dict__, "tool_format": "compact"}).schema()]
    assert plain_tools(marked) == [LOOKUP.schema()]
    assert TOOL_FORMAT_KEY in marked[0]  # the caller's schemas are not modified


class _NativeToolsTokenizer:
    """A template with tool support: records the `tools=` it receives."""

    chat_template = "{{ tools }}"

    def apply_chat_template(self, dicts, tokenize, add_generation_prompt, tools=None):
        self.tools = tools
        return "x"


def test_native_template_receives_plain_schemas():
    tok = _NativeToolsTokenizer()
    marked = [ToolSpec(**{**LOOKUP.__dict__, "tool_format": "compact"}).schema()]
    render_prompt(tok, [Message("user", "hi")], marked)
    assert tok.tools == [LOOKUP.schema()]


def test_with_tool_block_appends_to_the_system_message():
    out = with_tool_block(
        [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}], [PING.schema()]
    )
    assert out[0]["content"] == "S\n\n" + render_tools([PING.schema()])
    out = with_tool_block([{"role": "user", "content": "U"}], [PING.schema()], "compact")
    assert out[0] == {"role": "system", "content": render_tools_compact([PING.schema()])}
