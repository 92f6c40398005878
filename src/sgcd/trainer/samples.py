"""Bounded per-group samples of a step for the report (format: see sgcd.trainer.runs).

Up to `n` mixed groups of the step, each with its credit reference, the rendered teacher text, and per sibling
the one episode JSON (`sgcd.episode_io.trajectory_record`: the text-level episode, outcome and token arrays)
plus the trainer's extras the heatmaps need (advantage, decoded tokens, weights, teacher and student
log-probs), all cut to the trajectory's own length.
"""

from __future__ import annotations

from typing import Any

from sgcd.episode_io import trajectory_record


def _reference_fields(ref: Any) -> tuple[dict | None, str]:
    if ref is None:
        return None, ""
    from sgcd.credit_reference import render_reference

    return ref.model_dump(), render_reference(ref)


def sample_rows(out: Any, step: int, tokenizer: Any, n: int) -> list[dict[str, Any]]:
    batch = out.batch
    rows: list[dict[str, Any]] = []
    row_of = {}
    for b, k in enumerate(batch.group_index_B.tolist()):
        row_of.setdefault(k, []).append(b)
    for k, group in enumerate(batch.groups[:n]):
        ref = out.references[k] if k < len(out.references) else None
        reference, text = _reference_fields(ref)
        siblings = []
        for b in row_of.get(k, []):
            traj = batch.trajectories[b]
            T = len(traj.token_ids)
            teacher = (
                None if out.teacher_B_T is None else [round(float(x), 5) for x in out.teacher_B_T[b, :T]]
            )
            siblings.append(
                {
                    **trajectory_record(traj),
                    "advantage": float(out.advantages_B[b]),
                    "tokens": [tokenizer.decode([i]) for i in traj.token_ids],
                    "weights": [round(float(x), 5) for x in out.weights_B_T[b, :T]],
                    "teacher_logprobs": teacher,
                    "student_logprobs": [round(float(x), 5) for x in out.student_B_T[b, :T]],
                }
            )
        rows.append(
            {
                "step": step,
                "task_id": group.task_id,
                "instruction": group.instruction,
                "reference": reference,
                "reference_text": text,
                "siblings": siblings,
            }
        )
    return rows
