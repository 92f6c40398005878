"""Teacher/student divergence on action tokens, and token entropies (algorithm.md §4).

- D1 `logratio`: delta_t = logp_T(y_t) - logp_S(y_t) at the sampled token (default; one extra forward).
- D2 `topk_reverse_kl`: KL(S || T) over the student's top-k tokens plus one tail bucket holding the remaining
  mass, as in the "top-k + tail" distillation losses (e.g. SDPO-style and GKD implementations).
- `topk_jsd`: generalised Jensen-Shannon divergence over the same k+1 buckets.
- `token_entropy`: H(t) from logits, chunked over T so peak memory stays O(B * chunk * V).

These functions do not detach: the credit path calls them under no_grad, the sd-replace loss with the student's
graph. Values at masked positions are ignored (set to 0 in the outputs).
"""

from __future__ import annotations

import math

import torch

from sgcd.core._masked import as_bool_mask, check_finite_on_mask, masked_fill_zero, masked_mean_std


def logratio(
    teacher_logprobs: torch.Tensor, student_logprobs: torch.Tensor, action_mask: torch.Tensor
) -> tuple[torch.Tensor, dict[str, float]]:
    """Sampled-token log-ratio delta_B_T = logp_T - logp_S on action tokens, 0 elsewhere.

    teacher_logprobs, student_logprobs, action_mask: (B, T). Raises ValueError naming the trajectory when a
    log-prob on an action token is NaN/inf. Metrics: delta mean/std over action tokens.
    """
    mask_B_T = as_bool_mask(action_mask, student_logprobs)
    if teacher_logprobs.shape != student_logprobs.shape:
        raise ValueError(
            f"teacher_logprobs {tuple(teacher_logprobs.shape)} and student_logprobs "
            f"{tuple(student_logprobs.shape)} must have the same shape"
        )
    check_finite_on_mask(teacher_logprobs, mask_B_T, "teacher_logprobs")
    check_finite_on_mask(student_logprobs, mask_B_T, "student_logprobs")
    delta_B_T = masked_fill_zero(teacher_logprobs, mask_B_T) - masked_fill_zero(student_logprobs, mask_B_T)
    mean, std = masked_mean_std(delta_B_T, mask_B_T)[:2]
    return delta_B_T, {"credit/div_logratio_mean": mean, "credit/div_logratio_std": std}


def _tail_logprob(topk_logprobs_B_T_K: torch.Tensor, min_prob: float) -> torch.Tensor:
    """log(1 - sum_k p_k), the tail bucket's log-mass, floored at log(min_prob)."""
    mass_B_T = topk_logprobs_B_T_K.exp().sum(dim=-1)
    return torch.log((1.0 - mass_B_T).clamp(min=min_prob))


def _buckets(
    student_topk_logprobs: torch.Tensor,
    teacher_topk_logprobs: torch.Tensor,
    action_mask: torch.Tensor,
    tail: bool,
    min_prob: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(B,T,K[+1]) student and teacher bucket log-probs with masked positions zeroed, and the bool mask."""
    if student_topk_logprobs.dim() != 3 or student_topk_logprobs.shape != teacher_topk_logprobs.shape:
        raise ValueError(
            f"student_topk_logprobs {tuple(student_topk_logprobs.shape)} and teacher_topk_logprobs "
            f"{tuple(teacher_topk_logprobs.shape)} must both be (B, T, K)"
        )
    mask_B_T = as_bool_mask(action_mask, student_topk_logprobs[..., 0])
    mask_B_T_1 = mask_B_T.unsqueeze(-1)
    check_finite_on_mask(student_topk_logprobs.detach().sum(-1), mask_B_T, "student_topk_logprobs")
    # -inf from the teacher (a token it excludes) is allowed and floored below; NaN and +inf are not.
    floor = math.log(min_prob)
    check_finite_on_mask(
        teacher_topk_logprobs.detach().clamp(min=floor).sum(-1), mask_B_T, "teacher_topk_logprobs"
    )
    s_B_T_K = torch.where(mask_B_T_1, student_topk_logprobs, torch.zeros_like(student_topk_logprobs))
    t_B_T_K = torch.where(mask_B_T_1, teacher_topk_logprobs, torch.zeros_like(teacher_topk_logprobs))
    # Floor the teacher at log(min_prob) so a -inf teacher entry (a token it excludes) stays finite.
    t_B_T_K = t_B_T_K.clamp(min=floor)
    if tail:
        s_tail_B_T_1 = _tail_logprob(s_B_T_K, min_prob).unsqueeze(-1)
        t_tail_B_T_1 = _tail_logprob(t_B_T_K, min_prob).unsqueeze(-1)
        s_B_T_K = torch.cat([s_B_T_K, s_tail_B_T_1], dim=-1)
        t_B_T_K = torch.cat([t_B_T_K, t_tail_B_T_1], dim=-1)
    return s_B_T_K, t_B_T_K, mask_B_T


def topk_reverse_kl(
    student_topk_logprobs: torch.Tensor,
    teacher_topk_logprobs: torch.Tensor,
    action_mask: torch.Tensor,
    tail: bool = True,
    min_prob: float = 1e-8,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Per-token reverse KL(S || T) over the student's top-k tokens plus a tail bucket.

    student_topk_logprobs: (B, T, K) the student's log-probs of its own top-k tokens (full-vocabulary
    log_softmax, gathered). teacher_topk_logprobs: (B, T, K) the teacher's log-probs of the *same* token ids.
    action_mask: (B, T). With tail=True the remaining mass 1 - sum_k p forms a (K+1)-th bucket on both sides:
        KL_t = sum_{k<=K} p_S,k (log p_S,k - log p_T,k) + p_S,tail (log p_S,tail - log p_T,tail)
    Probabilities are floored at min_prob (the tail and any -inf teacher entry). Returns kl_B_T (0 on masked
    tokens) and metrics. Keeps the graph of its inputs (the sd-replace loss differentiates through the student).
    """
    s_B_T_K, t_B_T_K, mask_B_T = _buckets(
        student_topk_logprobs, teacher_topk_logprobs, action_mask, tail, min_prob
    )
    kl_B_T = (s_B_T_K.exp() * (s_B_T_K - t_B_T_K)).sum(dim=-1)
    kl_B_T = masked_fill_zero(kl_B_T, mask_B_T)
    mean, std = masked_mean_std(kl_B_T, mask_B_T)[:2]
    return kl_B_T, {"credit/div_topk_rkl_mean": mean, "credit/div_topk_rkl_std": std}


def topk_jsd(
    student_topk_logprobs: torch.Tensor,
    teacher_topk_logprobs: torch.Tensor,
    action_mask: torch.Tensor,
    beta: float = 0.5,
    tail: bool = True,
    min_prob: float = 1e-8,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Per-token generalised JSD over the student's top-k tokens plus a tail bucket.

    M = beta * P_S + (1 - beta) * P_T;  JSD_t = beta * KL(P_S || M) + (1 - beta) * KL(P_T || M)
    (GKD, Agarwal et al. 2024; beta = 0.5 is the symmetric JSD). Shapes as in topk_reverse_kl.
    """
    if not 0.0 < beta < 1.0:
        raise ValueError(f"jsd beta must be in (0, 1), got {beta}")
    s_B_T_K, t_B_T_K, mask_B_T = _buckets(
        student_topk_logprobs, teacher_topk_logprobs, action_mask, tail, min_prob
    )
    m_B_T_K = torch.logsumexp(torch.stack([s_B_T_K + math.log(beta), t_B_T_K + math.log(1.0 - beta)]), dim=0)
    kl_s = (s_B_T_K.exp() * (s_B_T_K - m_B_T_K)).sum(dim=-1)
    kl_t = (t_B_T_K.exp() * (t_B_T_K - m_B_T_K)).sum(dim=-1)
    jsd_B_T = masked_fill_zero(beta * kl_s + (1.0 - beta) * kl_t, mask_B_T)
    mean, std = masked_mean_std(jsd_B_T, mask_B_T)[:2]
    return jsd_B_T, {"credit/div_topk_jsd_mean": mean, "credit/div_topk_jsd_std": std}


def topk_logprobs(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor | None, k: int
) -> tuple[tuple[torch.Tensor, torch.Tensor | None, torch.Tensor], dict[str, float]]:
    """Student top-k log-probs, the teacher's log-probs at the same ids, and the ids, from (B, T, V) logits.

    Returns ((student_topk_B_T_K, teacher_at_ids_B_T_K or None, ids_B_T_K), metrics). Keeps the student graph.
    """
    s_lp = torch.log_softmax(student_logits.float(), dim=-1)
    s_topk, ids = s_lp.topk(k, dim=-1)
    t_at = None
    if teacher_logits is not None:
        t_at = torch.log_softmax(teacher_logits.float(), dim=-1).gather(-1, ids)
    return (s_topk, t_at, ids), {"credit/div_topk_student_mass": float(s_topk.detach().exp().sum(-1).mean())}


def token_entropy(
    logits: torch.Tensor, action_mask: torch.Tensor | None = None, chunk_size: int = 512
) -> tuple[torch.Tensor, dict[str, float]]:
    """Entropy H_B_T = -sum_v p log p from logits (B, T, V), computed in chunks of `chunk_size` tokens along T.

    Peak extra memory is about 2 * B * chunk_size * V floats. Masked positions (if a mask is given) get 0.
    Metrics: mean/std entropy over action tokens (all tokens without a mask).
    """
    if logits.dim() != 3:
        raise ValueError(f"logits must be (B, T, V), got shape {tuple(logits.shape)}")
    B, T, _ = logits.shape
    out_B_T = torch.empty(B, T, dtype=torch.float32, device=logits.device)
    for start in range(0, T, max(chunk_size, 1)):
        lp = torch.log_softmax(logits[:, start : start + chunk_size].float(), dim=-1)
        p = lp.exp()
        plogp = torch.where(p > 0, p * lp, torch.zeros((), dtype=lp.dtype, device=lp.device))
        out_B_T[:, start : start + chunk_size] = -plogp.sum(dim=-1)
    mask_B_T = torch.ones(B, T, dtype=torch.bool, device=logits.device)
    if action_mask is not None:
        mask_B_T = as_bool_mask(action_mask, out_B_T)
        out_B_T = masked_fill_zero(out_B_T, mask_B_T)
    mean, std = masked_mean_std(out_B_T, mask_B_T)[:2]
    return out_B_T, {"credit/div_entropy_mean": mean, "credit/div_entropy_std": std}
