"""Tool calls in model text, and a generic single-use tool-use episode engine every domain can reuse.

Convention (Hermes / Qwen): a turn may hold one or more `<tool_call>{"name": ..., "arguments": {...}}</tool_call>`
blocks; a turn with no tool-call markup is a message to the user, i.e. the final answer. Everything malformed
(broken JSON, unknown tool, missing / extra / ill-typed arguments, a call after the episode ended, over-long
output) becomes an error observation the model sees and a counter in `info`; nothing here raises on model text.

`ToolEnv` runs one episode over a set of `ToolSpec`s: it parses each assistant turn, validates and runs the calls,
enforces per-episode limits (turns, calls, errors: each ends the episode with reward 0 and a `reason`), and on the
last step hands the domain's verifier the final answer and returns the finished `Episode` in `info["episode"]`.

Departures from the textbook convention: an unclosed trailing `<tool_call>` block is accepted when its JSON
parses (generation often stops on the end-of-turn token before `</tool_call>`); `arguments` given as a JSON string
(OpenAI style) is decoded. The argument validator covers the JSON-schema subset tool schemas use (type, enum,
required, additionalProperties, items) rather than pulling in a full validator.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sgcd.types import CallRecord, Episode, Message, Observation, Step, StepResult, ToolCall

_BLOCK = re.compile(r"<tool_call>(.*?)</tool_call>", re.DOTALL)
# A tool schema's mark for how a text prompt should render it ("json" | "compact"; sgcd.policy.chat reads it).
TOOL_FORMAT_KEY = "x-sgcd-format"
_OPEN, _CLOSE = "<tool_call>", "</tool_call>"


def compact_json(obj: Any) -> str:
    """Canonical compact JSON: sorted keys, no spaces (tool outputs and hashes use this)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def format_tool_call(name: str, arguments: dict[str, Any]) -> str:
    """The text of one tool call in the Hermes convention (keys in the given order, compact separators)."""
    return f"{_OPEN}{json.dumps({'name': name, 'arguments': arguments}, separators=(', ', ': '))}{_CLOSE}"


def has_tool_markup(text: str) -> bool:
    """True when the text tries to call a tool (so it is not a final answer even if nothing parses)."""
    return _OPEN in text or _CLOSE in text


def _decode_call(raw: str) -> tuple[ToolCall | None, str | None]:
    try:
        obj = json.loads(raw.strip())
    except (json.JSONDecodeError, RecursionError, ValueError) as exc:
        return None, f"tool call is not valid JSON ({str(exc)[:80]})"
    if not isinstance(obj, dict):
        return None, "tool call must be a JSON object with 'name' and 'arguments'"
    name = obj.get("name")
    if not isinstance(name, str) or not name:
        return None, "tool call has no string 'name'"
    args = obj.get("arguments", {})
    if isinstance(args, str):
        try:
            args = json.loads(args) if args.strip() else {}
        except (json.JSONDecodeError, RecursionError, ValueError):
            return None, f"arguments of {name!r} are not a JSON object"
    if args is None:
        args = {}
    if not isinstance(args, dict):
        return None, f"arguments of {name!r} must be a JSON object"
    extra = sorted(set(obj) - {"name", "arguments"})
    if extra:
        return None, f"tool call has unexpected keys {extra}; use only 'name' and 'arguments'"
    return ToolCall(name=name, arguments=args), None


def parse_tool_calls(text: str) -> tuple[list[ToolCall], list[str]]:
    """All tool calls in `text` and one error message per malformed block. Never raises.

    A closed block is `<tool_call>JSON</tool_call>`; after the last closed block, an opening tag without a
    closing one is parsed to the end of the text. A stray closing tag with no opening one is an error.
    """
    calls: list[ToolCall] = []
    errors: list[str] = []
    end = 0
    for match in _BLOCK.finditer(text):
        if _CLOSE in text[end : match.start()]:
            errors.append("'</tool_call>' without a matching '<tool_call>'")
        call, err = _decode_call(match.group(1))
        if call is not None:
            calls.append(call)
        else:
            errors.append(err or "malformed tool call")
        end = match.end()
    tail = text[end:]
    if _OPEN in tail:
        call, err = _decode_call(tail[tail.index(_OPEN) + len(_OPEN) :])
        if call is not None:
            calls.append(call)
        else:
            errors.append(f"unclosed <tool_call>: {err}")
    elif _CLOSE in tail:
        errors.append("'</tool_call>' without a matching '<tool_call>'")
    return calls, errors


_TYPES: dict[str, Callable[[Any], bool]] = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "array": lambda v: isinstance(v, list),
    "object": lambda v: isinstance(v, dict),
    "null": lambda v: v is None,
}


def _check_value(path: str, value: Any, schema: dict[str, Any]) -> list[str]:
    kind = schema.get("type")
    kinds = kind if isinstance(kind, list) else [kind] if kind else []
    if kinds and not any(_TYPES.get(k, lambda v: True)(value) for k in kinds):
        return [f"argument {path!r} must be {' or '.join(kinds)}, got {type(value).__name__}"]
    if "enum" in schema and value not in schema["enum"]:
        return [f"argument {path!r} must be one of {schema['enum']}, got {value!r}"[:200]]
    if isinstance(value, list) and "items" in schema:
        out: list[str] = []
        for i, item in enumerate(value):
            out += _check_value(f"{path}[{i}]", item, schema["items"])
        return out
    if isinstance(value, dict) and "properties" in schema:
        return validate_arguments(value, schema, prefix=f"{path}.")
    return []


def validate_arguments(args: dict[str, Any], schema: dict[str, Any], prefix: str = "") -> list[str]:
    """Errors of `args` against an object JSON schema: missing required, extra (unless allowed), ill-typed."""
    props: dict[str, Any] = schema.get("properties", {})
    errors = [
        f"missing required argument {prefix + k!r}" for k in schema.get("required", []) if k not in args
    ]
    if schema.get("additionalProperties", False) is False:
        errors += [f"unexpected argument {prefix + k!r}"[:200] for k in args if k not in props]
    for key, value in args.items():
        if key in props:
            errors += _check_value(prefix + key, value, props[key])
    return errors


class ToolError(Exception):
    """Raised by a tool for a refused or impossible request; becomes an error observation."""


@dataclass(frozen=True)
class ToolSpec:
    """One tool: its OpenAI function schema parts, whether it writes state, and its implementation.

    fn(arguments) -> output text (already compact JSON or a short sentence); raise ToolError to refuse.
    show_required: False drops `required` from the schema the agent sees (it is still enforced) for domains
    whose prompt says once that every argument is required; this saves tokens in small-model prompts.
    tool_format: "json" | "compact" marks the schema (TOOL_FORMAT_KEY) with the tool block the domain's prompt
    uses when a policy renders tools into text (sgcd.policy.chat.render_tools); None leaves the default, json.
    """

    name: str
    description: str
    parameters: dict[str, Any]
    fn: Callable[[dict[str, Any]], str]
    is_write: bool = False
    show_required: bool = True
    tool_format: str | None = None

    def schema(self) -> dict[str, Any]:
        params = self.parameters
        if not self.show_required:
            params = {k: v for k, v in params.items() if k != "required"}
        out: dict[str, Any] = {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": params},
        }
        if self.tool_format is not None:
            out[TOOL_FORMAT_KEY] = self.tool_format
        return out


@dataclass(frozen=True)
class Limits:
    """Per-episode limits; exceeding one ends the episode cleanly with reward 0 and `reason`."""

    max_turns: int = 16  # assistant turns
    max_calls: int = 24  # tool calls over the episode
    max_errors: int = 8  # format + tool errors over the episode
    max_calls_per_turn: int = 4  # calls beyond this in one turn are rejected as errors
    max_chars: int = 6000  # a longer assistant turn is rejected unread (over-long output)


@dataclass
class Counts:
    """Running counters of one episode (copied into every StepResult.info["counts"])."""

    turns: int = 0
    calls: int = 0
    tool_errors: int = 0  # unknown tool, bad arguments, tool refused, tool crashed
    format_errors: int = 0  # broken markup / JSON, over-long output, too many calls in a turn
    after_end: int = 0  # steps attempted after the episode ended
    internal_errors: int = 0  # a tool raised something other than ToolError (a bug; tests keep it at 0)
    writes: int = 0  # successful state-changing calls

    @property
    def errors(self) -> int:
        return self.tool_errors + self.format_errors


@dataclass
class ToolEnv:
    """A single-use tool-use episode. Domains subclass it (or pass callables) and supply the verifier.

    task: the domain's Task; opening: the reset() observation; tools: name -> ToolSpec;
    verify(final_answer) -> (reward, breakdown) runs once, when the agent answers (never on a limit).
    """

    task: Any
    opening: Observation
    tools: dict[str, ToolSpec]
    verify: Callable[[str], tuple[float, dict[str, Any]]]
    limits: Limits = field(default_factory=Limits)
    counts: Counts = field(default_factory=Counts)
    messages: list[Message] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    done: bool = False
    reward: float = 0.0
    reason: str = ""
    verifier: dict[str, Any] = field(default_factory=dict)

    def reset(self) -> Observation:
        self.messages = list(self.opening.messages)
        return self.opening

    def step(self, assistant_text: Any) -> StepResult:
        if self.done:
            self.counts.after_end += 1
            note = Message(role="tool", name="error", content="Error: the episode has already ended.")
            return StepResult(messages=(note,), done=True, reward=self.reward, info=self._info(error=True))
        text = assistant_text if isinstance(assistant_text, str) else str(assistant_text)
        self.counts.turns += 1
        self.messages.append(Message(role="assistant", content=text))
        if len(text) > self.limits.max_chars:
            self.counts.format_errors += 1
            err = (
                f"Error: output too long ({len(text)} > {self.limits.max_chars} characters); nothing was run."
            )
            return self._finish_turn(text, (), [Message(role="tool", name="error", content=err)], True)
        calls, parse_errors = parse_tool_calls(text)
        if not calls and not parse_errors and not has_tool_markup(text):
            return self._final(text)
        out: list[Message] = []
        for err in parse_errors:
            self.counts.format_errors += 1
            out.append(Message(role="tool", name="error", content=f"Error: {err}"))
        records: list[CallRecord] = []
        for i, call in enumerate(calls):
            if i >= self.limits.max_calls_per_turn:
                self.counts.format_errors += 1
                err = f"Error: at most {self.limits.max_calls_per_turn} tool calls per turn; {call.name!r} skipped."
                out.append(Message(role="tool", name="error", content=err))
                continue
            record = self._run_call(call)
            records.append(record)
            out.append(Message(role="tool", name=call.name, content=record.output))
        return self._finish_turn(
            text, tuple(records), out, bool(parse_errors) or any(r.error for r in records)
        )

    def _run_call(self, call: ToolCall) -> CallRecord:
        self.counts.calls += 1
        spec = self.tools.get(call.name)
        if spec is None:
            self.counts.tool_errors += 1
            names = ", ".join(sorted(self.tools))
            return CallRecord(
                call.name, call.arguments, f"Error: unknown tool {call.name!r}; tools: {names}", True
            )
        problems = validate_arguments(call.arguments, spec.parameters)
        if problems:
            self.counts.tool_errors += 1
            out = "Error: " + "; ".join(problems[:4])
            return CallRecord(call.name, call.arguments, out, True, spec.is_write)
        try:
            output = spec.fn(dict(call.arguments))
        except ToolError as exc:
            self.counts.tool_errors += 1
            return CallRecord(call.name, call.arguments, f"Error: {exc}", True, spec.is_write)
        except Exception as exc:  # a tool bug must not kill the rollout; counted so tests catch it
            self.counts.tool_errors += 1
            self.counts.internal_errors += 1
            out = f"Error: tool {call.name!r} failed ({type(exc).__name__})"
            return CallRecord(call.name, call.arguments, out, True, spec.is_write)
        self.counts.writes += int(spec.is_write)
        return CallRecord(call.name, call.arguments, output, False, spec.is_write)

    def _finish_turn(
        self, text: str, records: tuple[CallRecord, ...], out: list[Message], error: bool
    ) -> StepResult:
        observation = "\n".join(m.content for m in out)
        step = Step(
            turn=self.counts.turns - 1, text=text, calls=records, observation=observation, error=error
        )
        self.steps.append(step)
        self.messages.extend(out)
        reason = ""
        if self.counts.turns >= self.limits.max_turns:
            reason = f"max_turns ({self.limits.max_turns}) reached without a final answer"
        elif self.counts.calls > self.limits.max_calls:
            reason = f"max_calls ({self.limits.max_calls}) exceeded"
        elif self.counts.errors > self.limits.max_errors:
            reason = f"max_errors ({self.limits.max_errors}) exceeded"
        if reason:
            self._end(0.0, reason, {"limit": reason})
            return StepResult(messages=(), done=True, reward=0.0, info=self._info(step=step, last=True))
        return StepResult(
            messages=tuple(out), done=False, reward=0.0, info=self._info(step=step, error=error)
        )

    def _final(self, text: str) -> StepResult:
        step = Step(turn=self.counts.turns - 1, text=text, final=True)
        self.steps.append(step)
        try:
            reward, breakdown = self.verify(text)
        except Exception as exc:  # a verifier bug must not kill the rollout either
            self.counts.internal_errors += 1
            reward, breakdown = 0.0, {"verifier_error": f"{type(exc).__name__}: {exc}"}
        self._end(float(reward), "final_answer", breakdown)
        return StepResult(messages=(), done=True, reward=self.reward, info=self._info(step=step, last=True))

    def _end(self, reward: float, reason: str, breakdown: dict[str, Any]) -> None:
        self.done, self.reward, self.reason, self.verifier = True, reward, reason, breakdown

    def _info(self, step: Step | None = None, error: bool = False, last: bool = False) -> dict[str, Any]:
        info: dict[str, Any] = {"counts": dict(vars(self.counts)), "error": error}
        if step is not None:
            info["step"] = step
        if last:
            info["reason"] = self.reason
            info["verifier"] = self.verifier
            info["episode"] = self.episode()
        return info

    def episode(self) -> Episode:
        """The episode so far as an `Episode` (final once `done`)."""
        info = {
            "reason": self.reason,
            "verifier": self.verifier,
            "counts": dict(vars(self.counts)),
            "family": getattr(self.task, "family", ""),
        }
        return Episode(
            task_id=getattr(self.task, "task_id", ""),
            messages=tuple(self.messages),
            steps=tuple(self.steps),
            reward=self.reward,
            success=self.done and self.reward >= 1.0,
            info=info,
        )
