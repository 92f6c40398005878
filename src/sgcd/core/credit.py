"""SGCD credit weights and token advantages (algorithm.md §5).

The paper (abstract only) states: dense teacher/student divergence drives credit reassignment, and bounded,
detached credit weights reshape GRPO token advantages. The function below is OUR reconstruction [ours]:

    u_t  = sign(A_i) * delta_t                    delta_t = logp_T(y_t) - logp_S(y_t) on action tokens
    u_t -= masked_mean(u_i)                       centre per trajectory (the reference shifts all log-probs)
    w_t  = exp(clamp(u_t, log(1-eps), log(1+eps)))
    w_t /= masked_mean(w_i)                       mean weight over action tokens = 1 (credit preserved)
    w_t  = clamp(w_t, 1-2eps, 1+2eps)             hard bound (rarely binds)
    w_t  = (1-lam) + lam * w_t
    Ahat_{i,t} = A_i * w_t * m_t

Trajectories with A_i == 0 or no action token get w = 1; masked tokens get w = 1 (their Ahat is 0 anyway).
Everything runs under torch.no_grad on detached inputs. Options (named variants, off by default):
turn-level aggregation of u, teacher-entropy gate, top-k KL magnitude with the sampled-token sign, unsigned u
(ablation), failures-only, and a seeded shuffle of w within each trajectory (the falsification control).
Order [ours]: magnitude -> sign -> turn mean -> centre -> gate -> bound/exp/renormalise/clamp/mix -> shuffle.

Registry: `CREDIT_VARIANTS[name](teacher_logprobs=..., student_logprobs=..., advantages=..., action_mask=...,
**extra) -> (weights_B_T, metrics)`; `CREDIT_VARIANT_NEEDS[name]` lists the extra tensors a variant requires.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial

import torch

from sgcd.core._masked import (
    as_bool_mask,
    check_finite_on_mask,
    check_finite_rows,
    check_same_shape,
    masked_fill_zero,
    masked_mean_std,
    masked_row_mean,
    moments_mean_std,
    row_moments,
)
from sgcd.core.credit_stats import weight_metrics

__all__ = [
    "CREDIT_VARIANTS",
    "CREDIT_VARIANT_NEEDS",
    "credit_weights",
    "entropy_gate",
    "reshape_advantages",
    "shuffle_within_rows",
    "turn_mean",
]


def turn_mean(u_B_T: torch.Tensor, turn_ids_B_T: torch.Tensor, mask_B_T: torch.Tensor) -> torch.Tensor:
    """Replace each action token's u by the mean of u over the action tokens of its (trajectory, turn).

    turn_ids_B_T: int, >= 0 on action tokens (other positions are ignored). Returns (B, T), 0 on masked tokens.
    """
    B, T = u_B_T.shape
    turns_B_T = torch.where(
        mask_B_T, turn_ids_B_T.long(), torch.zeros((), dtype=torch.long, device=u_B_T.device)
    )
    if bool((turns_B_T < 0).any()):
        i = int((turns_B_T < 0).any(dim=-1).nonzero()[0])
        raise ValueError(f"turn_ids must be >= 0 on action tokens; trajectory {i} has a negative turn id")
    n_turns = int(turns_B_T.max()) + 1 if turns_B_T.numel() else 1
    key_B_T = turns_B_T + n_turns * torch.arange(B, device=u_B_T.device).unsqueeze(-1)
    m_B_T = mask_B_T.to(u_B_T.dtype)
    sums = torch.zeros(B * n_turns, dtype=u_B_T.dtype, device=u_B_T.device).index_add_(
        0, key_B_T.flatten(), (u_B_T * m_B_T).flatten()
    )
    counts = torch.zeros_like(sums).index_add_(0, key_B_T.flatten(), m_B_T.flatten())
    means = sums / counts.clamp(min=1)
    return masked_fill_zero(means[key_B_T], mask_B_T)


def entropy_gate(
    teacher_entropy_B_T: torch.Tensor, h0: float, g_min: float, mask_B_T: torch.Tensor
) -> torch.Tensor:
    """g_t = clamp(1 - H_T(t) / H_0, g_min, 1): 1 where the teacher is sure, down to g_min where it is unsure."""
    if h0 <= 0:
        raise ValueError(f"entropy gate h0 must be > 0, got {h0}")
    if not 0.0 <= g_min <= 1.0:
        raise ValueError(f"entropy gate g_min must be in [0, 1], got {g_min}")
    check_finite_on_mask(teacher_entropy_B_T, mask_B_T, "teacher_entropy")
    h_B_T = masked_fill_zero(teacher_entropy_B_T, mask_B_T)
    return (1.0 - h_B_T / h0).clamp(min=g_min, max=1.0)


def shuffle_within_rows(
    w_B_T: torch.Tensor, mask_B_T: torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Permute w among the action tokens of each row (uniformly at random); masked positions keep their value.

    Vectorised: random keys sort each row's action tokens into a random order, then scatter them back onto the
    row's action positions in their original order.
    """
    B, T = w_B_T.shape
    if T == 0:
        return w_B_T.clone()
    ar_B_T = torch.arange(T, device=w_B_T.device).expand(B, T)
    gen_device = generator.device if generator is not None else w_B_T.device
    keys_B_T = torch.rand(B, T, generator=generator, device=gen_device).to(w_B_T.device)
    # Action tokens first (random order for the source, positional order for the destination).
    src_B_T = torch.where(mask_B_T, keys_B_T, 2.0 + ar_B_T.to(keys_B_T.dtype)).argsort(dim=-1)
    dst_B_T = torch.where(mask_B_T, ar_B_T, T + ar_B_T).argsort(dim=-1)
    return w_B_T.clone().scatter_(1, dst_B_T, w_B_T.gather(1, src_B_T))


def _check_args(eps: float, lam: float) -> None:
    if not 0.0 < eps < 1.0:
        raise ValueError(f"credit eps must be in (0, 1), got {eps}")
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"credit lam must be in [0, 1], got {lam}")


def _prepare_u(delta_B_T, advantages_B, mask_B_T, signed, turn_ids, magnitude_B_T) -> torch.Tensor:
    """u before centring: optional magnitude swap, sign by A, optional turn-level mean. (B, T), 0 on masked."""
    if magnitude_B_T is not None:
        check_finite_on_mask(magnitude_B_T, mask_B_T, "magnitude")
        delta_B_T = torch.sign(delta_B_T) * masked_fill_zero(magnitude_B_T.abs(), mask_B_T)
    sign_B_1 = (
        torch.sign(advantages_B).unsqueeze(-1) if signed else torch.ones_like(advantages_B).unsqueeze(-1)
    )
    u_B_T = sign_B_1 * delta_B_T
    if turn_ids is not None:
        u_B_T = turn_mean(u_B_T, turn_ids, mask_B_T)
    return u_B_T


@torch.no_grad()
def credit_weights(
    teacher_logprobs: torch.Tensor,
    student_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    action_mask: torch.Tensor,
    eps: float = 0.2,
    lam: float = 1.0,
    *,
    turn_ids: torch.Tensor | None = None,
    teacher_entropy: torch.Tensor | None = None,
    gate_h0: float = 4.0,  # = sgcd.algorithm.CreditSpec.gate_h0 (one set of defaults; tested)
    gate_min: float = 0.0,
    topk_kl: torch.Tensor | None = None,
    signed: bool = True,
    failures_only: bool = False,
    shuffle: bool = False,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """SGCD credit weights w_B_T (algorithm.md §5), detached, > 0, mean 1 over each trajectory's action tokens.

    teacher_logprobs, student_logprobs: (B, T) log-probs of the sampled tokens under the teacher (credit-reference
    prefix) and the student (clean prompt, = pi_old). advantages: (B,) GRPO A_i. action_mask: (B, T).
    eps: log-space bound, u clamped to [log(1-eps), log(1+eps)]; final clamp [1-2eps, 1+2eps]. lam: mix with 1.
    Options, all off by default:
      turn_ids (B, T): turn-level aggregation, u replaced by its mean over each assistant turn (ids >= 0 on
        action tokens).
      teacher_entropy (B, T): entropy gate, centred u multiplied by g_t = clamp(1 - H_T/gate_h0, gate_min, 1).
      topk_kl (B, T): magnitude |u| from the top-k reverse KL, sign from the sampled-token log-ratio.
      signed=False: unsigned ablation, u = delta regardless of sign(A).
      failures_only: only trajectories with A < 0 are reweighted; A > 0 keep w = 1.
      shuffle: permute w within each trajectory's action tokens (seeded by `generator`), the control.
    Returns (weights_B_T, metrics); masked tokens and rows with A == 0 or no action token have w = 1.
    Raises ValueError naming the trajectory if a log-prob on an action token (or an advantage) is NaN/inf.
    """
    _check_args(eps, lam)
    mask_B_T = as_bool_mask(action_mask, student_logprobs)
    check_same_shape(
        student_logprobs,
        teacher_logprobs=teacher_logprobs,
        turn_ids=turn_ids,
        teacher_entropy=teacher_entropy,
        topk_kl=topk_kl,
    )
    if advantages.shape != student_logprobs.shape[:1]:
        raise ValueError(
            f"advantages must be (B,) = {tuple(student_logprobs.shape[:1])}, got {tuple(advantages.shape)}"
        )
    check_finite_rows(advantages.detach(), "advantages")

    dtype = torch.promote_types(student_logprobs.dtype, torch.float32)
    adv_B = advantages.detach().to(dtype)
    delta_B_T = masked_fill_zero(
        teacher_logprobs.detach().to(dtype) - student_logprobs.detach().to(dtype), mask_B_T
    )
    if not bool(torch.isfinite(delta_B_T.sum())):  # NaN/inf in either input reach delta: name the culprit
        check_finite_on_mask(teacher_logprobs.detach(), mask_B_T, "teacher_logprobs")
        check_finite_on_mask(student_logprobs.detach(), mask_B_T, "student_logprobs")
        check_finite_on_mask(delta_B_T, mask_B_T, "teacher_logprobs - student_logprobs")
    u_B_T = _prepare_u(
        delta_B_T, adv_B, mask_B_T, signed, turn_ids, None if topk_kl is None else topk_kl.detach().to(dtype)
    )
    u_B_T = masked_fill_zero(u_B_T - masked_row_mean(u_B_T, mask_B_T).unsqueeze(-1), mask_B_T)
    centred_B_T = u_B_T
    if teacher_entropy is not None:
        u_B_T = u_B_T * entropy_gate(teacher_entropy.detach().to(dtype), gate_h0, gate_min, mask_B_T)

    lo, hi = math.log(1.0 - eps), math.log(1.0 + eps)
    w_B_T = masked_fill_zero(torch.exp(u_B_T.clamp(lo, hi)), mask_B_T)
    w_B_T = w_B_T / masked_row_mean(w_B_T, mask_B_T).clamp(min=1e-12).unsqueeze(-1)
    w_B_T = w_B_T.clamp(1.0 - 2.0 * eps, 1.0 + 2.0 * eps)
    w_B_T = (1.0 - lam) + lam * w_B_T

    active_B = (adv_B != 0) & mask_B_T.any(dim=-1)
    if failures_only:
        active_B = active_B & (adv_B < 0)
    keep_B_T = active_B.unsqueeze(-1) & mask_B_T
    w_B_T = torch.where(keep_B_T, w_B_T, torch.ones((), dtype=dtype, device=w_B_T.device))
    if shuffle:
        w_B_T = shuffle_within_rows(w_B_T, keep_B_T, generator)

    metrics = weight_metrics(w_B_T, adv_B, keep_B_T, eps, lam)
    d_mean, d_std, _ = moments_mean_std(row_moments(delta_B_T, keep_B_T))
    c_mean, c_std, _ = moments_mean_std(row_moments(centred_B_T, keep_B_T))
    metrics.update(
        {
            "credit/delta_mean": d_mean,
            "credit/delta_std": d_std,
            "credit/u_centred_mean": c_mean,
            "credit/u_centred_std": c_std,
            "credit/u_frac_at_low": _frac(u_B_T <= lo, keep_B_T),
            "credit/u_frac_at_high": _frac(u_B_T >= hi, keep_B_T),
            "credit/active_traj_frac": float(active_B.double().mean()) if active_B.numel() else 0.0,
        }
    )
    return w_B_T, metrics


def _frac(cond_B_T: torch.Tensor, mask_B_T: torch.Tensor) -> float:
    n = int(mask_B_T.sum())
    return float((cond_B_T & mask_B_T).sum()) / n if n else 0.0


def reshape_advantages(
    advantages: torch.Tensor, weights: torch.Tensor, action_mask: torch.Tensor
) -> tuple[torch.Tensor, dict[str, float]]:
    """Token advantages Ahat_B_T = A_i * w_{i,t} on action tokens, exactly 0 on masked tokens (detached).

    advantages: (B,). weights: (B, T) from credit_weights (or ones for plain GRPO). action_mask: (B, T).
    """
    mask_B_T = as_bool_mask(action_mask, weights)
    if advantages.shape != weights.shape[:1]:
        raise ValueError(
            f"advantages must be (B,) = {tuple(weights.shape[:1])}, got {tuple(advantages.shape)}"
        )
    check_finite_rows(advantages.detach(), "advantages")
    check_finite_on_mask(weights.detach(), mask_B_T, "weights")
    a_B_T = masked_fill_zero(advantages.detach().unsqueeze(-1) * weights.detach(), mask_B_T)
    mean, std = masked_mean_std(a_B_T, mask_B_T)[:2]
    return a_B_T, {"credit/token_adv_mean": mean, "credit/token_adv_std": std}


def _grpo_ones(teacher_logprobs, student_logprobs, advantages, action_mask, *args, **kwargs):
    """The matched GRPO comparator: w = 1 everywhere (the teacher is not consulted)."""
    mask_B_T = as_bool_mask(action_mask, student_logprobs)
    w_B_T = torch.ones_like(
        student_logprobs, dtype=torch.promote_types(student_logprobs.dtype, torch.float32)
    )
    return w_B_T, weight_metrics(w_B_T, advantages.detach(), mask_B_T & (advantages != 0).unsqueeze(-1), 0.2)


def _requires(*keys: str) -> Callable[..., tuple[torch.Tensor, dict[str, float]]]:
    """credit_weights that refuses to run without the named option tensors (so a variant never silently degrades)."""

    def variant(*args, **kwargs):
        missing = [k for k in keys if kwargs.get(k) is None]
        if missing:
            raise ValueError(f"this credit variant needs the keyword tensor(s) {missing}")
        return credit_weights(*args, **kwargs)

    return variant


# Extra keyword tensors each variant requires (the trainer passes them by these names).
CREDIT_VARIANT_NEEDS: dict[str, tuple[str, ...]] = {
    "grpo": (),
    "sgcd": (),
    "sgcd-turn": ("turn_ids",),
    "sgcd-gate": ("teacher_entropy",),
    "sgcd-topk": ("topk_kl",),
    "unsigned": (),
    "failures-only": (),
    "shuffle": (),
}
CREDIT_VARIANTS: dict[str, Callable[..., tuple[torch.Tensor, dict[str, float]]]] = {
    "grpo": _grpo_ones,
    "sgcd": credit_weights,
    "sgcd-turn": _requires("turn_ids"),
    "sgcd-gate": _requires("teacher_entropy"),
    "sgcd-topk": _requires("topk_kl"),
    "unsigned": partial(credit_weights, signed=False),
    "failures-only": partial(credit_weights, failures_only=True),
    "shuffle": partial(credit_weights, shuffle=True),
}
