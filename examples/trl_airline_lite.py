"""SGCD on airline-lite with TRL's GRPOTrainer (`pip install 'sgcd[trl]'`).

CPU demo with the tiny model (what the tests exercise; about a minute per step on 2 shared cores):

    python examples/trl_airline_lite.py --config examples/trl_airline_lite.yaml

The tiny model has random weights, so `--guide 0.5` plays the gold turns in half the episodes to give mixed
groups (off-policy demo data; use `--guide 0` with a real model). Any flag overrides the YAML config.

Multi-GPU on a cluster (NOT run here; see docs/integrations_trl.md): one GPU serves vLLM, the others train
with accelerate. sgcd's agent loop generates each turn on the vLLM server (every rank has an HTTP client) and
TRL syncs the weights to the server before every rollout.

    CUDA_VISIBLE_DEVICES=0 trl vllm-serve --model Qwen/Qwen3-1.7B --port 8000
    CUDA_VISIBLE_DEVICES=1,2,3,4 accelerate launch --num_processes 4 --mixed_precision bf16 \\
        examples/trl_airline_lite.py --config examples/trl_airline_lite.yaml --model Qwen/Qwen3-1.7B \\
        --guide 0 --use-vllm --bf16 --group-size 8 --tasks-per-step 4 --max-new-tokens 512 \\
        --max-tokens 8192 --train-size 5000 --max-horizon 99 --learning-rate 1e-6 --steps 200
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

DEFAULTS = {
    "model": "tiny", "steps": 2, "seed": 0, "train_size": 16, "max_horizon": 2, "group_size": 2,
    "tasks_per_step": 2, "max_new_tokens": 6, "max_turns": 3, "max_tokens": 768, "max_rounds": 3, "guide": 0.5,
    "teacher": "pi_old", "advantage": "trl", "summarizer": "offline", "eps": 0.2, "lam": 1.0,
    "learning_rate": 0.01, "loss_type": "dapo", "output_dir": "runs/trl-airline-lite", "use_vllm": False,
    "vllm_server_base_url": "http://127.0.0.1:8000", "bf16": False,
}  # fmt: skip


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Defaults <- --config YAML <- flags. An unknown YAML key is a one-line error naming it."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config")
    known, _ = pre.parse_known_args(argv)
    values = dict(DEFAULTS)
    if known.config:
        import yaml

        data = yaml.safe_load(Path(known.config).read_text()) or {}
        unknown = sorted(set(data) - set(DEFAULTS))
        if unknown:
            sys.exit(f"{known.config}: unknown key(s) {unknown}; allowed: {sorted(DEFAULTS)}")
        values.update(data)
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--config", help="YAML file of defaults (see examples/trl_airline_lite.yaml)")
    for key, value in values.items():
        flag = "--" + key.replace("_", "-")
        if isinstance(DEFAULTS[key], bool):
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=bool(value))
        else:
            p.add_argument(flag, type=type(DEFAULTS[key]), default=type(DEFAULTS[key])(value))
    return p.parse_args(argv)


def build_trainer(args: argparse.Namespace):
    """The SGCDGRPOTrainer of these arguments and the policy it trains."""
    import torch
    from trl import GRPOConfig

    from sgcd.envs import get_domain
    from sgcd.integrations.trl import GoldGuidedPolicy, SGCDGRPOTrainer, SGCDOptions, SGCDRollout
    from sgcd.policy.base import SamplingParams
    from sgcd.policy.models import load_policy
    from sgcd.rollout import RolloutLimits

    domain = get_domain(
        "airline-lite", seed=args.seed, train_size=args.train_size, max_horizon=args.max_horizon
    )
    policy = load_policy(args.model, seed=args.seed)
    guide = (lambda p: GoldGuidedPolicy(p, domain, p=args.guide, seed=args.seed)) if args.guide > 0 else None
    rollout = SGCDRollout(
        domain,
        sampling=SamplingParams(temperature=1.0, max_new_tokens=args.max_new_tokens),
        limits=RolloutLimits(max_turns=args.max_turns, max_tokens=args.max_tokens),
        max_rounds=args.max_rounds,
        seed=args.seed,
        wrap_policy=guide,
    )
    config = GRPOConfig(
        output_dir=args.output_dir,
        use_cpu=not torch.cuda.is_available(),
        seed=args.seed,
        num_generations=args.group_size,
        per_device_train_batch_size=args.group_size * args.tasks_per_step,
        max_steps=args.steps,
        learning_rate=args.learning_rate,
        loss_type=args.loss_type,
        max_completion_length=args.max_tokens,
        temperature=1.0,
        bf16=args.bf16,
        use_vllm=args.use_vllm,
        vllm_mode="server",
        vllm_server_base_url=args.vllm_server_base_url,
        report_to="none",
        save_strategy="no",
        logging_steps=1,
    )
    options = SGCDOptions(
        teacher=args.teacher, advantage=args.advantage, summarizer=args.summarizer, eps=args.eps, lam=args.lam
    )
    trainer = SGCDGRPOTrainer(
        policy.model, rollout=rollout, sgcd=options, args=config, processing_class=policy.tokenizer
    )
    return trainer, policy


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    import torch

    trainer, policy = build_trainer(args)
    before = {k: v.detach().clone() for k, v in policy.model.state_dict().items()}
    trainer.train()
    after = policy.model.state_dict()
    moved = sum(not torch.equal(before[k], after[k]) for k in before)
    step = trainer.sgcd_last
    if trainer.accelerator.is_main_process:
        print(f"parameters changed: {moved}/{len(before)} tensors")
        if step is not None:
            w = step.weights_B_T[step.mask_B_T]
            print(
                f"last batch: {step.mask_B_T.shape[0]} rows, {int(step.mask_B_T.sum())} loss tokens, "
                f"credit weight mean {float(w.mean()) if w.numel() else 1.0:.4f} "
                f"std {float(w.std()) if w.numel() > 1 else 0.0:.4f}"
            )
        trainer.save_model(args.output_dir)
        print(f"saved the student to {args.output_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
