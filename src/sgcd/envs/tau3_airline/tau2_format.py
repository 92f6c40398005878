"""Export an episode in tau2-bench's message format, so the official tools (evaluator, viewers) can read it.

`to_tau2(episode)` gives a JSON-able dict: `task_id`, `termination_reason` (tau2's TerminationReason values)
and `messages` shaped like tau2's AssistantMessage / UserMessage / ToolMessage (tool calls with ids
`call_<turn>_<k>`, tool results carrying the same id and the error flag). tau2's fixed greeting opens the
conversation, as in tau2. Malformed tool-call markup has no tau2 counterpart (tau2 agents call tools through
an API): such a block is dropped, and a turn left with neither text nor calls is dropped too; tests/envs/tau3
cross-checks only well-formed trajectories.
"""

from __future__ import annotations

from typing import Any

from sgcd.envs.tau3_airline.env import prose
from sgcd.envs.tau3_airline.prompts import GREETING
from sgcd.types import Episode


def to_tau2(episode: Episode) -> dict[str, Any]:
    """The episode as {"task_id", "termination_reason", "messages"} in tau2's message schema."""
    messages: list[dict[str, Any]] = [{"role": "assistant", "content": GREETING}]
    steps = iter(episode.steps)
    for msg in episode.messages:
        if msg.role == "user":
            messages.append({"role": "user", "content": msg.content})
        elif msg.role == "assistant":
            step = next(steps)
            if not step.calls:
                if step.final:
                    messages.append({"role": "assistant", "content": msg.content})
                continue
            ids = [f"call_{step.turn}_{k}" for k in range(len(step.calls))]
            calls = [
                {"id": i, "name": c.name, "arguments": c.arguments, "requestor": "assistant"}
                for i, c in zip(ids, step.calls)
            ]
            messages.append({"role": "assistant", "content": prose(msg.content) or None, "tool_calls": calls})
            messages += [
                {"role": "tool", "id": i, "content": c.output, "requestor": "assistant", "error": c.error}
                for i, c in zip(ids, step.calls)
            ]
    return {
        "task_id": episode.task_id,
        "termination_reason": str(episode.info.get("termination", "")),
        "messages": messages,
    }
