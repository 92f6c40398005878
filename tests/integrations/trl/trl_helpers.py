"""Helpers for the TRL integration tests: the tiny model, TRL configs, and capture hooks.

The tiny model's text is noise, so a `GoldGuidedPolicy` plays the gold turns in half of the episodes; groups
are then mixed and the token advantages non-zero (see sgcd/integrations/trl/guided.py).
"""

from __future__ import annotations

from typing import Any

import torch

from sgcd.policy.base import SamplingParams
from sgcd.policy.models import load_policy
from sgcd.rollout import RolloutLimits

G, ROWS = 2, 4  # siblings per task, rows per step (2 groups)


def fresh_policy():
    """A freshly loaded tiny model (same weights every time: it is built deterministically)."""
    return load_policy("tiny")


def make_rollout(domain: Any, seed: int = 0, **kw: Any):
    from sgcd.integrations.trl import GoldGuidedPolicy, SGCDRollout

    return SGCDRollout(
        domain,
        sampling=SamplingParams(temperature=1.0, max_new_tokens=6),
        limits=RolloutLimits(max_turns=3, max_tokens=768),
        seed=seed,
        wrap_policy=lambda p: GoldGuidedPolicy(p, domain, p=0.5, seed=seed),
        **kw,
    )


def grpo_args(tmp_path: Any, steps: int, seed: int = 0):
    from trl import GRPOConfig

    return GRPOConfig(
        output_dir=str(tmp_path / "trl"),
        use_cpu=True,
        seed=seed,
        num_generations=G,
        per_device_train_batch_size=ROWS,
        max_steps=steps,
        learning_rate=1e-2,
        max_completion_length=768,
        temperature=1.0,
        mask_truncated_completions=False,
        report_to="none",
        save_strategy="no",
        logging_steps=1,
        disable_tqdm=True,
        dataloader_num_workers=0,
    )


def _clone(value: Any) -> Any:
    return value.detach().clone() if torch.is_tensor(value) else value


def capture(trainer: Any, rollout: Any) -> dict[str, list[dict[str, Any]]]:
    """Record, per generation batch, the weights it was sampled with, TRL's output dict and the rollout batch;
    and per loss call, the inputs TRL's `_compute_loss` received. Instance attributes shadow the methods."""
    rec: dict[str, list[dict[str, Any]]] = {"gen": [], "loss": []}
    gen_fn, loss_fn = trainer._generate_and_score_completions, trainer._compute_loss

    def gen(inputs):
        state = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}
        out = gen_fn(inputs)
        rec["gen"].append(
            {
                "state": state,
                "out": {k: _clone(v) for k, v in out.items()},
                "batch": rollout.last,
                "step": getattr(trainer, "sgcd_last", None),
            }
        )
        return out

    def loss(model, inputs):
        rec["loss"].append({k: _clone(v) for k, v in inputs.items()})
        return loss_fn(model, inputs)

    trainer._generate_and_score_completions = gen
    trainer._compute_loss = loss
    return rec


def row_keys(d: dict[str, Any]) -> list[tuple]:
    """(prompt ids, completion ids) of each row, padding removed: identifies a row across TRL's shuffle."""
    keys = []
    for b in range(d["completion_ids"].shape[0]):
        p = d["prompt_ids"][b][d["prompt_mask"][b].bool()].tolist()
        c = d["completion_ids"][b][d["completion_mask"][b].bool()].tolist()
        keys.append((tuple(p), tuple(c)))
    return keys
