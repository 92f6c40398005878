"""Diagnostics of credit weights (algorithm.md §8, the pure-math part): distribution, bounds, splits, agreement.

All functions read detached tensors and return `dict[str, float]`; empty selections give 0.0, never NaN.
"""

from __future__ import annotations

import torch

from sgcd.core._masked import (
    as_bool_mask,
    masked_mean_std,
    masked_values,
    moments_mean_std,
    percentiles,
    row_moments,
)

PERCENTILES = (1.0, 5.0, 50.0, 95.0, 99.0)
TOKEN_TYPE_NAMES = {0: "observation", 1: "reasoning", 2: "tool_call", 3: "answer"}  # = sgcd.types.TOKEN_TYPES


def _summary(x_B_T: torch.Tensor, select_B_T: torch.Tensor, prefix: str) -> dict[str, float]:
    mean, std, n = masked_mean_std(x_B_T, select_B_T)
    return {f"{prefix}_mean": mean, f"{prefix}_std": std, f"{prefix}_n": float(n)}


def weight_metrics(
    weights_B_T: torch.Tensor,
    advantages_B: torch.Tensor,
    select_B_T: torch.Tensor,
    eps: float,
    lam: float = 1.0,
) -> dict[str, float]:
    """Weight mean/std/percentiles, fraction at each final bound, split by A>0 / A<0.

    select_B_T: bool, the tokens to describe (the action tokens of reweighted trajectories). The bounds are those
    of the final clamp after the lambda mix: (1 - lam) + lam * (1 -/+ 2 eps). Cost: three
    reductions, one gather and one sort of the selected weights (bounds and min/max read off the sorted copy).
    """
    moments = row_moments(weights_B_T, select_B_T, shift=1.0)
    mean, std, n = moments_mean_std(moments, shift=1.0)
    out = {"credit/w_mean": mean, "credit/w_std": std, "credit/w_n": float(n)}
    sorted_N = masked_values(weights_B_T, select_B_T).sort().values
    pct = percentiles(sorted_N, (0.0, *PERCENTILES, 100.0), is_sorted=True)
    for q in PERCENTILES:
        out[f"credit/w_p{int(q)}"] = pct[q]
    lo_bound, hi_bound = (1.0 - lam) + lam * (1.0 - 2.0 * eps), (1.0 - lam) + lam * (1.0 + 2.0 * eps)
    low = torch.tensor([lo_bound + 1e-6], dtype=sorted_N.dtype, device=sorted_N.device)
    high = torch.tensor([hi_bound - 1e-6], dtype=sorted_N.dtype, device=sorted_N.device)
    n_low = int(torch.searchsorted(sorted_N, low, right=True)) if n else 0
    n_high = n - int(torch.searchsorted(sorted_N, high, right=False)) if n else 0
    out["credit/w_frac_at_low"] = n_low / n if n else 0.0
    out["credit/w_frac_at_high"] = n_high / n if n else 0.0
    out["credit/w_min"] = pct[0.0]
    out["credit/w_max"] = pct[100.0]
    for name, rows_B in (("pos", advantages_B > 0), ("neg", advantages_B < 0)):
        m, s, k = moments_mean_std(moments, rows_B, shift=1.0)
        out.update({f"credit/w_{name}_mean": m, f"credit/w_{name}_std": s, f"credit/w_{name}_n": float(k)})
    return out


def weight_stats_by_token_type(
    weights: torch.Tensor, action_mask: torch.Tensor, token_types: torch.Tensor
) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
    """Mean/std/count of w over action tokens of each token type (codes in sgcd.types.TOKEN_TYPES).

    weights, action_mask, token_types: (B, T). Returns ({type_name: selected weights (N,)}, metrics) with
    metrics `credit/w_<type>_mean|std|n` for every type (0.0 when a type has no action token).
    """
    mask_B_T = as_bool_mask(action_mask, weights)
    if token_types.shape != weights.shape:
        raise ValueError(f"token_types shape {tuple(token_types.shape)} differs from {tuple(weights.shape)}")
    selected: dict[str, torch.Tensor] = {}
    metrics: dict[str, float] = {}
    for code, name in TOKEN_TYPE_NAMES.items():
        select_B_T = mask_B_T & (token_types == code)
        selected[name] = masked_values(weights, select_B_T)
        metrics.update(_summary(weights, select_B_T, f"credit/w_{name}"))
    return selected, metrics


def polarity_agreement(
    weights: torch.Tensor, polarity: torch.Tensor, action_mask: torch.Tensor
) -> tuple[torch.Tensor, dict[str, float]]:
    """Agreement of w with a per-token polarity (+1 helpful, -1 harmful, 0 neutral/unknown).

    A token agrees when polarity is +1 and w > 1, or polarity is -1 and w < 1. Counted on action tokens with a
    non-zero polarity. Returns (agree_B_T bool, metrics: agree overall / on +1 / on -1, and the token counts).
    Note: polarity is taken as given (caller multiplies by sign(A) if it wants "helpful in a failure" flipped).
    """
    mask_B_T = as_bool_mask(action_mask, weights)
    if polarity.shape != weights.shape:
        raise ValueError(f"polarity shape {tuple(polarity.shape)} differs from {tuple(weights.shape)}")
    pos_B_T = mask_B_T & (polarity > 0)
    neg_B_T = mask_B_T & (polarity < 0)
    agree_B_T = (pos_B_T & (weights > 1)) | (neg_B_T & (weights < 1))
    n_pos, n_neg = int(pos_B_T.sum()), int(neg_B_T.sum())
    a_pos, a_neg = int((agree_B_T & pos_B_T).sum()), int((agree_B_T & neg_B_T).sum())
    metrics = {
        "credit/agree": (a_pos + a_neg) / (n_pos + n_neg) if n_pos + n_neg else 0.0,
        "credit/agree_helpful": a_pos / n_pos if n_pos else 0.0,
        "credit/agree_harmful": a_neg / n_neg if n_neg else 0.0,
        "credit/agree_n_helpful": float(n_pos),
        "credit/agree_n_harmful": float(n_neg),
    }
    return agree_B_T, metrics
