"""Dynamic sampling: keep only mixed groups, and decide how many more groups to sample (algorithm.md §1).

A group is *mixed* when it holds at least one success and one failure; only mixed groups carry a non-zero GRPO
advantage for every member. This is the filter of DAPO (Yu et al. 2025, "dynamic sampling") with the paper's
success/failure criterion in place of DAPO's "accuracy not all 0 or all 1".

Departures [ours]: the refill rule (`refill_plan`) estimates how many more tasks to draw from the mixed rate seen
so far, with a cap; DAPO simply keeps drawing batches. For continuous rewards with no full success,
`success_from_rewards(mode="above_group_mean")` calls a trajectory a success when its reward is strictly above its
group's mean (so an all-equal group is never mixed).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from sgcd.core._masked import check_finite_rows
from sgcd.core.advantages import group_index, group_stats

SUCCESS_MODES = ("threshold", "above_group_mean")


def success_from_rewards(
    rewards: torch.Tensor,
    group_ids: torch.Tensor | None = None,
    threshold: float = 1.0,
    mode: str = "threshold",
) -> tuple[torch.Tensor, dict[str, float]]:
    """Success flags (B,) bool from rewards (B,).

    mode "threshold": s_i = R_i >= threshold (binary benchmarks: threshold 1.0).
    mode "above_group_mean": s_i = R_i > mean_G R (needs group_ids), for continuous rewards.
    """
    check_finite_rows(rewards, "rewards")
    if mode == "threshold":
        success_B = rewards >= threshold
    elif mode == "above_group_mean":
        if group_ids is None:
            raise ValueError("success mode 'above_group_mean' needs group_ids")
        mean_B, _, _, _ = group_stats(rewards, group_ids)
        success_B = rewards.double() > mean_B
    else:
        raise ValueError(f"unknown success mode {mode!r}; choose one of {SUCCESS_MODES}")
    rate = float(success_B.double().mean()) if success_B.numel() else 0.0
    return success_B, {"sampling/success_rate": rate}


def mixed_groups(
    success: torch.Tensor, group_ids: torch.Tensor
) -> tuple[tuple[torch.Tensor, torch.Tensor], dict[str, float]]:
    """Which groups hold both a success and a failure.

    success: (B,) bool (or 0/1). group_ids: (B,) int labels.
    Returns ((keep_B, mixed_group_ids_M), metrics): keep_B (B,) bool is True for members of mixed groups;
    mixed_group_ids_M are the sorted distinct labels of the mixed groups.
    Metrics: n_groups, n_mixed, mixed_frac, all_pass / all_fail group counts, mean per-group pass rate.
    """
    if success.dim() != 1 or success.shape != group_ids.shape:
        raise ValueError(
            f"success {tuple(success.shape)} and group_ids {tuple(group_ids.shape)} must both be (B,)"
        )
    labels_G = torch.unique(group_ids)
    idx_B, n_groups = group_index(group_ids)
    s_B = success.bool().double()
    n_G = torch.zeros(n_groups, dtype=torch.float64, device=s_B.device).index_add_(
        0, idx_B, torch.ones_like(s_B)
    )
    pass_G = torch.zeros(n_groups, dtype=torch.float64, device=s_B.device).index_add_(0, idx_B, s_B)
    mixed_G = (pass_G > 0) & (pass_G < n_G)
    keep_B = mixed_G[idx_B] if n_groups else torch.zeros_like(success, dtype=torch.bool)
    metrics = {
        "sampling/n_groups": float(n_groups),
        "sampling/n_mixed": float(mixed_G.sum()),
        "sampling/mixed_frac": float(mixed_G.double().mean()) if n_groups else 0.0,
        "sampling/all_pass": float((pass_G == n_G).sum()),
        "sampling/all_fail": float((pass_G == 0).sum()),
        "sampling/pass_rate_mean": float((pass_G / n_G).mean()) if n_groups else 0.0,
        "sampling/kept_frac": float(keep_B.double().mean()) if keep_B.numel() else 0.0,
    }
    return (keep_B, labels_G[mixed_G]), metrics


@dataclass(frozen=True)
class RefillDecision:
    """What the trainer does next in one step's sampling loop.

    n_more: how many more tasks (groups) to sample in the next round (0 when stopping).
    stop: True when sampling ends for this step (target met, or rounds exhausted).
    reason: "target_met" | "max_rounds" | "refill".
    """

    n_more: int
    stop: bool
    reason: str


def refill_plan(
    target_groups: int,
    found_groups: int,
    rounds_used: int,
    max_rounds: int = 3,
    sampled_groups: int = 0,
    max_per_round: int | None = None,
) -> tuple[RefillDecision, dict[str, float]]:
    """How many more groups to sample to reach `target_groups` mixed groups.

    target_groups: mixed groups wanted per step (groups_per_step). found_groups: mixed groups held so far.
    rounds_used: sampling rounds already run this step (>= 1 after the first). max_rounds: cap (default 3).
    sampled_groups: groups sampled so far this step; when > 0 the observed mixed rate found/sampled scales the
    request (n_more = ceil(missing / rate)); with no mixed group seen yet, n_more = missing * 2 [ours].
    max_per_round: optional cap on n_more (default: 4 * target_groups).
    Never fails: when rounds run out the trainer trains on what it found (possibly nothing, then skips the step).
    """
    if target_groups < 0 or found_groups < 0 or rounds_used < 0 or max_rounds < 1:
        raise ValueError(
            f"refill_plan: bad input target_groups={target_groups} found_groups={found_groups} "
            f"rounds_used={rounds_used} max_rounds={max_rounds}"
        )
    missing = max(target_groups - found_groups, 0)
    cap = max_per_round if max_per_round is not None else max(4 * target_groups, 1)
    if missing == 0:
        decision = RefillDecision(0, True, "target_met")
    elif rounds_used >= max_rounds:
        decision = RefillDecision(0, True, "max_rounds")
    elif sampled_groups > 0:
        rate = found_groups / sampled_groups
        n_more = missing * 2 if rate == 0 else math.ceil(missing / rate)
        decision = RefillDecision(max(1, min(n_more, cap)), False, "refill")
    else:
        decision = RefillDecision(max(1, min(missing, cap)), False, "refill")
    metrics = {
        "sampling/rounds_used": float(rounds_used),
        "sampling/missing_groups": float(missing),
        "sampling/n_more": float(decision.n_more),
        "sampling/stopped_short": float(decision.stop and missing > 0),
    }
    return decision, metrics
