"""Chat-template helpers: tool schemas in the system prompt, and the exact text delta after an assistant turn.

The tokenizer's own chat template renders every conversation. Two things it may not do, handled here:

- Tools. When the template has no tool support (SmolLM2's plain ChatML has none), the tool schemas are rendered
  into the system message, with the instruction to call tools as
  `<tool_call>{"name": ..., "arguments": {...}}</tool_call>`, which is what the environments parse. Two formats:
  `json` (Hermes-style, one JSON schema per line; the default) and `compact` (one Python-like signature per
  tool, `update_baggage(reservation_id, total_bags: int, ...) -> description`; for airline-lite's 11 tools 215
  SmolLM2 tokens against 982 as JSON). A domain picks
  its format by marking its schemas with `TOOL_FORMAT_KEY` (the mark survives JSON round trips of a group's
  prompt, so the teacher renders what the student saw); a caller may force one with `fmt=`. The mark is
  removed wherever schemas leave as data (a template's `tools=`, an OpenAI request: `plain_tools`).
- Deltas. After the model samples an assistant turn (ending with its end-of-turn token), the environment's
  messages and the next assistant header are appended as text rendered by the template *relative to* a
  conversation that ends with an assistant turn, then tokenized alone. Sampled ids are never re-tokenized.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sgcd.envs.toolcalls import TOOL_FORMAT_KEY
from sgcd.types import Message

TOOL_INSTRUCTIONS = (
    "# Tools\n\nYou may call one or more functions to assist with the user query.\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n{tools}\n</tools>\n\n"
    "For each function call, return a json object with function name and arguments within "
    "<tool_call></tool_call> XML tags:\n"
    '<tool_call>\n{{"name": <function-name>, "arguments": <args-json-object>}}\n</tool_call>\n'
    "When you have finished, reply to the user without a tool call."
)


COMPACT_INSTRUCTIONS = (
    "# Tools (arguments are str unless typed, {required}); call one as "
    '<tool_call>{{"name": ..., "arguments": {{...}}}}</tool_call>, reply without one when done:\n{tools}'
)
TOOL_FORMATS = ("json", "compact")
_SHORT_TYPES = {"string": "str", "integer": "int", "number": "float", "boolean": "bool", "object": "dict"}


def tool_format(tools: Sequence[dict[str, Any]]) -> str:
    """The format the schemas ask for: their common `TOOL_FORMAT_KEY`, else json (no or mixed marks)."""
    marks = {t.get(TOOL_FORMAT_KEY, "json") for t in tools}
    return marks.pop() if len(marks) == 1 and marks <= set(TOOL_FORMATS) else "json"


def plain_tools(tools: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The schemas without sgcd's format mark: what a template's `tools=` or an OpenAI request receives."""
    return [{k: v for k, v in t.items() if k != TOOL_FORMAT_KEY} for t in tools]


def render_tools(tools: Sequence[dict[str, Any]], fmt: str | None = None) -> str:
    """The tool block appended to the system message, in `fmt` (None: the format the schemas ask for)."""
    fmt = fmt or tool_format(tools)
    if fmt == "compact":
        return render_tools_compact(tools)
    if fmt != "json":
        raise ValueError(f"tool format {fmt!r}: choose one of {', '.join(TOOL_FORMATS)}")
    return render_tools_json(tools)


def render_tools_json(tools: Sequence[dict[str, Any]]) -> str:
    """Hermes-style: the instruction and one compact JSON schema per line inside <tools></tools>."""
    lines = "\n".join(json.dumps(t, separators=(", ", ": ")) for t in plain_tools(tools))
    return TOOL_INSTRUCTIONS.format(tools=lines)


def render_tools_compact(tools: Sequence[dict[str, Any]]) -> str:
    """One signature per tool, `name(arg, n: int, opt?: bool) -> description`, under a one-line instruction.

    Types: an argument shown without one is a string (the instruction says so; strings are most arguments, and
    `: str` costs two tokens each); otherwise int, float, bool, dict, list[T] (T spelled out, str included),
    `{a, b?: int}` for an object with properties (its fields follow the same rules), `x|y` for an enum of
    strings (other enum values as JSON), `float|null` for a type list; `= default` when the schema gives one.
    `?` marks an optional argument (the instruction says "all required" when no argument is optional).
    Argument descriptions, when a schema has them, follow its signature as indented `arg: description` lines,
    so nothing is lost of the schema subset the environments use (type, enum, required, items, properties,
    default, description).
    """
    fns = [t.get("function", t) for t in tools]
    optional = any(
        set((fn.get("parameters") or {}).get("properties", {})) - set(_required(fn.get("parameters") or {}))
        for fn in fns
    )
    lines = [line for fn in fns for line in _signature(fn)]
    required = "required unless marked ?" if optional else "all required"
    return COMPACT_INSTRUCTIONS.format(required=required, tools="\n".join(lines))


def _required(schema: dict[str, Any]) -> list[str]:
    return list(schema.get("required", []))


def _signature(fn: dict[str, Any]) -> list[str]:
    params = fn.get("parameters") or {}
    props: dict[str, Any] = params.get("properties", {})
    line = f"{fn['name']}({_fields(props, _required(params))})"
    if fn.get("description"):
        line += f" -> {fn['description']}"
    notes = [
        f"  {k}: {p['description']}" for k, p in props.items() if isinstance(p, dict) and p.get("description")
    ]
    return [line, *notes]


def _fields(props: dict[str, Any], required: list[str]) -> str:
    out = []
    for key, prop in props.items():
        kind = _type(prop)
        text = key + ("" if key in required else "?") + ("" if kind == "str" else f": {kind}")
        if isinstance(prop, dict) and "default" in prop:
            text += f" = {json.dumps(prop['default'])}"
        out.append(text)
    return ", ".join(out)


def _type(schema: Any) -> str:
    """A JSON-schema type in the compact notation (see render_tools_compact)."""
    if not isinstance(schema, dict):
        return "any"
    if "enum" in schema:  # strings bare (a|b), other values as JSON (1|2|null)
        return "|".join(v if isinstance(v, str) else json.dumps(v) for v in schema["enum"])
    kind = schema.get("type")
    if isinstance(kind, list):
        return "|".join(_type({**schema, "type": k}) for k in kind)
    if kind == "array":
        return f"list[{_type(schema['items'])}]" if "items" in schema else "list"
    if kind == "object" and schema.get("properties"):
        return "{" + _fields(schema["properties"], _required(schema)) + "}"
    return _SHORT_TYPES.get(kind, kind or "any")


def template_supports_tools(tokenizer: Any) -> bool:
    template = getattr(tokenizer, "chat_template", None) or ""
    return isinstance(template, str) and "tools" in template


def to_template_messages(
    messages: Sequence[Message],
    tools: Sequence[dict[str, Any]] = (),
    *,
    inline_tools=True,
    fmt: str | None = None,
):
    """Messages as template dicts; with `inline_tools`, tool schemas join the system message (one is added)."""
    out = [{"role": m.role, "content": m.content} for m in messages]
    return with_tool_block(out, tools, fmt) if inline_tools else out


def with_tool_block(
    out: list[dict[str, Any]], tools: Sequence[dict[str, Any]], fmt: str | None = None
) -> list[dict[str, Any]]:
    """Template dicts with the rendered tool schemas appended to the system message (one is added if none)."""
    if tools:
        block = render_tools(tools, fmt)
        if out and out[0]["role"] == "system":
            out[0] = {"role": "system", "content": f"{out[0]['content']}\n\n{block}"}
        else:
            out.insert(0, {"role": "system", "content": block})
    return out


def render_prompt(
    tokenizer: Any, messages: Sequence[Message], tools: Sequence[dict[str, Any]], fmt: str | None = None
) -> str:
    """The opening conversation as text, ending with the assistant header (inline tools in `fmt`, see above)."""
    native = template_supports_tools(tokenizer)
    dicts = to_template_messages(messages, tools, inline_tools=not native, fmt=fmt)
    kwargs = {"tools": plain_tools(tools)} if (native and tools) else {}
    return tokenizer.apply_chat_template(dicts, tokenize=False, add_generation_prompt=True, **kwargs)


def render_delta(tokenizer: Any, messages: Sequence[Message]) -> str:
    """Text that follows a sampled end-of-turn token: these messages, then the next assistant header.

    Derived from the template itself: render [system, user, assistant "X"] with and without the new messages;
    the delta starts right after the end-of-turn token that closes "X" (so template glue such as the newline
    after `<|im_end|>` belongs to the delta, not to the sampled ids).
    """
    eot = tokenizer.eos_token
    base = [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}]
    base.append({"role": "assistant", "content": "X"})
    new = [{"role": m.role, "content": m.content} for m in messages]
    before = tokenizer.apply_chat_template(base, tokenize=False)
    after = tokenizer.apply_chat_template(base + new, tokenize=False, add_generation_prompt=True)
    cut = before.rindex("X" + eot) + len("X" + eot)
    if not after.startswith(before[:cut]):
        raise ValueError("chat template is not prefix-stable: cannot append environment messages as a delta")
    return after[cut:]


class ChatCodec:
    """The encoding half of a TokenPolicy over a Hugging Face tokenizer: prompts, deltas, decode, end of turn.

    HFPolicy adds the model on top of it; the verl agent loop, which holds only a tokenizer (the model lives in
    the rollout server), uses it alone, so both record trajectories with exactly the same template.
    """

    def __init__(self, tokenizer: Any) -> None:
        if tokenizer.eos_token is None:
            raise ValueError("the tokenizer has no eos_token (the end-of-turn token)")
        self.tokenizer = tokenizer
        self.eot_id: int = tokenizer.convert_tokens_to_ids(tokenizer.eos_token)

    def _ids(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def encode_prompt(self, messages: Sequence[Message], tools: Sequence[dict[str, Any]] = ()) -> list[int]:
        return self._ids(render_prompt(self.tokenizer, messages, tools))

    def encode_delta(self, messages: Sequence[Message]) -> list[int]:
        return self._ids(render_delta(self.tokenizer, messages))

    def decode(self, ids: Sequence[int]) -> str:
        """Assistant text of sampled ids as the environment sees it (special tokens dropped)."""
        return self.tokenizer.decode(list(ids), skip_special_tokens=True)
