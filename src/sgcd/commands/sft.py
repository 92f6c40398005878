"""`sgcd sft --model smollm2-135m --env airline-lite [--steps N --lr LR --batch-size B --out DIR]`: supervised
warm-start on the environment's gold trajectories (loss on action tokens only), then a held-out check: one
sampled episode (temperature 1) per test task, reporting the share of well-formed turns and the success rate.
`--reference` adds reference-reading examples (our addition, `model.sft_reference` in `sgcd train`).

Without --out the result goes to the shared cache ($SGCD_CACHE/sft, keyed by model, env and budget), which is
where the trainer's default run looks for it, so running this first makes `sgcd train` skip the warm-start.
"""

from __future__ import annotations

import argparse
import json
import time
from types import SimpleNamespace

from sgcd.cli import CliError

# SFTConfig's defaults, written out so that registering this command (every `sgcd --help`) does not import
# sgcd.trainer.sft and with it torch; tests/test_cli.py keeps them equal to SFTConfig().
DEFAULTS = {
    "steps": 40,
    "batch_size": 4,
    "lr": 3e-4,
    "max_tokens": 512,
    "train_layers": 12,
    "seed": 0,
    "lora_rank": 0,
    "reference": False,
    "reference_share": 0.5,
}


def register(subparsers) -> None:
    d = SimpleNamespace(**DEFAULTS)
    p = subparsers.add_parser("sft", help="supervised warm-start on gold trajectories", description=__doc__)
    p.add_argument("--model", default="smollm2-135m", help="model spec: smollm2-135m | tiny | folder | HF id")
    p.add_argument("--env", default="airline-lite", help="environment with a gold_turns hook (airline-lite)")
    p.add_argument("--split", default="train", help="split whose gold trajectories are trained on")
    p.add_argument("--steps", type=int, default=d.steps, help=f"optimizer steps (default {d.steps})")
    p.add_argument(
        "--batch-size", type=int, default=d.batch_size, help=f"trajectories per step ({d.batch_size})"
    )
    p.add_argument("--lr", type=float, default=d.lr, help=f"peak learning rate (default {d.lr})")
    p.add_argument("--max-tokens", type=int, default=d.max_tokens, help="skip longer gold trajectories")
    p.add_argument(
        "--train-layers",
        type=int,
        default=d.train_layers,
        help=f"train only the top N blocks (0 = all; default {d.train_layers})",
    )
    p.add_argument(
        "--lora-rank",
        type=int,
        default=d.lora_rank,
        help="> 0: train peft LoRA adapters of this rank in the top --train-layers blocks, merged when saved "
        "(default 0: train the blocks' weights)",
    )
    p.add_argument(
        "--reference",
        action="store_true",
        help="reference-reading warm start (our addition; docs/training.md): also train on the RL teacher's "
        "prompt, a credit reference from scripted sibling attempts, followed by the successful sibling's turns",
    )
    p.add_argument(
        "--reference-share",
        type=float,
        default=d.reference_share,
        help=f"with --reference: share of the steps on reference examples (default {d.reference_share})",
    )
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--out", default=None, help="output folder (default: the shared SFT cache)")
    p.add_argument("--device", default="cpu", help="cpu | cuda")
    p.add_argument("--eval-tasks", type=int, default=40, help="test tasks sampled afterwards (0 = skip)")
    p.add_argument("--eval-split", default="test")
    p.add_argument("--json", default=None, metavar="OUT", help="write the figures as JSON here")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from sgcd.trainer.sft import SFTConfig, ensure_sft_model, evaluate, sft

    if args.lora_rank < 0 or args.train_layers < 0:
        raise CliError("--lora-rank and --train-layers must be >= 0")
    for name in ("steps", "batch_size", "max_tokens"):
        if getattr(args, name) < 1:
            raise CliError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.lr <= 0:
        raise CliError(f"--lr must be > 0, got {args.lr}")
    if not 0 < args.reference_share <= 1:
        raise CliError(f"--reference-share must be in (0, 1], got {args.reference_share}")
    config = SFTConfig(
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        max_tokens=args.max_tokens,
        seed=args.seed,
        train_layers=args.train_layers,
        lora_rank=args.lora_rank,
        reference=args.reference,
        reference_share=args.reference_share,
    )
    from sgcd.progress import line, on_terminal

    domain = _domain(args.env)
    t0 = time.time()
    bar = not args.no_progress and on_terminal()  # a rich bar on a terminal, else a line per step
    if not args.no_progress and not bar:
        line(
            f"sft: {config.steps} steps of {config.batch_size} gold trajectories ({args.model} on {args.env})"
        )
    try:
        if args.out:
            path = sft(args.model, domain, args.split, config, args.out, args.device, not args.no_progress)
        else:
            if args.split != "train":
                raise CliError(
                    "--split other than train needs --out (the cache holds train warm-starts only)"
                )
            path = ensure_sft_model(args.model, args.env, config, args.device, not args.no_progress)
    except FileNotFoundError as exc:
        raise CliError(str(exc).splitlines()[0]) from exc
    meta = json.loads((path / "sft.json").read_text())
    train_s = time.time() - t0
    print(
        f"sft: {meta['examples']} gold trajectories, {meta['config']['steps']} steps, "
        f"loss {meta['losses'][0]:.3f} -> {meta['losses'][-1]:.3f}, {train_s:.0f} s (this call) -> {path}"
    )
    if "reference" in meta:
        r = meta["reference"]
        print(
            f"sft: reference-reading: {r['steps']} of {meta['config']['steps']} steps on {r['examples']} "
            f"examples from {r['groups']} scripted sibling groups (prompts {r['prompt_tokens_mean']:.0f} tokens, "
            f"clean {r['clean_prompt_tokens_mean']:.0f})"
        )
    result = {"path": str(path), "sft": meta, "wall_s": round(train_s, 1)}
    if args.eval_tasks > 0:
        from sgcd.policy.models import load_policy

        t1 = time.time()
        policy = load_policy(str(path), device=args.device, seed=args.seed)
        health = evaluate(policy, domain, args.eval_split, args.eval_tasks, seed=args.seed)
        result["eval"] = {**health, "wall_s": round(time.time() - t1, 1)}
        print(
            f"held-out ({args.eval_split}, {health['episodes']} tasks, temperature 1): "
            f"well-formed turns {100 * health['well_formed']:.1f}% of {health['turns']}, "
            f"success {100 * health['success']:.1f}%, tool rejections {100 * health['tool_reject_rate']:.1f}%, "
            f"{health['turns_per_episode']:.1f} turns/episode ({time.time() - t1:.0f} s)"
        )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=1)
    return 0


def _domain(name: str):
    from sgcd.envs import get_domain

    try:
        domain = get_domain(name)
    except (ValueError, RuntimeError) as exc:
        raise CliError(str(exc)) from exc
    if not hasattr(domain, "gold_turns"):
        raise CliError(f"environment {name!r} has no gold trajectories (gold_turns hook); sft needs one")
    return domain
