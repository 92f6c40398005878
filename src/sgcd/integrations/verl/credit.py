"""SGCD's reshaping of verl's advantages, as one pure function over padded tensors (the math is sgcd.core's).

verl's outcome estimators (grpo, rloo, ...) write one advantage per trajectory broadcast over its response
tokens: advantages_B_T = A_i * response_mask. We read A_i back as the masked row mean, refuse per-token
advantages (GAE and the like: SGCD reweights an outcome advantage, algorithm.md §5), and return
Ahat_B_T = A_i * w_B_T through `sgcd.algorithm` (the named credit variant as a CreditSpec). The record the
`sgcd_agent` loop ships per row and the group it describes are built here too, so the loop, the trainer and
the tests share one definition.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from sgcd.algorithm import Algorithm, CreditSpec, credit_problems
from sgcd.core.credit import CREDIT_VARIANTS


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
        bad = credit_problems(eps=opts.eps, lam=opts.lam)
        if bad:  # the checks the run config and TRL make, before any worker starts
            raise ValueError(f"sgcd.{bad[0]}")
        return opts

    @property
    def algorithm(self) -> Algorithm:
        """The variant as sgcd.algorithm's Algorithm (teacher "policy" is the trainer's pi_old)."""
        if self.variant == "grpo":
            return Algorithm("grpo", teacher="none")
        credit = CreditSpec.from_variant(self.variant, eps=self.eps, lam=self.lam)
        return Algorithm("sgcd", teacher="pi_old" if self.teacher == "policy" else "none", credit=credit)

    @property
    def uses_teacher(self) -> bool:
        return self.algorithm.needs_references


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
    """Ahat_B_T = A_i * w_B_T (0 off the mask) and the credit/ metrics; teacher None means w = 1.

    The translation only: A_i read back from verl's broadcast advantages, then `sgcd.algorithm`'s
    token_advantages (the same call the reference trainer and TRL make)."""
    mask = mask_B_T.bool()
    a_B = outcome_advantages(adv_B_T.float(), mask)
    out = opts.algorithm.token_advantages(
        a_B, mask, old_logprobs_B_T.float(),
        None if teacher_logprobs_B_T is None else teacher_logprobs_B_T.float(),
        turn_ids_B_T=turn_ids_B_T, generator=generator,
    )  # fmt: skip
    return out.token_advantages_B_T.to(adv_B_T.dtype), dict(out.metrics)


# ---- the agent loop's record and the group it describes (pure: the agent loop and the trainer share these) ----


def episode_record(traj: Any, opening: Any, instruction: str = "") -> dict[str, Any]:
    """What the `sgcd_agent` loop ships per row in extra_fields["sgcd"]: the one episode JSON
    (`sgcd.episode_io.trajectory_record`: text-level episode, outcome, token ids, mask, turn ids, types) plus
    verl's extras, the task instruction and the clean prompt's messages and tools."""
    from sgcd.episode_io import message_to_json, trajectory_record

    return {
        **trajectory_record(traj),
        "instruction": instruction,
        "prompt": {"messages": [message_to_json(m) for m in opening.messages], "tools": list(opening.tools)},
    }


def group_record(records: list[dict[str, Any]], success_threshold: float) -> dict[str, Any]:
    """The group JSON (credit_reference.group_io) of one uid's records: the task id, the instruction, the clean
    prompt and the siblings' episode records, each labelled a success iff reward >= success_threshold (the rule
    that also decides which groups are mixed)."""
    from sgcd.episode_io import RECORD_FIELDS, with_success

    first = records[0]
    siblings = [
        with_success(
            {k: r[k] for k in RECORD_FIELDS if k in r}, float(r["episode"]["reward"]) >= success_threshold
        )
        for r in records
    ]
    return {
        "task_id": first.get("task_id") or first["episode"].get("task_id", ""),
        "instruction": first.get("instruction", ""),
        "prompt": first["prompt"],
        "siblings": siblings,
    }


def record_turn_ids(records: list[dict[str, Any] | None], T: int) -> torch.Tensor:
    """(B, T) long: each row's assistant-turn ids from its record (-1 off turns and on rows without a record)."""
    out = torch.full((len(records), T), -1, dtype=torch.long)
    for i, rec in enumerate(records):
        ids = (rec or {}).get("turn_ids", [])[:T]
        if ids:
            out[i, : len(ids)] = torch.tensor(ids, dtype=torch.long)
    return out
