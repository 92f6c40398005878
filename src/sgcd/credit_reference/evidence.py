"""Evidence for the summarizers: which siblings of a group are shown, and their compact step-by-step rendering.

Selection (algorithm.md §3): up to 2 successes, shortest first (fewest steps, then fewest calls, then sibling
order), and up to 3 failures, those that diverge earliest from their nearest success first, then the highest
reward, then sibling order [ours: the paper does not say how it orders failures]. Each step renders as

    [k] thought (<=200 chars) | call: name(args) (<=300) | obs: (<=300, "ERROR: " when it failed)

then the final answer and the reward. A step with no call (a reply to the user or the final answer) renders as
`[k] reply: text (<=300) | obs: ...`. The tool-call markup is cut from the thought, since the call line shows it.

Signatures: an action is canonicalized as `tool(sorted arg keys)`; the offline summarizer and the failure
ordering compare signature sequences with difflib (a success's own failed calls left out of the alignment). [ours] A call that returned an error gets its own signature,
`tool(keys)!error`: a failed call is not the action the successes took (see offline.py). The evidence works on a `TrajectoryGroup` or on plain
`Episode`s, so it needs no model.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sgcd.types import CallRecord, Episode, Step, TrajectoryGroup

MAX_SUCCESSES = 2
MAX_FAILURES = 3
THOUGHT_CHARS = 200
CALL_CHARS = 300
OBS_CHARS = 300
ANSWER_CHARS = 300
INSTRUCTION_CHARS = 2000

_TOOL_MARKUP_RE = re.compile(r"<tool_call>.*?(</tool_call>|$)", re.DOTALL)
_WS_RE = re.compile(r"\s+")


ERROR_MARK = "!error"


def signature(call: CallRecord) -> str:
    """The canonical action: `tool(sorted arg keys)`, values left out on purpose; `!error` marks a failed call."""
    return f"{call.name}({','.join(sorted(call.arguments))})" + (ERROR_MARK if call.error else "")


def episode_signatures(episode: Episode) -> list[str]:
    return [signature(c) for step in episode.steps for c in step.calls]


def episode_calls(episode: Episode) -> list[CallRecord]:
    return [c for step in episode.steps for c in step.calls]


def success_calls(episode: Episode) -> list[CallRecord]:
    """A success's calls for alignment: its failed calls dropped (an error is a no-op the others need not copy)."""
    return [c for c in episode_calls(episode) if not c.error]


def first_mismatch(fail_sigs: Sequence[str], succ_sigs: Sequence[str]) -> tuple[int, int] | None:
    """(index in the failure, index in the success) of the first non-equal difflib opcode; None if equal."""
    matcher = difflib.SequenceMatcher(None, list(fail_sigs), list(succ_sigs), autojunk=False)
    for tag, i1, _i2, j1, _j2 in matcher.get_opcodes():
        if tag != "equal":
            return i1, j1
    return None


def nearest_success(fail_sigs: Sequence[str], succ_sig_lists: Sequence[Sequence[str]]) -> int:
    """Index of the success whose signature sequence is most similar (difflib ratio; first on ties)."""
    best, best_ratio = 0, -1.0
    for j, succ in enumerate(succ_sig_lists):
        ratio = difflib.SequenceMatcher(None, list(fail_sigs), list(succ), autojunk=False).ratio()
        if ratio > best_ratio:
            best, best_ratio = j, ratio
    return best


def truncate(text: str, limit: int) -> str:
    """Whitespace collapsed to single spaces; cut to `limit` chars with a trailing ellipsis."""
    text = _WS_RE.sub(" ", text).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def thought_of(step: Step) -> str:
    """The assistant's words for this turn without the tool-call markup (the call line shows the call)."""
    text = _TOOL_MARKUP_RE.sub(" ", step.text)
    stripped = text.strip()
    if step.calls and stripped.startswith("{"):
        try:
            json.loads(stripped)
            return ""
        except json.JSONDecodeError:
            pass
    return stripped


def render_call(call: CallRecord) -> str:
    args = ", ".join(
        f"{k}={json.dumps(call.arguments[k], ensure_ascii=False)}" for k in sorted(call.arguments)
    )
    return f"{call.name}({args})"


def render_step(k: int, step: Step) -> str:
    failed = step.error or any(c.error for c in step.calls)
    obs = truncate(step.observation, OBS_CHARS)
    obs_part = f"obs: {'ERROR: ' if failed else ''}{obs}"
    if not step.calls:
        return f"[{k}] reply: {truncate(step.text, ANSWER_CHARS)} | {obs_part}"
    calls = truncate("; ".join(render_call(c) for c in step.calls), CALL_CHARS)
    thought = truncate(thought_of(step), THOUGHT_CHARS) or "-"
    return f"[{k}] {thought} | call: {calls} | {obs_part}"


def render_episode(title: str, episode: Episode) -> str:
    lines = [f"=== {title} (reward {episode.reward:.2f}, {len(episode.steps)} steps) ==="]
    lines += [render_step(k, step) for k, step in enumerate(episode.steps)]
    lines.append(f"final answer: {truncate(episode.final_answer, ANSWER_CHARS) or '(none)'}")
    lines.append(f"reward: {episode.reward:.2f} ({'success' if episode.success else 'failure'})")
    return "\n".join(lines)


def tool_names(tools: Sequence[dict[str, Any]]) -> list[str]:
    """`name(param, ...)` of each OpenAI-format tool schema."""
    out = []
    for tool in tools:
        fn = tool.get("function", tool)
        params = sorted((fn.get("parameters") or {}).get("properties") or {})
        out.append(f"{fn.get('name', '?')}({', '.join(params)})")
    return out


@dataclass(frozen=True)
class GroupEvidence:
    """What the summarizers read about one group.

    successes / failures: every sibling, split by success (the offline summarizer counts over all of them);
    shown_successes / shown_failures: the selected ones the rendering shows (and the LLM reads).
    """

    task_id: str
    instruction: str
    tools: tuple[dict[str, Any], ...]
    successes: tuple[Episode, ...]
    failures: tuple[Episode, ...]
    shown_successes: tuple[Episode, ...]
    shown_failures: tuple[Episode, ...]

    @property
    def is_mixed(self) -> bool:
        return bool(self.successes) and bool(self.failures)

    def render(self) -> str:
        """The compact text the LLM summarizer reads (deterministic: the cache key hashes it)."""
        head = [
            f"Task: {truncate(self.instruction, INSTRUCTION_CHARS)}",
            f"Tools: {', '.join(tool_names(self.tools)) or '(none)'}",
            f"Siblings: {len(self.successes)} succeeded, {len(self.failures)} failed; shown: "
            f"{len(self.shown_successes)} successes, {len(self.shown_failures)} failures.",
        ]
        parts = ["\n".join(head)]
        parts += [render_episode(f"Success {i + 1}", e) for i, e in enumerate(self.shown_successes)]
        parts += [render_episode(f"Failure {i + 1}", e) for i, e in enumerate(self.shown_failures)]
        return "\n\n".join(parts)

    def digest(self) -> str:
        return hashlib.sha256(self.render().encode("utf-8")).hexdigest()


def _failure_order_key(idx: int, ep: Episode, succ_sigs: list[list[str]]) -> tuple[int, float, int]:
    sigs = episode_signatures(ep)
    if not succ_sigs:
        return (0, -ep.reward, idx)
    mm = first_mismatch(sigs, succ_sigs[nearest_success(sigs, succ_sigs)])
    return (len(sigs) + 1 if mm is None else mm[0], -ep.reward, idx)


def select_evidence(
    group: TrajectoryGroup | Sequence[Episode],
    instruction: str | None = None,
    tools: Sequence[dict[str, Any]] | None = None,
    max_successes: int = MAX_SUCCESSES,
    max_failures: int = MAX_FAILURES,
) -> GroupEvidence:
    """Split a group's siblings and pick the ones to show (see the module docstring for the order)."""
    if isinstance(group, TrajectoryGroup):
        episodes = [t.episode for t in group.trajectories]
        task_id = group.task_id
        instruction = group.instruction if instruction is None else instruction
        tools = group.prompt.tools if tools is None else tools
    else:
        episodes = list(group)
        task_id = episodes[0].task_id if episodes else ""
    succ = [(i, e) for i, e in enumerate(episodes) if e.success]
    fail = [(i, e) for i, e in enumerate(episodes) if not e.success]
    by_length = sorted(succ, key=lambda ie: (len(ie[1].steps), len(episode_calls(ie[1])), ie[0]))
    shown_succ = [e for _, e in by_length[:max_successes]]
    succ_sigs = [[signature(c) for c in success_calls(e)] for _, e in by_length]
    by_divergence = sorted(fail, key=lambda ie: _failure_order_key(ie[0], ie[1], succ_sigs))
    return GroupEvidence(
        task_id=task_id,
        instruction=instruction or "",
        tools=tuple(tools or ()),
        successes=tuple(e for _, e in succ),
        failures=tuple(e for _, e in fail),
        shown_successes=tuple(shown_succ),
        shown_failures=tuple(e for _, e in by_divergence[:max_failures]),
    )
