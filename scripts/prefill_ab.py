"""A/B of grouped prefill in one process: a greedy `sgcd eval`-style run of the first N dev tasks per leg, legs
A (one prefill call padded to the longest row, `prefill_overhead=None`) and B (grouped, the default 32), in the
order given. A hook times every forward call of the transformer body, so each leg also prints where its time
went: prefill calls (tokens fed, padding included, and real), decode steps of 8 or more rows, and the tail's
decode steps of fewer. docs/models.md quotes its output.

    python scripts/prefill_ab.py POLICY_FOLDER [--tasks 24] [--threads 1] [--legs A1,B1,B2,A2]
"""

from __future__ import annotations

import argparse
import time

import torch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("policy", help="a model folder or spec, e.g. the SFT warm start's folder")
    ap.add_argument("--tasks", type=int, default=24)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--legs", default="A1,B1,B2,A2", help="A* = one padded call, B* = grouped")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from sgcd.envs.base import get_domain
    from sgcd.eval.evaluate import evaluate
    from sgcd.policy.base import SamplingParams
    from sgcd.rollout.runner import PolicyRunner

    # sgcd eval's defaults: 256 tokens a turn, 16 turns, 4096 tokens, 32 episodes in flight, pause share 0.5
    runner = PolicyRunner.from_spec(args.policy, SamplingParams(0.0, 1.0, 256), batch_size=32)
    domain, policy = get_domain("airline-lite"), runner.policy
    parts = ("prefill", "decode>=8", "decode<8")
    split: dict[str, list[float]] = {}  # part -> [calls, seconds, tokens fed, real tokens]
    call: dict = {}

    def before(module, a, kw):
        ids, mask = kw["input_ids"], kw.get("attention_mask")
        real = int(mask[:, -ids.shape[1] :].sum()) if mask is not None else ids.numel()
        call.update(t=time.perf_counter(), B=ids.shape[0], S=ids.shape[1], real=real)

    def after(module, a, kw, out):
        part = "prefill" if call["S"] > 1 else "decode>=8" if call["B"] >= 8 else "decode<8"
        row = split[part]
        row[0] += 1
        row[1] += time.perf_counter() - call["t"]
        row[2] += call["B"] * call["S"]
        row[3] += call["real"]

    policy.body().register_forward_pre_hook(before, with_kwargs=True)
    policy.body().register_forward_hook(after, with_kwargs=True)
    outcomes = {}
    for leg in args.legs.split(","):
        policy.prefill_overhead = None if leg.startswith("A") else 32
        policy.sessions.clear()
        policy._memo.clear()
        split.update({part: [0, 0.0, 0, 0] for part in parts})
        t0 = time.perf_counter()
        result = evaluate(runner, domain, "dev", limit=args.tasks, progress=False, batch_size=32)
        wall = time.perf_counter() - t0
        outcomes[leg] = result.per_task()
        rate = sum(outcomes[leg].values()) / len(outcomes[leg])
        print(f"{leg}: {wall:.1f} s, success {rate:.3f}")
        for part in parts:
            n, sec, fed, real = split[part]
            print(f"  {part:10s} {int(n):5d} calls {sec:8.1f} s  {int(fed):7d} tokens fed ({int(real)} real)")
    first = next(iter(outcomes))
    for leg in outcomes:
        print(f"{leg}: same per-task outcomes as {first}: {outcomes[leg] == outcomes[first]}")


if __name__ == "__main__":
    main()
