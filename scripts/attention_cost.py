"""Cost of one generation pass over a long cache: R rows x q query tokens, transformers' sdpa path (which copies
the cached keys/values once per query head for q > 1 with a mask) against `packed_attention`. The model is
SmolLM2-135M (the cached default folder, or any folder); weights do not matter for speed. docs/models.md quotes
its output.

    python scripts/attention_cost.py [--model smollm2-135m] [--length 2500] [--rows 1,2,4,8,16] [--threads 2]
"""

from __future__ import annotations

import argparse
import contextlib
import time

import torch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--length", type=int, default=2500, help="cached positions per row")
    ap.add_argument("--rows", default="1,2,4,8,16")
    ap.add_argument("--queries", default="1,2,5,9")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from sgcd.policy.attention import packed_attention
    from sgcd.policy.kvcache import reserve_cache
    from sgcd.policy.models import load_policy

    policy = load_policy(args.model)
    lm, body, L = policy.causal_lm(), policy.body(), args.length
    queries = [int(q) for q in args.queries.split(",")]
    with torch.no_grad():  # one row's cache, repeated for every row count
        prompt = body(input_ids=torch.randint(0, 1000, (1, L)), use_cache=True)
    one = prompt["cache"] if "cache" in prompt else prompt["past_key_values"]
    for mode in ("transformers", "packed"):
        for R in [int(r) for r in args.rows.split(",")]:
            row = []
            for q in queries:
                times = []
                for _ in range(args.repeats):
                    cache = reserve_cache(one, L + q, repeat=R)
                    attn = torch.ones(R, L + q, dtype=torch.long)
                    ids = torch.randint(0, 1000, (R, q))
                    pos = torch.arange(L, L + q)[None].expand(R, q)
                    switch = packed_attention(lm) if mode == "packed" else contextlib.nullcontext()
                    with torch.no_grad(), switch:
                        t = time.perf_counter()
                        out = body(input_ids=ids, attention_mask=attn, position_ids=pos, use_cache=True,
                                   **{policy._cache_kw: cache})  # fmt: skip
                        torch.log_softmax(policy._head(out.last_hidden_state), -1)
                        times.append(time.perf_counter() - t)
                row.append(sorted(times)[len(times) // 2] * 1000)
            cells = " ".join(f"{ms:8.1f}" for ms in row)
            print(f"{mode:12s} {R:3d} rows, {L} cached, q = {args.queries} ms: {cells}", flush=True)


if __name__ == "__main__":
    main()
