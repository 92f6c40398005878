"""Cost of generation's attention over a long cache whose first P columns every row shares (the system prompt):
one softmax per row over all its columns (`packed_sdpa` as before) against the shared columns read once per pass
(`attention.shared_columns`, the cascade). SmolLM2-135M's attention shapes (9 query heads, 3 key/value heads,
head size 64) and 30 layers of random keys/values, each layer its own buffers as in a real pass, so the cache is
read from memory and not from the CPU's last-level cache. The two paths alternate; each figure is the fastest of
`--repeats` whole passes (ms for the 30 layers' attention). docs/models.md quotes its output.

    python scripts/shared_columns.py [--cases 32x1x2500,...] [--shared 450] [--threads 2] [--repeats 4]

A case is ROWSxQUERY_TOKENSxCOLUMNS.
"""

from __future__ import annotations

import argparse
import time

import torch

CASES = "32x1x2500,32x1x1200,16x1x2500,16x1x1200,8x1x2000,8x1x1200,4x1x1500,32x4x2000,16x4x1500"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", default=CASES)
    ap.add_argument("--shared", type=int, default=450, help="shared columns P (airline-lite's prompt: ~450)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=4)
    ap.add_argument("--layers", type=int, default=30)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from sgcd.policy import attention

    attention.MIN_ROWS = 1  # time every case on both paths; generation itself uses the defaults
    module = type("Attn", (), {"num_key_value_groups": 3, "is_causal": True})()
    P = args.shared
    print(
        f"attention over {args.layers} layers, {P} shared columns, {args.threads} threads, best of {args.repeats}"
    )
    print(f"{'rows':>5} {'q':>3} {'columns':>8} {'per row ms':>11} {'shared once ms':>15} {'ratio':>6}")
    for case in args.cases.split(","):
        B, q, L = (int(x) for x in case.split("x"))
        g = torch.Generator().manual_seed(0)
        layers = []
        for _ in range(args.layers):  # reserved buffers with room to spare, the filled part as a view
            k = torch.randn(B, 3, L + 64, 64, generator=g)
            v = torch.randn(B, 3, L + 64, 64, generator=g)
            k[1:, :, :P], v[1:, :, :P] = k[:1, :, :P], v[:1, :, :P]
            layers.append((k[:, :, :L], v[:, :, :L]))
        query = torch.randn(B, 9, q, 64, generator=g)
        mask = torch.ones(B, 1, q, L, dtype=torch.bool).tril(diagonal=L - q)
        best = {0: float("inf"), P: float("inf")}
        for _ in range(args.repeats):
            for cols in best:
                with attention.shared_columns() as shared:
                    shared.columns = cols  # 0: one softmax per row
                    t = time.perf_counter()
                    for key, value in layers:
                        attention.packed_sdpa(module, query, key, value, mask, scaling=0.125)
                    best[cols] = min(best[cols], time.perf_counter() - t)
        a, b = best[0] * 1e3, best[P] * 1e3
        print(f"{B:5d} {q:3d} {L:8d} {a:11.1f} {b:15.1f} {a / b:6.2f}", flush=True)


if __name__ == "__main__":
    main()
