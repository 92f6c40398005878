"""Chat-template helpers: tool schemas in the system prompt, and the exact text delta after an assistant turn.

The tokenizer's own chat template renders every conversation. Two things it may not do, handled here:

- Tools. When the template has no tool support (SmolLM2's plain ChatML has none), the tool schemas are rendered
  into the system message Hermes-style, with the instruction to call tools as
  `<tool_call>{"name": ..., "arguments": {...}}</tool_call>`, which is what the environments parse.
- Deltas. After the model samples an assistant turn (ending with its end-of-turn token), the environment's
  messages and the next assistant header are appended as text rendered by the template *relative to* a
  conversation that ends with an assistant turn, then tokenized alone. Sampled ids are never re-tokenized.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sgcd.types import Message

TOOL_INSTRUCTIONS = (
    "# Tools\n\nYou may call one or more functions to assist with the user query.\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n{tools}\n</tools>\n\n"
    "For each function call, return a json object with function name and arguments within "
    "<tool_call></tool_call> XML tags:\n"
    '<tool_call>\n{{"name": <function-name>, "arguments": <args-json-object>}}\n</tool_call>\n'
    "When you have finished, reply to the user without a tool call."
)


def render_tools(tools: Sequence[dict[str, Any]]) -> str:
    """The tool block appended to the system message (one compact JSON schema per line)."""
    return TOOL_INSTRUCTIONS.format(tools="\n".join(json.dumps(t, separators=(", ", ": ")) for t in tools))


def template_supports_tools(tokenizer: Any) -> bool:
    template = getattr(tokenizer, "chat_template", None) or ""
    return isinstance(template, str) and "tools" in template


def to_template_messages(
    messages: Sequence[Message], tools: Sequence[dict[str, Any]] = (), *, inline_tools=True
):
    """Messages as template dicts; with `inline_tools`, tool schemas join the system message (one is added)."""
    out = [{"role": m.role, "content": m.content} for m in messages]
    return with_tool_block(out, tools) if inline_tools else out


def with_tool_block(out: list[dict[str, Any]], tools: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Template dicts with the rendered tool schemas appended to the system message (one is added if none)."""
    if tools:
        block = render_tools(tools)
        if out and out[0]["role"] == "system":
            out[0] = {"role": "system", "content": f"{out[0]['content']}\n\n{block}"}
        else:
            out.insert(0, {"role": "system", "content": block})
    return out


def render_prompt(tokenizer: Any, messages: Sequence[Message], tools: Sequence[dict[str, Any]]) -> str:
    """The opening conversation as text, ending with the assistant header."""
    native = template_supports_tools(tokenizer)
    dicts = to_template_messages(messages, tools, inline_tools=not native)
    kwargs = {"tools": list(tools)} if (native and tools) else {}
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
