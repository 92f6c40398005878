"""Bounded per-group samples of a step for the report (format: see sgcd.trainer.runs).

Up to `n` mixed groups of the step, each with its credit reference, the rendered teacher text, and per sibling
the text-level episode plus every per-token array the heatmaps need (decoded tokens, mask, turn ids, types,
weights, teacher and student log-probs), all cut to the trajectory's own length.
"""

from __future__ import annotations

from typing import Any

from sgcd.trainer.runs import episode_dict


def _reference_fields(ref: Any) -> tuple[dict | None, str]:
    if ref is None:
        return None, ""
    from sgcd.credit_reference import render_reference

    return ref.model_dump(), render_reference(ref)


def _episode(group: Any, traj: Any) -> dict:
    try:
        from sgcd.credit_reference.group_io import episode_to_json

        return episode_to_json(traj.episode)
    except ImportError:
        return episode_dict(traj.episode)


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
                    "reward": float(traj.reward),
                    "success": bool(traj.success),
                    "advantage": float(out.advantages_B[b]),
                    "episode": _episode(group, traj),
                    "tokens": [tokenizer.decode([i]) for i in traj.token_ids],
                    "token_ids": list(traj.token_ids),
                    "action_mask": list(traj.action_mask),
                    "turn_ids": list(traj.turn_ids),
                    "token_types": list(traj.token_types) if traj.token_types else None,
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
