"""A step's trajectories as padded tensors, and scoring them in micro-batches.

`TokenBatch` holds the B trajectories of a step's mixed groups, right-padded to T = the longest trajectory:
prompts (clean prefixes, lists of ids), continuations (trajectory ids), action_mask_B_T, turn_ids_B_T,
token_types_B_T, rewards_B, success_B, group ids. All policies score through `score_batch`, which calls
`policy.score(prefixes, continuations, ...)` on fixed micro-batches of rows and pads each result to T, so a
forward over the same rows with the same prefixes always sees the same shapes (bit-identical on CPU).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from sgcd.types import Trajectory, TrajectoryGroup


@dataclass
class TokenBatch:
    trajectories: list[Trajectory]
    group_index_B: torch.Tensor  # (B,) long: index of the trajectory's group in `groups`
    groups: list[TrajectoryGroup]
    prefixes: list[list[int]]  # clean prompt ids per row
    continuations: list[list[int]]  # trajectory ids per row
    action_mask_B_T: torch.Tensor  # bool
    turn_ids_B_T: torch.Tensor  # long, -1 off action tokens and on padding
    token_types_B_T: torch.Tensor  # long, 0 (observation) where not recorded
    rewards_B: torch.Tensor  # float32
    success_B: torch.Tensor  # bool
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def B(self) -> int:
        return len(self.trajectories)

    @property
    def T(self) -> int:
        return int(self.action_mask_B_T.shape[1])

    @property
    def row_len(self) -> int:
        """The longest row (prompt + trajectory): old and update passes pad to it, so their shapes agree."""
        return max((len(p) + len(c) for p, c in zip(self.prefixes, self.continuations)), default=0)

    @property
    def select(self) -> list[tuple[bool, ...]]:
        """Per row, the positions any training pass scores: the action tokens (nothing else needs log-probs)."""
        return [tuple(bool(m) for m in t.action_mask) for t in self.trajectories]


def collate(groups: list[TrajectoryGroup]) -> TokenBatch:
    """Flatten groups to rows (group order, sibling order) and pad per-token fields to the longest row."""
    trajs = [t for g in groups for t in g.trajectories]
    gidx = [k for k, g in enumerate(groups) for _ in g.trajectories]
    B = len(trajs)
    T = max((len(t.token_ids) for t in trajs), default=0)
    mask = torch.zeros(B, T, dtype=torch.bool)
    turns = torch.full((B, T), -1, dtype=torch.long)
    types = torch.zeros(B, T, dtype=torch.long)
    for b, t in enumerate(trajs):
        n = len(t.token_ids)
        mask[b, :n] = torch.tensor(t.action_mask, dtype=torch.bool)
        turns[b, :n] = torch.tensor(t.turn_ids, dtype=torch.long)
        if t.token_types:
            types[b, :n] = torch.tensor(t.token_types, dtype=torch.long)
    turns = torch.where(mask, turns, torch.full_like(turns, -1))
    return TokenBatch(
        trajectories=trajs,
        group_index_B=torch.tensor(gidx, dtype=torch.long),
        groups=list(groups),
        prefixes=[list(t.prompt_ids) for t in trajs],
        continuations=[list(t.token_ids) for t in trajs],
        action_mask_B_T=mask,
        turn_ids_B_T=turns,
        token_types_B_T=types,
        rewards_B=torch.tensor([t.reward for t in trajs], dtype=torch.float32),
        success_B=torch.tensor([t.success for t in trajs], dtype=torch.bool),
    )


@dataclass
class Scores:
    """Per-token scores of a batch's rows, (B, T) (topk: (B, T, k)); None where not asked for."""

    logprobs_B_T: torch.Tensor
    entropy_B_T: torch.Tensor | None = None
    topk_logprobs_B_T_K: torch.Tensor | None = None
    topk_ids_B_T_K: torch.Tensor | None = None


def _pad_to(x: torch.Tensor | None, T: int) -> torch.Tensor | None:
    if x is None or x.shape[1] == T:
        return x
    pad = [0, 0] * (x.dim() - 2) + [0, T - x.shape[1]]
    return torch.nn.functional.pad(x, pad)


def score_rows(
    policy: Any,
    prefixes: list[list[int]],
    continuations: list[list[int]],
    T: int,
    *,
    topk: int = 0,
    with_entropy: bool = False,
    grad: bool = False,
    select: list[Any] | None = None,
    share_prefix: bool | None = None,
    pad_to: int | None = None,
) -> Scores:
    """One `policy.score` call over these rows, padded to T columns (on the policy's device)."""
    kw: dict[str, Any] = {"topk": topk, "with_entropy": with_entropy, "grad": grad}
    if pad_to is not None:
        kw["pad_to"] = pad_to
    if select is not None:
        kw["select"] = select
    if share_prefix is not None:
        kw["share_prefix"] = share_prefix
    out = policy.score(prefixes, continuations, **kw)
    return Scores(
        logprobs_B_T=_pad_to(out.logprobs, T),
        entropy_B_T=_pad_to(out.entropy, T) if with_entropy else None,
        topk_logprobs_B_T_K=_pad_to(out.topk_logprobs, T) if topk else None,
        topk_ids_B_T_K=_pad_to(out.topk_ids, T) if topk else None,
    )


@torch.no_grad()
def score_batch(
    policy: Any,
    prefixes: list[list[int]],
    continuations: list[list[int]],
    T: int,
    micro: int,
    *,
    topk: int = 0,
    with_entropy: bool = False,
    select: list[Any] | None = None,
    share_prefix: bool | None = None,
    pad_to: int | None = None,
) -> Scores:
    """Score all rows without gradient, `micro` rows per forward; results on CPU, (B, T).

    select / share_prefix: as `policy.score` (positions to score; reuse a shared prompt prefix)."""
    parts: list[Scores] = []
    for s in range(0, len(prefixes), micro):
        sc = score_rows(
            policy,
            prefixes[s : s + micro],
            continuations[s : s + micro],
            T,
            topk=topk,
            with_entropy=with_entropy,
            select=None if select is None else select[s : s + micro],
            share_prefix=share_prefix,
            pad_to=pad_to,
        )
        parts.append(sc)

    def cat(name: str) -> torch.Tensor | None:
        vals = [getattr(p, name) for p in parts]
        return None if not vals or vals[0] is None else torch.cat([v.detach().cpu() for v in vals], dim=0)

    if not parts:
        return Scores(logprobs_B_T=torch.zeros(0, T))
    return Scores(cat("logprobs_B_T"), cat("entropy_B_T"), cat("topk_logprobs_B_T_K"), cat("topk_ids_B_T_K"))


def select(x: torch.Tensor | None, rows: torch.Tensor) -> torch.Tensor | None:
    return None if x is None else x.index_select(0, rows)
