"""The trainer's side of the credit reference: summarize the step's mixed groups, build the teacher prefixes,
and map a reference's step polarities onto tool-call tokens (for the agreement diagnostic of algorithm.md §8).

The reference itself (evidence selection, offline/LLM summarizers, rendering, the teacher's system message)
lives in `sgcd.credit_reference`; nothing here re-implements it. With `credit.teacher=none`, or for `grpo`, no
summarizer runs and the "teacher prefix" is the clean prompt itself.
"""

from __future__ import annotations

from typing import Any

import torch

from sgcd.types import TOKEN_CODE

POLARITY = {"helpful": 1.0, "harmful": -1.0, "neutral": 0.0}


def needs_references(cfg: Any) -> bool:
    return cfg.algorithm_spec.needs_references


def build_references(ctx: Any, groups: list[Any]) -> tuple[list[Any], dict[str, float]]:
    """One CreditReference per mixed group (None for all when no teacher is used), and reference/ metrics."""
    if not needs_references(ctx.cfg) or ctx.summarizer is None:
        return [None] * len(groups), {}
    from sgcd.credit_reference import summarize_groups

    refs = summarize_groups(ctx.summarizer, groups, max_concurrency=ctx.cfg.summarizer.max_concurrency)
    raw = ctx.summarizer.metrics(reset=True)
    metrics = {"reference/" + k.removeprefix("summarizer/"): float(v) for k, v in raw.items()}
    return list(refs), metrics


def teacher_prefix_rows(ctx: Any, batch: Any, refs: list[Any]) -> list[list[int]]:
    """The teacher's prefix for every row of the batch: [system + credit reference] + clean prompt."""
    if not needs_references(ctx.cfg):
        return [list(p) for p in batch.prefixes]  # teacher=none: the clean prompt, so delta = 0 exactly
    from sgcd.credit_reference import teacher_prefixes

    per_group: list[list[list[int]]] = []
    for group, ref in zip(batch.groups, refs):
        out = teacher_prefixes(ctx.policy, group, ref)
        if out and isinstance(out[0], int):  # one prefix shared by all siblings
            out = [list(out)] * len(group.trajectories)
        per_group.append([list(p) for p in out])
    return [per_group[int(k)][j] for k, j in _row_positions(batch)]


def _row_positions(batch: Any) -> list[tuple[int, int]]:
    """(group index, sibling index) of every row, in row order."""
    out, seen = [], {}
    for k in batch.group_index_B.tolist():
        j = seen.get(k, 0)
        out.append((k, j))
        seen[k] = j + 1
    return out


def token_polarity(batch: Any, refs: list[Any]) -> torch.Tensor:
    """(B, T) float: the reference's polarity (+1 helpful, -1 harmful, 0 otherwise) on each tool-call token,
    matched by the tool name of the call made in that token's turn; 0 on every other token."""
    out = torch.zeros(batch.action_mask_B_T.shape, dtype=torch.float32)
    tool_call_B_T = batch.token_types_B_T == TOKEN_CODE["tool_call"]
    for b, (k, _) in enumerate(_row_positions(batch)):
        ref = refs[k]
        if ref is None:
            continue
        by_tool: dict[str, float] = {}
        for step in getattr(ref, "steps", []):
            if step.tool and step.tool not in by_tool:
                by_tool[step.tool] = POLARITY.get(step.polarity, 0.0)
        steps = batch.trajectories[b].episode.steps
        for step in steps:
            turn = step.turn
            if not step.calls:
                continue
            pol = by_tool.get(step.calls[0].name, 0.0)
            if pol:
                sel = (batch.turn_ids_B_T[b] == turn) & tool_call_B_T[b]
                out[b][sel] = pol
    return out
