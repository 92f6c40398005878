"""A/B of prompt-lookup drafts in one process: a greedy `sgcd eval`-style run of the first N dev tasks per leg,
legs A (plain decoding, `lookup_draft=0`) and B (drafts verified, the defaults), in the order given. A hook
times every forward call of the transformer body, so each leg also prints where its time went: prefill calls,
plain decode steps of 8 or more rows and of fewer (the tail), and draft-verifying passes (with how many draft
tokens they confirmed). Per part it also prints the seconds spent in the attention function and how many
row-positions the passes attended to, and what share of them lay in the prompts' shared prefix (what
`sgcd.policy.attention.shared_columns` reads once per pass instead of once per row). docs/models.md quotes its
output.

    python scripts/lookup_ab.py POLICY_FOLDER [--tasks 24] [--threads 2] [--legs A1,B1,B2,A2] [--split dev]
        [--min-shared N]   # attention.MIN_SHARED; a huge N turns the shared-columns path off
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
    ap.add_argument("--min-shared", type=int, default=None, help="attention.MIN_SHARED (default: as is)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from transformers import AttentionInterface

    from sgcd.envs.base import get_domain
    from sgcd.eval.evaluate import evaluate
    from sgcd.policy import attention
    from sgcd.policy.base import SamplingParams
    from sgcd.rollout.runner import PolicyRunner

    # sgcd eval's defaults: 256 tokens a turn, 16 turns, 4096 tokens, 32 episodes in flight, pause share 0.5
    runner = PolicyRunner.from_spec(args.policy, SamplingParams(0.0, 1.0, 256), batch_size=32)
    domain, policy = get_domain("airline-lite"), runner.policy
    parts = ("prefill", "decode>=8", "decode<8", "verify")
    # part -> [calls, seconds, query tokens, attention seconds, row-positions attended, of them in the shared prefix]
    split: dict[str, list[float]] = {}
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
        mask = kw.get("attention_mask")
        L = mask.shape[1] if mask is not None else ids.shape[1]
        call.update(t=time.perf_counter(), B=ids.shape[0], S=ids.shape[1], L=L, attn=0.0)

    def after(module, a, kw, out):
        B, S = call["B"], call["S"]
        part = "verify" if call["verify"] else "prefill" if S > 1 else "decode>=8" if B >= 8 else "decode<8"
        row = split[part]
        row[0] += 1
        row[1] += time.perf_counter() - call["t"]
        row[2] += B * S
        row[3] += call["attn"]
        row[4] += B * call["L"]
        row[5] += B * min(shared["P"], call["L"])

    if args.min_shared is not None:
        attention.MIN_SHARED = args.min_shared
    attention._register()
    inner = attention.packed_sdpa

    def timed_attention(*a, **kw):  # generation's attention function, timed
        t = time.perf_counter()
        try:
            return inner(*a, **kw)
        finally:
            call["attn"] += time.perf_counter() - t

    AttentionInterface.register(attention.NAME, timed_attention)
    shared = {"P": 0}
    prefix_len = policy._shared_prefix_len

    def recorded(prompts):
        shared["P"] = prefix_len(prompts)
        return shared["P"]

    policy._shared_prefix_len = recorded

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
        split.update({part: [0, 0.0, 0, 0.0, 0, 0] for part in parts})
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
            n, sec, fed, att, seen, pre = split[part]
            print(
                f"  {part:10s} {int(n):5d} calls {sec:8.1f} s  {int(fed):7d} query tokens; attention {att:6.1f} s, "
                f"{int(seen):9d} row-positions, {pre / max(seen, 1):.2f} in the shared prefix",
                flush=True,
            )
    first = next(iter(outcomes))
    for leg in outcomes:
        print(f"{leg}: every episode's messages the same as {first}'s: {outcomes[leg] == outcomes[first]}")


if __name__ == "__main__":
    main()
