"""Masked tensor helpers shared by the core modules: validation, masked means, cheap percentiles.

Not part of the public API. Conventions: `mask_B_T` is a bool/0-1 tensor, 1 exactly on action tokens; values at
masked positions are never read (they may be NaN or inf, invariant 4 of algorithm.md §5).
"""

from __future__ import annotations

import torch


def as_bool_mask(
    action_mask_B_T: torch.Tensor, like_B_T: torch.Tensor, name: str = "action_mask"
) -> torch.Tensor:
    """The mask as bool, after checking it has the shape of `like_B_T` and is 2-D."""
    if action_mask_B_T.dim() != 2:
        raise ValueError(f"{name} must be (B, T), got shape {tuple(action_mask_B_T.shape)}")
    if action_mask_B_T.shape != like_B_T.shape:
        raise ValueError(
            f"{name} shape {tuple(action_mask_B_T.shape)} differs from the log-prob shape {tuple(like_B_T.shape)}"
        )
    return action_mask_B_T.bool()


def check_same_shape(ref_B_T: torch.Tensor, **tensors: torch.Tensor | None) -> None:
    """Raise ValueError naming the first tensor whose shape differs from `ref_B_T`."""
    for key, value in tensors.items():
        if value is not None and value.shape != ref_B_T.shape:
            raise ValueError(f"{key} shape {tuple(value.shape)} differs from {tuple(ref_B_T.shape)}")


def check_finite_on_mask(x_B_T: torch.Tensor, mask_B_T: torch.Tensor, name: str) -> None:
    """Raise ValueError naming the first trajectory with a NaN/inf value on an action token.

    Values at masked positions are ignored. Fast path: one masked sum (NaN/inf propagate into it); only when
    that sum is not finite (a bad value, or an overflow of huge finite values) is the exact check run.
    """
    if x_B_T.numel() == 0 or bool(torch.isfinite(masked_fill_zero(x_B_T, mask_B_T).sum())):
        return
    bad_B = (~torch.isfinite(x_B_T) & mask_B_T).any(dim=-1)
    if bool(bad_B.any()):
        rows = bad_B.nonzero().flatten().tolist()
        t = int((~torch.isfinite(x_B_T[rows[0]]) & mask_B_T[rows[0]]).nonzero()[0])
        value = float(x_B_T[rows[0], t])
        raise ValueError(
            f"{name} has a non-finite value ({value}) on an action token of trajectory {rows[0]} (token {t}); "
            f"trajectories affected: {rows[:10]}"
        )


def check_finite_rows(x_B: torch.Tensor, name: str) -> None:
    """Raise ValueError naming the first trajectory whose per-trajectory value is NaN/inf."""
    bad_B = ~torch.isfinite(x_B)
    if bool(bad_B.any()):
        i = int(bad_B.nonzero()[0])
        raise ValueError(f"{name} is non-finite ({float(x_B[i])}) for trajectory {i}")


def masked_fill_zero(x_B_T: torch.Tensor, mask_B_T: torch.Tensor) -> torch.Tensor:
    """x where mask, 0 elsewhere (NaN/inf at masked positions do not leak, and no gradient reaches them)."""
    return torch.where(mask_B_T, x_B_T, torch.zeros((), dtype=x_B_T.dtype, device=x_B_T.device))


def masked_row_mean(x_B_T: torch.Tensor, mask_B_T: torch.Tensor) -> torch.Tensor:
    """(B,) mean of x over the action tokens of each row; 0 for rows with no action token."""
    n_B = mask_B_T.sum(dim=-1)
    total_B = masked_fill_zero(x_B_T, mask_B_T).sum(dim=-1)
    return total_B / n_B.clamp(min=1).to(total_B.dtype)


def masked_values(x_B_T: torch.Tensor, mask_B_T: torch.Tensor) -> torch.Tensor:
    """(N,) the values at action tokens (detached copy), for percentiles."""
    return x_B_T.detach()[mask_B_T]


def mean_std(values_N: torch.Tensor) -> tuple[float, float]:
    """Mean and population std of a 1-D tensor (accumulated in float64); (0, 0) when empty."""
    if values_N.numel() == 0:
        return 0.0, 0.0
    x = values_N.double()
    mean = x.mean()
    return float(mean), float(((x - mean) ** 2).mean().sqrt())


def masked_mean_std(x_B_T: torch.Tensor, mask_B_T: torch.Tensor) -> tuple[float, float, int]:
    """Mean, population std and count of x over the selected tokens, without gathering them; zeros if none."""
    n = int(mask_B_T.sum())
    if n == 0:
        return 0.0, 0.0, 0
    x_B_T = masked_fill_zero(x_B_T.detach(), mask_B_T).double()
    mean = x_B_T.sum() / n
    var = masked_fill_zero(x_B_T - mean, mask_B_T).pow(2).sum() / n
    return float(mean), float(var.sqrt()), n


def row_moments(
    x_B_T: torch.Tensor, mask_B_T: torch.Tensor, shift: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-row count, sum and sum of squares of (x - shift) over the mask, float64 (B,) each.

    Three reductions in all; any selection of rows then has its mean/std from `moments_mean_std` at O(B) cost.
    `shift` near the values' centre (1.0 for weights) keeps the E[x^2] - E[x]^2 step well conditioned.
    """
    xm_B_T = masked_fill_zero(x_B_T.detach() - shift, mask_B_T)
    n_B = mask_B_T.sum(dim=-1, dtype=torch.float64)
    return n_B, xm_B_T.sum(dim=-1, dtype=torch.float64), (xm_B_T * xm_B_T).sum(dim=-1, dtype=torch.float64)


def moments_mean_std(
    moments: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    rows_B: torch.Tensor | None = None,
    shift: float = 0.0,
) -> tuple[float, float, int]:
    """Mean, population std and count over the rows selected by rows_B (all rows if None); zeros when empty."""
    n_B, s1_B, s2_B = moments
    if rows_B is not None:
        n_B, s1_B, s2_B = n_B[rows_B], s1_B[rows_B], s2_B[rows_B]
    n = float(n_B.sum())
    if n == 0:
        return 0.0, 0.0, 0
    m1, m2 = float(s1_B.sum()) / n, float(s2_B.sum()) / n
    return m1 + shift, max(m2 - m1 * m1, 0.0) ** 0.5, int(n)


def percentiles(values_N: torch.Tensor, qs: tuple[float, ...], is_sorted: bool = False) -> dict[float, float]:
    """Linearly interpolated percentiles (numpy's default 'linear'), via one sort; 0 when empty."""
    n = values_N.numel()
    if n == 0:
        return {q: 0.0 for q in qs}
    sorted_N = values_N if is_sorted else values_N.sort().values
    out = {}
    for q in qs:
        pos = q / 100.0 * (n - 1)
        lo = int(pos)
        hi = min(lo + 1, n - 1)
        frac = pos - lo
        out[q] = float(sorted_N[lo] * (1 - frac) + sorted_N[hi] * frac)
    return out
