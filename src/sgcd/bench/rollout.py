"""`sgcd bench rollout`: generated tokens/s for a group of G siblings sampled together vs one at a time.

For each model (default `tiny` and `smollm2-135m`) and each mode it samples one assistant turn of G siblings
from the opening prompt of an airline-lite test task (a fixed built-in prompt if the domain is unavailable):
    batched     one HFPolicy.generate call with G rows (KV cache, shared-prefix cache, left padding)
    sequential  G calls with one row each (the prefix cache is warm for both modes)
Every row generates exactly --max-new-tokens tokens (end-of-turn ignored by default, so both modes do the same
work). Reported: median tokens/s over --repeats runs after one warm-up, the speed-up, and peak memory. Each
(model, mode) runs in a fresh child process, so the peak RSS (resource.getrusage; CUDA: max allocated) is its own.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import statistics
import time


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models", default="tiny,smollm2-135m", help="comma-separated model specs")
    parser.add_argument("--G", type=int, default=8, help="siblings per group (default 8)")
    parser.add_argument("--max-new-tokens", type=int, default=64, help="tokens generated per sibling")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per mode; median reported")
    parser.add_argument("--device", default="cpu", help="cpu | cuda")
    parser.add_argument("--dtype", default="float32", help="float32 | bfloat16")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    parser.add_argument(
        "--stop-at-eot", action="store_true", help="let rows stop at <|im_end|> (uneven work)"
    )
    parser.add_argument("--json", metavar="OUT", default=None, help="also write the figures as JSON to OUT")


def _prompt(policy):
    from sgcd.types import Message

    try:
        from sgcd.envs import get_domain

        domain = get_domain("airline-lite")
        opening = domain.make_env(domain.tasks("test")[0]).reset()
        return policy.encode_prompt(opening.messages, opening.tools)
    except Exception:  # the domain is optional here: fall back to a fixed prompt
        msgs = [
            Message("system", "You are an airline agent. Use the tools."),
            Message("user", "Cancel 577GYT."),
        ]
        return policy.encode_prompt(msgs, [])


def _measure(spec: str, mode: str, args: dict, out: mp.Queue) -> None:
    import torch

    from sgcd.policy.base import SamplingParams
    from sgcd.policy.models import load_policy

    if args["threads"]:
        torch.set_num_threads(args["threads"])
    policy = load_policy(spec, device=args["device"], dtype=args["dtype"])
    if not args["stop_at_eot"]:
        policy.stop_ids = frozenset()
    prompt, G = _prompt(policy), args["G"]
    params = SamplingParams(temperature=1.0, top_p=1.0, max_new_tokens=args["max_new_tokens"])

    def run() -> tuple[int, float]:
        t0 = time.perf_counter()
        if mode == "batched":
            done = policy.generate([prompt] * G, params)
        else:
            done = [policy.generate([prompt], params)[0] for _ in range(G)]
        if args["device"].startswith("cuda"):
            torch.cuda.synchronize()
        return sum(len(c.token_ids) for c in done), time.perf_counter() - t0

    run()  # warm-up (also fills the shared-prefix cache)
    rates = []
    for _ in range(args["repeats"]):
        n, dt = run()
        rates.append(n / dt)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    cuda_mb = torch.cuda.max_memory_allocated() / 2**20 if args["device"].startswith("cuda") else None
    out.put(
        {
            "model": spec,
            "mode": mode,
            "tokens_per_s": statistics.median(rates),
            "runs": rates,
            "prompt_tokens": len(prompt),
            "peak_rss_mb": peak_mb,
            "peak_cuda_mb": cuda_mb,
        }
    )


def main(args: argparse.Namespace) -> int:
    from sgcd.cli import CliError

    for name in ("G", "max_new_tokens", "repeats"):
        if getattr(args, name) < 1:
            raise CliError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    opts = {
        k: getattr(args, k)
        for k in ("G", "max_new_tokens", "repeats", "device", "dtype", "threads", "stop_at_eot")
    }
    ctx = mp.get_context("spawn")
    rows = []
    for spec in [m.strip() for m in args.models.split(",") if m.strip()]:
        for mode in ("batched", "sequential"):
            q = ctx.Queue()
            proc = ctx.Process(target=_measure, args=(spec, mode, opts, q))
            proc.start()
            proc.join()
            if proc.exitcode != 0 or q.empty():
                raise CliError(f"bench rollout: {spec} {mode} failed (exit code {proc.exitcode})")
            rows.append(q.get())
    print(
        f"sgcd bench rollout: G={args.G}, {args.max_new_tokens} new tokens per sibling, device {args.device}, "
        f"{args.dtype}, median of {args.repeats}"
    )
    w = max([16] + [len(r["model"]) + 2 for r in rows])  # a model path may be longer than a name
    cuda = any(r["peak_cuda_mb"] is not None for r in rows)
    print(
        f"{'model':<{w}}{'mode':<12}{'tokens/s':>10}{'speed-up':>10}{'peak RSS MB':>13}{'prompt':>8}"
        + (f"{'peak CUDA MB':>14}" if cuda else "")
    )
    summary = {}
    for spec in dict.fromkeys(r["model"] for r in rows):
        b, s = [
            next(r for r in rows if r["model"] == spec and r["mode"] == m) for m in ("batched", "sequential")
        ]
        summary[spec] = b["tokens_per_s"] / s["tokens_per_s"]
        for r in (b, s):
            speed = f"{summary[spec]:.2f}x" if r is b else "1.00x"
            print(
                f"{spec:<{w}}{r['mode']:<12}{r['tokens_per_s']:>10.1f}{speed:>10}{r['peak_rss_mb']:>13.0f}"
                f"{r['prompt_tokens']:>8}" + (f"{r['peak_cuda_mb']:>14.0f}" if cuda else "")
            )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"config": opts, "rows": rows, "speedup": summary}, fh, indent=1)
    return 0
