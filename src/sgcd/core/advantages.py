"""Per-trajectory advantages from group-relative rewards (algorithm.md §2).

GRPO (Shao et al. 2024, DeepSeekMath): A_i = (R_i - mean_G R) / (std_G R + eps), with the group's unbiased
(Bessel) standard deviation as the public implementations use. Dr.GRPO (Liu et al. 2025): A_i = R_i - mean_G R
(`norm_by_std=False`). RLOO (Ahmadian et al. 2024): A_i = R_i - mean of the other G-1 rewards.

Departures from the textbook, each chosen so degenerate input never yields NaN: a group of size 1 gets A = 0
(some implementations return R_i there); a group whose rewards are all equal gets exactly 0.

Registry: `ADVANTAGE_ESTIMATORS[name](rewards=..., group_ids=...) -> (advantages_B, metrics)`.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch

from sgcd.core._masked import check_finite_rows


def group_index(group_ids_B: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Dense group index (B,) in [0, n_groups) for arbitrary integer group labels, and n_groups."""
    if group_ids_B.dim() != 1:
        raise ValueError(f"group_ids must be (B,), got shape {tuple(group_ids_B.shape)}")
    _, inverse_B = torch.unique(group_ids_B, return_inverse=True)
    n_groups = int(inverse_B.max()) + 1 if inverse_B.numel() else 0
    return inverse_B, n_groups


def group_stats(
    values_B: torch.Tensor, group_ids_B: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-trajectory group mean, unbiased group std (0 for singletons), group size, and dense group index.

    All returned tensors are (B,); computed with scatter-adds, no Python loop over groups.
    """
    idx_B, n_groups = group_index(group_ids_B)
    x_B = values_B.double()
    count_G = torch.zeros(n_groups, dtype=torch.float64, device=x_B.device).index_add_(
        0, idx_B, torch.ones_like(x_B)
    )
    sum_G = torch.zeros(n_groups, dtype=torch.float64, device=x_B.device).index_add_(0, idx_B, x_B)
    mean_G = sum_G / count_G
    sq_G = torch.zeros(n_groups, dtype=torch.float64, device=x_B.device).index_add_(
        0, idx_B, (x_B - mean_G[idx_B]) ** 2
    )
    std_G = (sq_G / (count_G - 1).clamp(min=1)).sqrt()
    return mean_G[idx_B], std_G[idx_B], count_G[idx_B], idx_B


def _check(rewards_B: torch.Tensor, group_ids_B: torch.Tensor) -> None:
    if rewards_B.dim() != 1 or rewards_B.shape != group_ids_B.shape:
        raise ValueError(
            f"rewards {tuple(rewards_B.shape)} and group_ids {tuple(group_ids_B.shape)} must both be (B,)"
        )
    check_finite_rows(rewards_B, "rewards")


def _metrics(
    adv_B: torch.Tensor, rewards_B: torch.Tensor, count_B: torch.Tensor, idx_B: torch.Tensor
) -> dict:
    if adv_B.numel() == 0:
        return {
            "reward/adv_mean": 0.0,
            "reward/adv_std": 0.0,
            "reward/adv_n_groups": 0.0,
            "reward/adv_zero_frac": 0.0,
            "reward/adv_singleton_frac": 0.0,
        }
    n_groups = int(idx_B.max()) + 1
    zero_B = (adv_B == 0).double()
    return {
        "reward/adv_mean": float(adv_B.mean()),
        "reward/adv_std": float(adv_B.double().std(unbiased=False)),
        "reward/adv_abs_mean": float(adv_B.abs().mean()),
        "reward/adv_reward_mean": float(rewards_B.double().mean()),
        "reward/adv_n_groups": float(n_groups),
        "reward/adv_zero_frac": float(zero_B.mean()),
        "reward/adv_singleton_frac": float((count_B == 1).double().mean()),
    }


def grpo_advantages(
    rewards: torch.Tensor, group_ids: torch.Tensor, norm_by_std: bool = True, eps: float = 1e-6
) -> tuple[torch.Tensor, dict[str, float]]:
    """GRPO advantage A_i = (R_i - mean_G R) / (std_G R + eps); Dr.GRPO A_i = R_i - mean_G R if not norm_by_std.

    rewards: (B,) float. group_ids: (B,) int, any labels (siblings of one task share a label).
    Returns advantages (B,) in the rewards' dtype (float32 if rewards are integer), and metrics.
    std is the unbiased group std; groups of size 1 and all-equal groups give exactly 0.
    """
    _check(rewards, group_ids)
    mean_B, std_B, count_B, idx_B = group_stats(rewards, group_ids)
    centred_B = rewards.double() - mean_B
    centred_B = torch.where(count_B > 1, centred_B, torch.zeros_like(centred_B))
    adv_B = centred_B / (std_B + eps) if norm_by_std else centred_B
    out_dtype = rewards.dtype if rewards.is_floating_point() else torch.float32
    adv_B = adv_B.to(out_dtype)
    return adv_B, _metrics(adv_B, rewards, count_B, idx_B)


def rloo_advantages(rewards: torch.Tensor, group_ids: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
    """RLOO advantage A_i = R_i - (sum_G R - R_i) / (G - 1) = G/(G-1) (R_i - mean_G R); 0 for singletons.

    rewards, group_ids: (B,). Returns advantages (B,) and metrics.
    """
    _check(rewards, group_ids)
    mean_B, _, count_B, idx_B = group_stats(rewards, group_ids)
    scale_B = count_B / (count_B - 1).clamp(min=1)
    adv_B = torch.where(count_B > 1, scale_B * (rewards.double() - mean_B), torch.zeros_like(mean_B))
    out_dtype = rewards.dtype if rewards.is_floating_point() else torch.float32
    adv_B = adv_B.to(out_dtype)
    return adv_B, _metrics(adv_B, rewards, count_B, idx_B)


ADVANTAGE_ESTIMATORS: dict[str, Callable[..., tuple[torch.Tensor, dict[str, float]]]] = {
    "grpo": grpo_advantages,
    "drgrpo": partial(grpo_advantages, norm_by_std=False),
    "rloo": rloo_advantages,
}
