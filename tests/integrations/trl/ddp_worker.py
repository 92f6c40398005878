"""One process of the two-process DDP run in test_trl_ddp.py (run as a script; torch.distributed env vars set).

Trains SGCDGRPOTrainer for two steps on CPU (gloo, through TRL/accelerate's own set-up) with the tiny model on
airline-lite and writes OUT/rank{r}.json: every refill draw of this rank's task sampler, the parameter digest
before training and after each step, and whether each step's optimizer update was gated off.

What each rank plays, per generation batch (a `GoldGuidedPolicy` with gold probability p):
    batch 1: p = 0 on both ranks        -> nothing mixed anywhere: refills on both ranks, then all masked
    batch 2: p = 0 on rank 0, 0.5 on 1  -> rank 0 all masked, rank 1 trains: the update is one collective step
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import torch
import trl_helpers as H
from transformers import TrainerCallback

from sgcd.envs import get_domain
from sgcd.integrations.trl import GoldGuidedPolicy, SGCDGRPOTrainer, SGCDRollout
from sgcd.integrations.trl.config import SGCDConfig
from sgcd.policy.base import SamplingParams
from sgcd.rollout import RolloutLimits
from sgcd.rollout.sampling import TaskSampler

GOLD_P = {0: (0.0, 0.0), 1: (0.0, 0.5)}  # rank -> p per generation batch


class Scheduled:
    """Delegates to the GoldGuidedPolicy of the current generation batch (episodes never cross batches)."""

    def __init__(self, policy, domain, ps: tuple[float, ...], counter: dict) -> None:
        self.guided = [GoldGuidedPolicy(policy, domain, p=p, seed=k) for k, p in enumerate(ps)]
        self.counter = counter

    def __getattr__(self, name):
        return getattr(self.guided[min(self.counter["batch"], len(self.guided)) - 1], name)


class CountingRollout(SGCDRollout):
    """SGCDRollout that counts its training calls (the generation batch number the policy schedule reads)."""

    def __call__(self, prompts, trainer):
        self.counter["batch"] += 1
        return super().__call__(prompts, trainer)


def digest(model: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for name, p in sorted(model.named_parameters()):
        h.update(name.encode())
        h.update(p.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def main(out: Path) -> None:
    rank = int(os.environ["RANK"])
    torch.set_num_threads(1)
    draws: list[list[str]] = []
    plain_next = TaskSampler.next

    def logged_next(self, n):
        tasks = plain_next(self, n)
        draws.append([t.task_id for t in tasks])
        return tasks

    TaskSampler.next = logged_next
    domain = get_domain("airline-lite", train_size=8, max_horizon=2)
    counter = {"batch": 0}
    rollout = CountingRollout(
        domain,
        sampling=SamplingParams(temperature=1.0, max_new_tokens=6),
        limits=RolloutLimits(max_turns=3, max_tokens=768),
        max_rounds=2,
        seed=0,
        wrap_policy=lambda p: Scheduled(p, domain, GOLD_P[rank], counter),
    )
    rollout.counter = counter
    policy = H.fresh_policy()
    base = H.grpo_args(out, steps=2).to_dict()
    keep = ("output_dir", "use_cpu", "seed", "num_generations", "per_device_train_batch_size", "max_steps",
            "learning_rate", "max_completion_length", "temperature", "mask_truncated_completions", "report_to",
            "save_strategy", "logging_steps", "disable_tqdm", "dataloader_num_workers")  # fmt: skip
    args = SGCDConfig(
        **{k: base[k] for k in keep},
        weight_decay=0.1,  # a gated-off step must not even decay the weights
        sgcd_teacher="pi_old",
        sgcd_advantage="grpo",
    )
    trainer = SGCDGRPOTrainer(policy.model, rollout=rollout, args=args, processing_class=policy.tokenizer)
    steps: list[dict] = []

    class Record(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            last = trainer.sgcd_rollout.last
            steps.append(
                {
                    "step": state.global_step,
                    "skipped_update": bool(trainer._sgcd_skip_update),
                    "kept_rows": int(last.kept_B.sum()),
                    "digest": digest(policy.model),
                }
            )

    before = digest(policy.model)
    trainer.add_callback(Record())
    trainer.train()
    result = {
        "rank": rank,
        "world_size": trainer.accelerator.num_processes,
        "backend": str(torch.distributed.get_backend()) if torch.distributed.is_initialized() else None,
        "ddp": type(trainer.model_wrapped).__name__,
        "sampler_rank": rollout.state_dict()["rank"],
        "draws": draws,
        "before": before,
        "steps": steps,
    }
    (out / f"rank{rank}.json").write_text(json.dumps(result, indent=1))
    if torch.distributed.is_initialized():  # leave gloo's threads joined: exiting with them alive can abort
        torch.distributed.destroy_process_group()  # the process ("terminate called without an active exception")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
