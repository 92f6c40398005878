"""Cost of a model's linear layers for R rows, weights row-major (as stored) against column-major (the copies
sgcd.policy.layout keeps for generation). Shapes are SmolLM2-135M's by default: 30 blocks of q, k, v, o, gate,
up, down; weights are random (speed does not depend on them). Also the tied output head (49,152 x 576).
sgcd/policy/layout.py and docs/models.md quote its output.

    python scripts/linear_layout.py [--rows 2,4,8,16,24,32,64,128,512,2048] [--threads 2] [--repeats 7]
"""

from __future__ import annotations

import argparse
import time

import torch

BLOCK = [(576, 576), (192, 576), (192, 576), (576, 576), (1536, 576), (1536, 576), (576, 1536)]  # (out, in)


def median_ms(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return sorted(times)[len(times) // 2] * 1000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", default="2,4,8,16,24,32,48,64,128,512,2048")
    ap.add_argument("--blocks", type=int, default=30)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from sgcd.policy.layout import column_major

    linear = torch.nn.functional.linear
    row_major = [torch.randn(o, i) for _ in range(args.blocks) for o, i in BLOCK]
    col_major = [column_major(w) for w in row_major]
    head = torch.randn(49152, 576)
    head_cm = column_major(head)
    print(
        f"{len(row_major)} matrices ({sum(w.numel() for w in row_major) * 4 / 1e6:.0f} MB), {args.threads} threads"
    )
    print(f"{'rows':>6} {'row-major':>10} {'col-major':>10} {'ratio':>6}   head: {'row':>6} {'col':>6} ms")
    with torch.no_grad():
        for rows in [int(r) for r in args.rows.split(",")]:
            x = {576: torch.randn(rows, 576), 1536: torch.randn(rows, 1536)}
            a = median_ms(lambda x=x: [linear(x[w.shape[1]], w) for w in row_major], args.repeats)
            b = median_ms(lambda x=x: [linear(x[w.shape[1]], w) for w in col_major], args.repeats)
            h = x[576]
            ha = median_ms(lambda h=h: linear(h, head), args.repeats)
            hb = median_ms(lambda h=h: linear(h, head_cm), args.repeats)
            print(f"{rows:6d} {a:10.1f} {b:10.1f} {a / b:6.2f}   head: {ha:6.1f} {hb:6.1f}", flush=True)


if __name__ == "__main__":
    main()
