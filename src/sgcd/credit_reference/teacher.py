"""The teacher context: the credit reference rendered into the system message, and teacher scoring.

Teacher = the same policy given `[system + credit reference] + clean prompt`, then the *identical* trajectory
tokens (algorithm.md §4). Only the prefix differs, so trajectory token t sits at position
`len(teacher_prefix) + t` in the teacher sequence and at `len(prompt_ids) + t` in the student's; `policy.score`
takes prefix and continuation apart and returns log-probs over the continuation only, which is exactly that
alignment: teacher log-prob [b, t] and student log-prob [b, t] are about the same token `token_ids[t]`.

`ref=None` is the `teacher=none` option: the teacher prefix is each trajectory's own recorded `prompt_ids`
(not a re-encoding), so the teacher computation *is* the student computation and SGCD reduces to GRPO exactly.
[ours: the paper says "the same policy with the reference"; where in the prompt the reference goes is ours.]
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sgcd.credit_reference.schema import CreditReference
from sgcd.types import Message, Observation, Trajectory, TrajectoryGroup

HEADER = "Training-only credit reference, derived from sibling attempts"


def render_reference(ref: CreditReference) -> str:
    """The reference as the text block the teacher's system message carries (one line per step)."""
    lines = [f"{HEADER}:", f"Task: {ref.task_summary}"]
    for s in ref.steps:
        tool = s.tool if s.tool is not None else "(no tool: reasoning or answer)"
        lines.append(
            f"{s.step_id} [{s.polarity}, confidence {s.confidence:.2f}; successes {s.evidence.succ}, "
            f"failures {s.evidence.fail}] {tool}; args: {s.arg_pattern or '-'}; why: {s.why or '-'}"
        )
    if ref.first_divergence is not None:
        lines.append(f"First divergence: {ref.first_divergence.step_id}: {ref.first_divergence.description}")
    if ref.failure_modes:
        lines.append("Failure modes: " + "; ".join(ref.failure_modes))
    if ref.end_state_requirements:
        lines.append("End-state requirements: " + "; ".join(ref.end_state_requirements))
    return "\n".join(lines)


def teacher_messages(prompt_messages: Sequence[Message], ref: CreditReference | None) -> list[Message]:
    """The clean prompt with the rendered reference appended to the system message (one is added if absent).

    ref None -> the clean prompt, unchanged.
    """
    messages = list(prompt_messages)
    if ref is None:
        return messages
    block = render_reference(ref)
    if messages and messages[0].role == "system":
        sys_msg = messages[0]
        content = f"{sys_msg.content}\n\n{block}" if sys_msg.content else block
        messages[0] = dataclasses.replace(sys_msg, content=content)
    else:
        messages.insert(0, Message(role="system", content=block))
    return messages


def teacher_prefixes(policy: Any, group: TrajectoryGroup, ref: CreditReference | None) -> list[int]:
    """Token ids of the teacher prefix for this group (the same for every sibling)."""
    return list(policy.encode_prompt(teacher_messages(group.prompt.messages, ref), group.prompt.tools))


@dataclass(frozen=True)
class TeacherInputs:
    """What the teacher scores, per trajectory b.

    prefixes[b]: teacher prefix ids; continuations[b]: the trajectory's token_ids, verbatim;
    offsets[b] = len(prefixes[b]) - len(prompt_ids[b]): how far the teacher sequence is shifted relative to the
    student's (0 when ref is None). Token t of trajectory b is at len(prefixes[b]) + t in the teacher sequence.
    """

    prefixes: list[list[int]]
    continuations: list[list[int]]
    offsets: list[int]


def _trajectories(group_or_trajs: TrajectoryGroup | Sequence[Trajectory]) -> list[Trajectory]:
    if isinstance(group_or_trajs, TrajectoryGroup):
        return list(group_or_trajs.trajectories)
    return list(group_or_trajs)


def teacher_inputs(
    policy: Any,
    group_or_trajs: TrajectoryGroup | Sequence[Trajectory],
    ref: CreditReference | None,
    prompt: Observation | None = None,
) -> TeacherInputs:
    """Teacher prefixes and continuations; `prompt` is needed only for a bare trajectory list with a ref."""
    trajs = _trajectories(group_or_trajs)
    if ref is None:
        prefixes = [list(t.prompt_ids) for t in trajs]
    else:
        if isinstance(group_or_trajs, TrajectoryGroup):
            prompt = group_or_trajs.prompt
        if prompt is None:
            raise ValueError(
                "teacher_inputs: a trajectory list with a reference needs prompt= (the clean prompt)"
            )
        prefix = list(policy.encode_prompt(teacher_messages(prompt.messages, ref), prompt.tools))
        prefixes = [prefix for _ in trajs]
    return TeacherInputs(
        prefixes=prefixes,
        continuations=[list(t.token_ids) for t in trajs],
        offsets=[len(p) - len(t.prompt_ids) for p, t in zip(prefixes, trajs)],
    )


def teacher_scores(
    policy: Any,
    group_or_trajs: TrajectoryGroup | Sequence[Trajectory],
    ref: CreditReference | None,
    *,
    prompt: Observation | None = None,
    topk: int = 0,
    with_entropy: bool = False,
) -> Any:
    """Teacher `ScoreOutput`: logprobs_B_T aligned to each trajectory's token_ids (no grad).

    ref None scores after each trajectory's own prompt_ids: bit for bit the student's computation when the
    student scores the same batch.
    """
    inputs = teacher_inputs(policy, group_or_trajs, ref, prompt)
    return policy.score(
        inputs.prefixes, inputs.continuations, topk=topk, with_entropy=with_entropy, grad=False
    )
