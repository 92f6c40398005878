"""SGCD on airline-lite with TRL's GRPOTrainer (`pip install 'sgcd[trl]'`), parsed the TRL way:
`TrlParser((ScriptArguments, SGCDConfig, ModelConfig))`, so every GRPO flag (`--report_to wandb`,
`--save_strategy steps`, `--max_steps`, ...), every PEFT flag (`--use_peft --lora_r 8`), the SGCD fields
(`--sgcd_teacher`, `--sgcd_eps`, ...) and `--config FILE.yaml` work; `--help` lists them all.

CPU demo with the tiny model (what the tests exercise; about a minute per step on 2 shared cores):

    python examples/trl_airline_lite.py --config examples/trl_airline_lite.yaml
    python examples/trl_airline_lite.py --config examples/trl_airline_lite.yaml --use_peft --lora_r 4

The tiny model has random weights, so `--guide 0.5` plays the gold turns in half the episodes to give mixed
groups (off-policy demo data; use `--guide 0` with a real model). Flags override the YAML config.

Multi-GPU on a cluster (NOT run here; see docs/integrations_trl.md): one GPU serves vLLM, the others train
with accelerate. sgcd's agent loop generates each turn on the vLLM server (every rank has an HTTP client) and
TRL syncs the weights to the server before every rollout.

    CUDA_VISIBLE_DEVICES=0 trl vllm-serve --model Qwen/Qwen3-1.7B --port 8000
    CUDA_VISIBLE_DEVICES=1,2,3,4 accelerate launch --num_processes 4 --mixed_precision bf16 \\
        examples/trl_airline_lite.py --config examples/trl_airline_lite.yaml \\
        --model_name_or_path Qwen/Qwen3-1.7B --guide 0 --use_vllm --vllm_mode server --bf16 --use_cpu false \\
        --num_generations 8 --per_device_train_batch_size 32 --max_new_tokens 512 --max_completion_length 8192 \\
        --train_size 5000 --max_horizon 99 --learning_rate 1e-6 --max_steps 200 --report_to wandb
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from trl import ModelConfig, TrlParser, get_peft_config
from trl import ScriptArguments as TRLScriptArguments

from sgcd.integrations.trl import SGCDConfig


@dataclass
class ScriptArguments(TRLScriptArguments):
    """TRL's script arguments plus the environment's: the training data is airline-lite's tasks, not a dataset."""

    train_size: int = field(default=16, metadata={"help": "airline-lite training tasks"})
    max_horizon: int = field(
        default=2, metadata={"help": "longest gold solution kept (2: one call + answer)"}
    )
    max_new_tokens: int = field(default=6, metadata={"help": "tokens per assistant turn"})
    max_turns: int = field(default=3, metadata={"help": "assistant turns per episode"})
    max_rounds: int = field(default=3, metadata={"help": "dynamic sampling: refill rounds before masking"})
    guide: float = field(
        default=0.5, metadata={"help": "tiny model only: play the gold turns in this share of episodes"}
    )


def make_parser() -> TrlParser:
    import torch

    parser = TrlParser((ScriptArguments, SGCDConfig, ModelConfig))
    # defaults for a CPU demo; the YAML config and flags override them
    parser.set_defaults(use_cpu=not torch.cuda.is_available(), output_dir="runs/trl-airline-lite")
    return parser


def parse_args(argv: list[str] | None = None) -> tuple[ScriptArguments, SGCDConfig, ModelConfig]:
    """Defaults <- --config YAML <- flags. An unknown YAML key is an error naming it (TrlParser)."""
    return make_parser().parse_args_and_config(argv)


def build_trainer(script: ScriptArguments, config: SGCDConfig, model_args: ModelConfig):
    """The SGCDGRPOTrainer of these arguments and the policy it trains."""
    from sgcd.envs import get_domain
    from sgcd.integrations.trl import GoldGuidedPolicy, SGCDGRPOTrainer, SGCDRollout
    from sgcd.policy.base import SamplingParams
    from sgcd.policy.models import load_policy
    from sgcd.rollout import RolloutLimits

    domain = get_domain(
        "airline-lite", seed=config.seed, train_size=script.train_size, max_horizon=script.max_horizon
    )
    dtype = model_args.dtype if model_args.dtype not in (None, "auto") else "float32"
    policy = load_policy(model_args.model_name_or_path or "tiny", seed=config.seed, dtype=dtype)
    guide = script.guide
    wrap = (lambda p: GoldGuidedPolicy(p, domain, p=guide, seed=config.seed)) if guide > 0 else None
    rollout = SGCDRollout(
        domain,
        sampling=SamplingParams(temperature=config.temperature, max_new_tokens=script.max_new_tokens),
        limits=RolloutLimits(max_turns=script.max_turns, max_tokens=config.max_completion_length),
        max_rounds=script.max_rounds,
        seed=config.seed,
        wrap_policy=wrap,
    )
    trainer = SGCDGRPOTrainer(
        policy.model,
        rollout=rollout,
        args=config,
        processing_class=policy.tokenizer,
        peft_config=get_peft_config(model_args),
    )
    return trainer, policy


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    script, config, model_args = parse_args(argv)
    import torch

    trainer, policy = build_trainer(script, config, model_args)
    model = trainer.model  # the PEFT-wrapped model with --use_peft
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    trainer.train()
    after = model.state_dict()
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
        trainer.save_model(config.output_dir)
        print(f"saved the student to {config.output_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
