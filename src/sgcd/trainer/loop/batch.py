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

from sgcd.policy.scoring import Scores, score_batch, score_rows  # noqa: F401  (re-exported: the trainer's names)
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


def select(x: torch.Tensor | None, rows: torch.Tensor) -> torch.Tensor | None:
    return None if x is None else x.index_select(0, rows)
