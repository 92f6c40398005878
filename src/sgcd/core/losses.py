"""Policy losses (algorithm.md §6) and the direct self-distillation baselines (§7).

- `ppo_clip_loss`: PPO-clip (Schulman et al. 2017) on token advantages, with clip-higher (DAPO: eps_low 0.2,
  eps_high 0.28) and dual-clip (Ye et al. 2020: for Ahat < 0 the loss is capped at -c * Ahat, c = 3).
  loss_t = max(-Ahat r, -Ahat clip(r, 1-eps_low, 1+eps_high)); for Ahat < 0: min(that, -c Ahat).
- `aggregate`: token-mean (default), seq-mean-token-mean, seq-mean-token-sum-norm (Dr.GRPO: each sequence's
  token sum divided by a constant length, default T, then the mean over sequences).
- `kl_k3`: KL(pi || pi_ref) with Schulman's k3 estimator, exp(lr) - lr - 1 with lr = logp_ref - logp >= 0.
- `sd_replace_loss`: the actor loss *is* a per-token divergence to the detached teacher (SDPO-style): reverse KL
  (or JSD) over top-k + tail when top-k tensors are given; otherwise the sampled-token score-function estimator
  (logp_S - logp_T).detach() * logp_S, whose expected gradient is that of KL(S || T) at each position [ours: the
  choice of estimator; the gradient is per-position and ignores the effect on later tokens].
- `sd_aux_loss`: ppo_clip_loss + beta_sd * sd_replace_loss(reverse KL).
- `opd_token_advantages` / `opd_advantage_loss`: Ahat_t = A_i - c (logp_S - logp_T) on action tokens, then PPO.

The log ratio is clamped to [-20, 20] before exp, as public PPO implementations do, so r never overflows.
Registry: `POLICY_LOSSES[name](logprobs=..., old_logprobs=..., token_advantages=..., action_mask=..., **extra)`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from sgcd.core._masked import as_bool_mask, check_finite_on_mask, check_same_shape, masked_fill_zero
from sgcd.core.divergence import topk_jsd, topk_reverse_kl

AGG_MODES = ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm")
LOG_RATIO_CLAMP = 20.0


def aggregate(
    loss_B_T: torch.Tensor, action_mask: torch.Tensor, agg: str = "token-mean", norm_len: float | None = None
) -> torch.Tensor:
    """Reduce a per-token loss (B, T) to a scalar over action tokens.

    token-mean: sum_{i,t} l m / sum m. seq-mean-token-mean: mean over sequences with >= 1 action token of
    (sum_t l m / n_i). seq-mean-token-sum-norm: (1/B) sum_i sum_t l m / L with L = norm_len (default T).
    No action token anywhere gives 0 (connected to the graph, so backward() still works).
    """
    mask_B_T = as_bool_mask(action_mask, loss_B_T)
    masked_B_T = masked_fill_zero(loss_B_T, mask_B_T)
    m_B_T = mask_B_T.to(loss_B_T.dtype)
    if agg == "token-mean":
        return masked_B_T.sum() / m_B_T.sum().clamp(min=1)
    if agg == "seq-mean-token-mean":
        n_B = m_B_T.sum(dim=-1)
        seq_B = masked_B_T.sum(dim=-1) / n_B.clamp(min=1)
        return seq_B.sum() / (n_B > 0).sum().clamp(min=1).to(loss_B_T.dtype)
    if agg == "seq-mean-token-sum-norm":
        length = float(norm_len if norm_len is not None else loss_B_T.shape[-1])
        if length <= 0:
            raise ValueError(f"norm_len must be > 0, got {norm_len}")
        return masked_B_T.sum(dim=-1).sum() / (length * max(loss_B_T.shape[0], 1))
    raise ValueError(f"unknown loss aggregation {agg!r}; choose one of {AGG_MODES}")


def _frac(cond_B_T: torch.Tensor, mask_B_T: torch.Tensor, n: int) -> float:
    return float((cond_B_T & mask_B_T).sum()) / n if n else 0.0


def ppo_clip_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    token_advantages: torch.Tensor,
    action_mask: torch.Tensor,
    clip_low: float = 0.2,
    clip_high: float = 0.28,
    dual_clip: float | None = 3.0,
    agg: str = "token-mean",
    norm_len: float | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """PPO-clip loss (scalar, differentiable in `logprobs`) on token advantages.

    logprobs: (B, T) current policy log-probs of the sampled tokens (with grad). old_logprobs: (B, T) pi_old's
    (detached). token_advantages: (B, T) Ahat (detached; 0 on masked tokens). action_mask: (B, T).
    dual_clip: c > 1, or None / 0 to disable. Metrics: clip fraction low/high (the clipped branch is the max),
    dual-clip fraction, approx KL(old || new) as k3 = (r - 1) - log r and k1 = -log r, ratio mean.
    """
    mask_B_T = as_bool_mask(action_mask, logprobs)
    check_same_shape(logprobs, old_logprobs=old_logprobs, token_advantages=token_advantages)
    if dual_clip is not None and dual_clip != 0 and dual_clip <= 1.0:
        raise ValueError(f"dual_clip must be > 1 (or None/0 to disable), got {dual_clip}")
    for name, x in (
        ("logprobs", logprobs),
        ("old_logprobs", old_logprobs),
        ("token_advantages", token_advantages),
    ):
        check_finite_on_mask(x.detach(), mask_B_T, name)
    lp_B_T = masked_fill_zero(logprobs, mask_B_T)
    old_B_T = masked_fill_zero(old_logprobs.detach(), mask_B_T)
    adv_B_T = masked_fill_zero(token_advantages.detach().to(lp_B_T.dtype), mask_B_T)

    log_ratio_B_T = (lp_B_T - old_B_T).clamp(-LOG_RATIO_CLAMP, LOG_RATIO_CLAMP)
    ratio_B_T = torch.exp(log_ratio_B_T)
    unclipped_B_T = -adv_B_T * ratio_B_T
    clipped_B_T = -adv_B_T * ratio_B_T.clamp(1.0 - clip_low, 1.0 + clip_high)
    loss_B_T = torch.maximum(unclipped_B_T, clipped_B_T)
    dual_B_T = torch.zeros_like(mask_B_T)
    if dual_clip:
        cap_B_T = -adv_B_T * dual_clip
        dual_B_T = (adv_B_T < 0) & (loss_B_T > cap_B_T)
        loss_B_T = torch.where(adv_B_T < 0, torch.minimum(loss_B_T, cap_B_T), loss_B_T)
    loss = aggregate(loss_B_T, mask_B_T, agg, norm_len)

    with torch.no_grad():
        n = int(mask_B_T.sum())
        lr = log_ratio_B_T.detach()
        k3_B_T = torch.expm1(lr) - lr
        metrics = {
            "loss/policy": float(loss.detach()),
            "policy/clip_frac_high": _frac((adv_B_T > 0) & (ratio_B_T > 1.0 + clip_high), mask_B_T, n),
            "policy/clip_frac_low": _frac((adv_B_T < 0) & (ratio_B_T < 1.0 - clip_low), mask_B_T, n),
            "policy/dual_clip_frac": _frac(dual_B_T, mask_B_T, n),
            "policy/approx_kl": float(masked_fill_zero(k3_B_T, mask_B_T).sum()) / n if n else 0.0,
            "policy/approx_kl_k1": float(masked_fill_zero(-lr, mask_B_T).sum()) / n if n else 0.0,
            "policy/ratio_mean": float(masked_fill_zero(ratio_B_T.detach(), mask_B_T).sum()) / n
            if n
            else 0.0,
            "policy/ratio_dev_max": float(masked_fill_zero(lr.abs(), mask_B_T).max()) if n else 0.0,
        }
        metrics["policy/clip_frac"] = metrics["policy/clip_frac_high"] + metrics["policy/clip_frac_low"]
    return loss, metrics


def kl_k3(
    logprobs: torch.Tensor,
    ref_logprobs: torch.Tensor,
    action_mask: torch.Tensor,
    agg: str = "token-mean",
    norm_len: float | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """KL(pi || pi_ref) on sampled tokens, k3 estimator: k_t = exp(lr) - lr - 1, lr = logp_ref - logp (>= 0).

    logprobs: (B, T) with grad. ref_logprobs: (B, T), detached here. Returns (aggregated scalar, metrics).
    """
    mask_B_T = as_bool_mask(action_mask, logprobs)
    check_same_shape(logprobs, ref_logprobs=ref_logprobs)
    check_finite_on_mask(logprobs.detach(), mask_B_T, "logprobs")
    check_finite_on_mask(ref_logprobs.detach(), mask_B_T, "ref_logprobs")
    lr_B_T = masked_fill_zero(ref_logprobs.detach(), mask_B_T) - masked_fill_zero(logprobs, mask_B_T)
    lr_B_T = lr_B_T.clamp(-LOG_RATIO_CLAMP, LOG_RATIO_CLAMP)
    k3_B_T = torch.expm1(lr_B_T) - lr_B_T
    loss = aggregate(k3_B_T, mask_B_T, agg, norm_len)
    return loss, {"policy/ref_kl": float(loss.detach())}


def sd_replace_loss(
    logprobs: torch.Tensor,
    teacher_logprobs: torch.Tensor,
    action_mask: torch.Tensor,
    student_topk_logprobs: torch.Tensor | None = None,
    teacher_topk_logprobs: torch.Tensor | None = None,
    divergence: str = "reverse_kl",
    jsd_beta: float = 0.5,
    agg: str = "token-mean",
    norm_len: float | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """sd-replace baseline: the actor loss is a per-token divergence from the student to the detached teacher.

    logprobs: (B, T) student log-probs of the sampled tokens (with grad). teacher_logprobs: (B, T).
    student_topk_logprobs (B, T, K, with grad) and teacher_topk_logprobs (B, T, K, at the same ids): when given,
    the divergence is exact over top-k + tail ("reverse_kl" or "jsd"). Without them only "reverse_kl" is
    available, through the sampled-token score-function surrogate (logp_S - logp_T).detach() * logp_S;
    its reported value is the k1 estimate of KL(S || T).
    """
    mask_B_T = as_bool_mask(action_mask, logprobs)
    if divergence not in ("reverse_kl", "jsd"):
        raise ValueError(f"sd-replace divergence must be 'reverse_kl' or 'jsd', got {divergence!r}")
    if student_topk_logprobs is not None and teacher_topk_logprobs is not None:
        fn = topk_reverse_kl if divergence == "reverse_kl" else topk_jsd
        kwargs = {} if divergence == "reverse_kl" else {"beta": jsd_beta}
        div_B_T, _ = fn(student_topk_logprobs, teacher_topk_logprobs.detach(), mask_B_T, **kwargs)
        loss = aggregate(div_B_T, mask_B_T, agg, norm_len)
        return loss, {"loss/sd_div": float(loss.detach()), "loss/sd_topk": 1.0}
    if divergence == "jsd":
        raise ValueError(
            "sd-replace with divergence 'jsd' needs student_topk_logprobs and teacher_topk_logprobs"
        )
    check_same_shape(logprobs, teacher_logprobs=teacher_logprobs)
    check_finite_on_mask(logprobs.detach(), mask_B_T, "logprobs")
    check_finite_on_mask(teacher_logprobs.detach(), mask_B_T, "teacher_logprobs")
    lp_B_T = masked_fill_zero(logprobs, mask_B_T)
    k1_B_T = (lp_B_T - masked_fill_zero(teacher_logprobs.detach(), mask_B_T)).detach()
    loss = aggregate(k1_B_T * lp_B_T, mask_B_T, agg, norm_len)
    value = aggregate(k1_B_T, mask_B_T, agg, norm_len)
    return loss, {"loss/sd_div": float(value), "loss/sd_topk": 0.0}


def sd_aux_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    token_advantages: torch.Tensor,
    action_mask: torch.Tensor,
    teacher_logprobs: torch.Tensor,
    beta_sd: float = 0.1,
    student_topk_logprobs: torch.Tensor | None = None,
    teacher_topk_logprobs: torch.Tensor | None = None,
    **ppo_kwargs,
) -> tuple[torch.Tensor, dict[str, float]]:
    """sd-aux baseline: ppo_clip_loss(token_advantages) + beta_sd * sd_replace_loss(reverse KL). Shapes as above."""
    pg, metrics = ppo_clip_loss(logprobs, old_logprobs, token_advantages, action_mask, **ppo_kwargs)
    agg = ppo_kwargs.get("agg", "token-mean")
    sd, sd_metrics = sd_replace_loss(
        logprobs,
        teacher_logprobs,
        action_mask,
        student_topk_logprobs,
        teacher_topk_logprobs,
        agg=agg,
        norm_len=ppo_kwargs.get("norm_len"),
    )
    metrics.update(sd_metrics)
    metrics["loss/sd_beta"] = float(beta_sd)
    return pg + beta_sd * sd, metrics


@torch.no_grad()
def opd_token_advantages(
    advantages: torch.Tensor,
    student_logprobs: torch.Tensor,
    teacher_logprobs: torch.Tensor,
    action_mask: torch.Tensor,
    c: float = 0.1,  # = the run config's algorithm.opd_c (one set of defaults; tested)
) -> tuple[torch.Tensor, dict[str, float]]:
    """opd-advantage baseline: Ahat_t = A_i - c (logp_S - logp_T) on action tokens, 0 elsewhere (detached).

    advantages: (B,). student_logprobs (pi_old on the clean prompt), teacher_logprobs, action_mask: (B, T).
    """
    mask_B_T = as_bool_mask(action_mask, student_logprobs)
    check_same_shape(student_logprobs, teacher_logprobs=teacher_logprobs)
    check_finite_on_mask(student_logprobs, mask_B_T, "student_logprobs")
    check_finite_on_mask(teacher_logprobs, mask_B_T, "teacher_logprobs")
    gap_B_T = masked_fill_zero(student_logprobs, mask_B_T) - masked_fill_zero(teacher_logprobs, mask_B_T)
    adv_B_T = masked_fill_zero(advantages.unsqueeze(-1) - c * gap_B_T, mask_B_T)
    n = max(int(mask_B_T.sum()), 1)
    return adv_B_T, {"loss/opd_token_adv_mean": float(adv_B_T.sum()) / n, "loss/opd_c": float(c)}


def opd_advantage_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    token_advantages: torch.Tensor | None,
    action_mask: torch.Tensor,
    advantages: torch.Tensor,
    teacher_logprobs: torch.Tensor,
    c: float = 0.1,  # = the run config's algorithm.opd_c (one set of defaults; tested)
    **ppo_kwargs,
) -> tuple[torch.Tensor, dict[str, float]]:
    """opd-advantage: PPO-clip on Ahat_t = A_i - c (logp_old - logp_T); `token_advantages` is ignored."""
    adv_B_T, metrics = opd_token_advantages(advantages, old_logprobs, teacher_logprobs, action_mask, c)
    loss, pg_metrics = ppo_clip_loss(logprobs, old_logprobs, adv_B_T, action_mask, **ppo_kwargs)
    metrics.update(pg_metrics)
    return loss, metrics


_EXTRAS = ("advantages", "teacher_logprobs", "student_topk_logprobs", "teacher_topk_logprobs")


def _drop(kwargs: dict, keep: tuple[str, ...]) -> dict:
    """kwargs without the extra tensors this loss does not use (the trainer may pass all of them)."""
    return {k: v for k, v in kwargs.items() if k not in _EXTRAS or k in keep}


def _need(name: str, kwargs: dict, keys: tuple[str, ...]) -> None:
    missing = [k for k in keys if kwargs.get(k) is None]
    if missing:
        raise ValueError(f"policy loss {name!r} needs the keyword tensor(s) {missing}")


def _ppo_entry(logprobs, old_logprobs, token_advantages, action_mask, **kwargs):
    """ppo_clip_loss under the common registry signature."""
    return ppo_clip_loss(logprobs, old_logprobs, token_advantages, action_mask, **_drop(kwargs, ()))


def _sd_replace_entry(logprobs, old_logprobs, token_advantages, action_mask, **kwargs):
    """sd-replace under the common registry signature (old_logprobs and token_advantages unused)."""
    _need("sd-replace", kwargs, ("teacher_logprobs",))
    kwargs = _drop(kwargs, ("teacher_logprobs", "student_topk_logprobs", "teacher_topk_logprobs"))
    for key in ("clip_low", "clip_high", "dual_clip"):  # PPO settings the trainer may pass to every loss
        kwargs.pop(key, None)
    return sd_replace_loss(logprobs, action_mask=action_mask, **kwargs)


def _sd_aux_entry(logprobs, old_logprobs, token_advantages, action_mask, **kwargs):
    """sd-aux under the common registry signature (the per-trajectory `advantages` are unused)."""
    _need("sd-aux", kwargs, ("teacher_logprobs",))
    kwargs = _drop(kwargs, ("teacher_logprobs", "student_topk_logprobs", "teacher_topk_logprobs"))
    return sd_aux_loss(logprobs, old_logprobs, token_advantages, action_mask, **kwargs)


def _opd_entry(logprobs, old_logprobs, token_advantages, action_mask, **kwargs):
    """opd-advantage under the common registry signature (token_advantages are recomputed from `advantages`)."""
    _need("opd-advantage", kwargs, ("advantages", "teacher_logprobs"))
    kwargs = _drop(kwargs, ("advantages", "teacher_logprobs"))
    return opd_advantage_loss(logprobs, old_logprobs, token_advantages, action_mask, **kwargs)


# Common signature: fn(logprobs, old_logprobs, token_advantages, action_mask, **extra) -> (loss, metrics).
POLICY_LOSSES: dict[str, Callable[..., tuple[torch.Tensor, dict[str, float]]]] = {
    "ppo-clip": _ppo_entry,
    "sd-replace": _sd_replace_entry,
    "sd-aux": _sd_aux_entry,
    "opd-advantage": _opd_entry,
}
POLICY_LOSS_NEEDS: dict[str, tuple[str, ...]] = {
    "ppo-clip": (),
    "sd-replace": ("teacher_logprobs",),
    "sd-aux": ("teacher_logprobs",),
    "opd-advantage": ("advantages", "teacher_logprobs"),
}
