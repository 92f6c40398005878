"""A/B of prompt-lookup drafts in one process: a greedy `sgcd eval`-style run of the first N dev tasks per leg,
legs A (plain decoding, `lookup_draft=0`) and B (drafts verified, the defaults), in the order given. A hook
times every forward call of the transformer body, so each leg also prints where its time went: prefill calls,
plain decode steps of 8 or more rows and of fewer (the tail), and draft-verifying passes (with how many draft
tokens they confirmed). docs/models.md quotes its output.

    python scripts/lookup_ab.py POLICY_FOLDER [--tasks 24] [--threads 2] [--legs A1,B1,B2,A2] [--split dev]
"""

from __future__ import annotations

import argparse
import time

import torch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("policy", help="a model folder or spec, e.g. the SFT warm start's folder")
    ap.add_argument("--tasks", type=int, default=24)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--split", default="dev")
    ap.add_argument("--legs", default="A1,B1,B2,A2", help="A* = plain decoding, B* = lookup drafts")
    ap.add_argument("--draft", type=int, default=8, help="B legs: lookup_draft")
    ap.add_argument("--tokens", type=int, default=32, help="B legs: lookup_tokens")
    ap.add_argument(
        "--session-gb", type=float, default=None, help="SessionStore.max_bytes in GiB (default: as is)"
    )
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from sgcd.envs.base import get_domain
    from sgcd.eval.evaluate import evaluate
    from sgcd.policy.base import SamplingParams
    from sgcd.rollout.runner import PolicyRunner

    # sgcd eval's defaults: 256 tokens a turn, 16 turns, 4096 tokens, 32 episodes in flight, pause share 0.5
    runner = PolicyRunner.from_spec(args.policy, SamplingParams(0.0, 1.0, 256), batch_size=32)
    domain, policy = get_domain("airline-lite"), runner.policy
    parts = ("prefill", "decode>=8", "decode<8", "verify")
    split: dict[str, list[float]] = {}  # part -> [calls, seconds, query tokens]
    call: dict = {"verify": False}
    verify = policy._verify

    def tagged(*a, **kw):
        call["verify"] = True
        try:
            return verify(*a, **kw)
        finally:
            call["verify"] = False

    policy._verify = tagged

    def before(module, a, kw):
        ids = kw["input_ids"]
        call.update(t=time.perf_counter(), B=ids.shape[0], S=ids.shape[1])

    def after(module, a, kw, out):
        B, S = call["B"], call["S"]
        part = "verify" if call["verify"] else "prefill" if S > 1 else "decode>=8" if B >= 8 else "decode<8"
        row = split[part]
        row[0] += 1
        row[1] += time.perf_counter() - call["t"]
        row[2] += B * S

    policy.body().register_forward_pre_hook(before, with_kwargs=True)
    policy.body().register_forward_hook(after, with_kwargs=True)
    outcomes = {}
    for leg in args.legs.split(","):
        policy.lookup_draft = 0 if leg.startswith("A") else args.draft
        policy.lookup_tokens = args.tokens
        policy.lookup_stats = {"passes": 0, "drafted": 0, "accepted": 0}
        policy.sessions.clear()
        policy.sessions.hits = policy.sessions.hit_tokens = 0
        if args.session_gb is not None:
            policy.sessions.max_bytes = int(args.session_gb * 2**30)
        policy._memo.clear()
        split.update({part: [0, 0.0, 0] for part in parts})
        t0 = time.perf_counter()
        result = evaluate(runner, domain, args.split, limit=args.tasks, progress=False, batch_size=32)
        wall = time.perf_counter() - t0
        per_task = result.per_task()
        rate = sum(per_task.values()) / len(per_task)
        # every message of every episode, not only success: drafts must not change a single token
        outcomes[leg] = sorted((e.task_id, tuple(m.content for m in e.messages)) for e in result.episodes)
        print(
            f"{leg}: {wall:.1f} s, success {rate:.3f}, drafts {policy.lookup_stats}, "
            f"kept-cache hits {policy.sessions.hits} ({policy.sessions.hit_tokens} tokens)",
            flush=True,
        )
        for part in parts:
            n, sec, fed = split[part]
            print(f"  {part:10s} {int(n):5d} calls {sec:8.1f} s  {int(fed):7d} query tokens", flush=True)
    first = next(iter(outcomes))
    for leg in outcomes:
        print(f"{leg}: every episode's messages the same as {first}'s: {outcomes[leg] == outcomes[first]}")


if __name__ == "__main__":
    main()
