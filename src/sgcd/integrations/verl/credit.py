"""SGCD's reshaping of verl's advantages, as one pure function over padded tensors (the math is sgcd.core's).

verl's outcome estimators (grpo, rloo, ...) write one advantage per trajectory broadcast over its response
tokens: advantages_B_T = A_i * response_mask. We read A_i back as the masked row mean, refuse per-token
advantages (GAE and the like: SGCD reweights an outcome advantage, algorithm.md §5), and return
Ahat_B_T = A_i * w_B_T with w from the named `sgcd.core.credit.CREDIT_VARIANTS` entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from sgcd.core.credit import CREDIT_VARIANTS, reshape_advantages


@dataclass(frozen=True)
class SGCDOptions:
    """The `sgcd:` block of a verl config (all optional).

    variant: a credit variant of sgcd.core (sgcd, grpo, unsigned, failures-only, shuffle, sgcd-turn).
    eps, lam: the credit-weight bound and mix (algorithm.md §5).
    teacher: "policy" (the actor after a credit-reference prefix) or "none" (teacher = student: exactly GRPO).
    summarizer: a `sgcd.credit_reference.make_summarizer` spec (offline | openai:MODEL | hf:MODEL);
    summarizer_options: its keyword options (base_url, api_key_env, cache_dir, ...).
    success_threshold: reward at or above which a sibling counts as a success (mixed groups, the reference).
    seed: seeds the generator of the `shuffle` control.
    env_options: the domain factory's options, read by the `sgcd_agent` loop (e.g. tau3-airline's user).
    """

    variant: str = "sgcd"
    eps: float = 0.2
    lam: float = 1.0
    teacher: str = "policy"
    summarizer: str = "offline"
    summarizer_options: dict[str, Any] | None = None
    success_threshold: float = 1.0
    seed: int = 0
    env_options: dict[str, Any] | None = None

    @classmethod
    def from_config(cls, config: Any) -> SGCDOptions:
        block = config.get("sgcd", None) if hasattr(config, "get") else None
        raw = dict(block) if block else {}
        unknown = sorted(set(raw) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(
                f"sgcd config: unknown key(s) {unknown}; known: {sorted(cls.__dataclass_fields__)}"
            )
        for key in ("summarizer_options", "env_options"):
            if raw.get(key) is not None:
                raw[key] = dict(raw[key])
        opts = cls(**raw)
        if opts.variant not in CREDIT_VARIANTS or opts.variant in ("sgcd-gate", "sgcd-topk"):
            usable = sorted(set(CREDIT_VARIANTS) - {"sgcd-gate", "sgcd-topk"})
            raise ValueError(
                f"sgcd.variant={opts.variant!r} is not available in verl; choose one of {usable}"
            )
        if opts.teacher not in ("policy", "none"):
            raise ValueError(f"sgcd.teacher={opts.teacher!r}; choose 'policy' or 'none'")
        return opts

    @property
    def uses_teacher(self) -> bool:
        return self.variant != "grpo" and self.teacher != "none"


def outcome_advantages(adv_B_T: torch.Tensor, mask_B_T: torch.Tensor, tol: float = 1e-5) -> torch.Tensor:
    """A_B: the per-trajectory advantage verl broadcast over the response; ValueError if it varies by token."""
    m = mask_B_T.to(adv_B_T.dtype)
    n_B = m.sum(-1)
    a_B = (adv_B_T * m).sum(-1) / n_B.clamp(min=1)
    spread = ((adv_B_T - a_B.unsqueeze(-1)).abs() * m).amax(-1) if adv_B_T.numel() else a_B
    bad = spread > tol * (1 + a_B.abs())
    if bool(bad.any()):
        row = int(bad.nonzero()[0, 0])
        raise ValueError(
            f"SGCD reweights one outcome advantage per trajectory, but row {row} has per-token advantages "
            f"(spread {float(spread[row]):.3g}); use algorithm.adv_estimator=grpo (or rloo), not a value-based one"
        )
    return a_B


def sgcd_token_advantages(
    adv_B_T: torch.Tensor,
    mask_B_T: torch.Tensor,
    old_logprobs_B_T: torch.Tensor,
    teacher_logprobs_B_T: torch.Tensor | None,
    opts: SGCDOptions,
    *,
    turn_ids_B_T: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Ahat_B_T = A_i * w_B_T (0 off the mask) and the credit/ metrics; teacher None means w = 1."""
    mask = mask_B_T.bool()
    a_B = outcome_advantages(adv_B_T.float(), mask)
    old = old_logprobs_B_T.float()
    if teacher_logprobs_B_T is None or opts.variant == "grpo":
        w_B_T, metrics = CREDIT_VARIANTS["grpo"](None, old, a_B, mask)
    else:
        extra: dict[str, Any] = {}
        if opts.variant == "sgcd-turn":
            if turn_ids_B_T is None:
                raise ValueError("sgcd.variant=sgcd-turn needs turn_ids_B_T (the agent loop's turn ids)")
            extra["turn_ids"] = torch.where(mask, turn_ids_B_T.long(), 0).clamp(min=0)
        if opts.variant == "shuffle":
            extra["generator"] = generator
        w_B_T, metrics = CREDIT_VARIANTS[opts.variant](
            teacher_logprobs_B_T.float(), old, a_B, mask, opts.eps, opts.lam, **extra
        )
    ahat_B_T, adv_metrics = reshape_advantages(a_B, w_B_T, mask)
    return ahat_B_T.to(adv_B_T.dtype), {**metrics, **adv_metrics}
