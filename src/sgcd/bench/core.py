"""`sgcd bench core`: the cost of SGCD's math next to the one cost nobody can avoid, log_softmax over the vocab.

For B trajectories of T tokens (default 64 x 4096, every token an action token except a random 10%), it times
(median of --repeats runs, CPU, after one warm-up):
  credit   = sgcd.core.credit.credit_weights (with its §8 metrics, percentiles included)
  reshape  = sgcd.core.credit.reshape_advantages
  loss     = sgcd.core.losses.ppo_clip_loss forward + backward
  lsm      = torch.log_softmax over a V-token vocabulary for the same B*T tokens, in chunks of --chunk tokens
             (one (chunk, V) float32 logits buffer reused for every chunk: the full (B*T, V) tensor would need
             B*T*V*4 bytes, 51 GB at the defaults)
and prints the ratio (credit + reshape + loss) / lsm. Target: at most 1%. Both sides run with the same number of
torch threads (--threads, default 1; see its help for why).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--batch", type=int, default=64, help="trajectories B (default 64)")
    parser.add_argument("--tokens", type=int, default=4096, help="tokens per trajectory T (default 4096)")
    parser.add_argument("--vocab", type=int, default=49152, help="vocabulary size V (default 49152, SmolLM2)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per measurement; median reported")
    parser.add_argument("--chunk", type=int, default=1024, help="tokens per log_softmax chunk (memory bound)")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads for both sides (default 1: on a shared, oversubscribed CPU, multi-threaded short ops "
        "wait on descheduled OpenMP threads and the figure measures the machine's load; 0 = torch's default)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", metavar="OUT", default=None, help="also write the figures as JSON to OUT")


def _check(args) -> None:
    from sgcd.cli import CliError

    for name in ("batch", "tokens", "vocab", "repeats", "chunk"):
        if getattr(args, name) < 1:
            raise CliError(f"--{name} must be >= 1, got {getattr(args, name)}")
    if args.threads < 0:
        raise CliError(f"--threads must be >= 0, got {args.threads}")


def _make_batch(B: int, T: int, seed: int):
    import torch

    g = torch.Generator().manual_seed(seed)
    student_B_T = -torch.rand(B, T, generator=g) * 3
    teacher_B_T = student_B_T + 0.3 * torch.randn(B, T, generator=g)
    mask_B_T = torch.rand(B, T, generator=g) > 0.1
    rewards_B = (torch.rand(B, generator=g) > 0.5).float()
    group_ids_B = torch.arange(B) // 8
    return student_B_T, teacher_B_T, mask_B_T, rewards_B, group_ids_B


def _time_core(batch) -> dict[str, float]:
    """One timed run of credit weights, token advantages and the PPO loss (fwd + bwd); seconds per phase."""
    from sgcd.core.advantages import grpo_advantages
    from sgcd.core.credit import credit_weights, reshape_advantages
    from sgcd.core.losses import ppo_clip_loss

    student_B_T, teacher_B_T, mask_B_T, rewards_B, group_ids_B = batch
    adv_B, _ = grpo_advantages(rewards_B, group_ids_B)
    t0 = time.perf_counter()
    w_B_T, _ = credit_weights(teacher_B_T, student_B_T, adv_B, mask_B_T)
    t1 = time.perf_counter()
    ahat_B_T, _ = reshape_advantages(adv_B, w_B_T, mask_B_T)
    t2 = time.perf_counter()
    logprobs_B_T = student_B_T.clone().requires_grad_()
    loss, _ = ppo_clip_loss(logprobs_B_T, student_B_T, ahat_B_T, mask_B_T)
    loss.backward()
    t3 = time.perf_counter()
    return {"credit": t1 - t0, "reshape": t2 - t1, "loss": t3 - t2}


def _time_log_softmax(n_tokens: int, vocab: int, chunk: int, logits_C_V) -> float:
    """Seconds for log_softmax over n_tokens rows of `vocab` logits, `chunk` rows at a time."""
    import torch

    t0 = time.perf_counter()
    done = 0
    while done < n_tokens:
        rows = min(chunk, n_tokens - done)
        torch.log_softmax(logits_C_V[:rows], dim=-1)
        done += rows
    return time.perf_counter() - t0


def main(args) -> int:
    """Entry point of `sgcd bench core` (args from add_arguments); returns the exit code."""
    import torch

    _check(args)
    threads_before = torch.get_num_threads()
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        return _run(args)
    finally:
        torch.set_num_threads(threads_before)  # callers in the same process (tests) keep their setting


def _run(args) -> int:
    import torch
    from rich.console import Console
    from rich.progress import Progress
    from rich.table import Table

    B, T, V = args.batch, args.tokens, args.vocab
    console = Console()
    batch = _make_batch(B, T, args.seed)
    chunk = min(args.chunk, B * T)
    logits_C_V = torch.randn(chunk, V, generator=torch.Generator().manual_seed(args.seed + 1))
    _time_core(batch)  # warm-up (allocator, first-call dispatch)
    _time_log_softmax(chunk, V, chunk, logits_C_V)

    core_runs: list[dict[str, float]] = []
    lsm_runs: list[float] = []
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task(f"bench core B={B} T={T} V={V}", total=2 * args.repeats)
        for _ in range(args.repeats):
            core_runs.append(_time_core(batch))
            progress.advance(task)
            lsm_runs.append(_time_log_softmax(B * T, V, chunk, logits_C_V))
            progress.advance(task)

    med = {k: statistics.median(r[k] for r in core_runs) for k in ("credit", "reshape", "loss")}
    total = statistics.median(sum(r.values()) for r in core_runs)
    lsm = statistics.median(lsm_runs)
    ratio = total / lsm if lsm > 0 else float("inf")
    result = {
        "batch": B, "tokens": T, "vocab": V, "repeats": args.repeats, "chunk": chunk,
        "threads": torch.get_num_threads(), "torch": torch.__version__,
        "median_s": {**med, "core_total": total, "log_softmax": lsm},
        "runs_s": {"core_total": [sum(r.values()) for r in core_runs], "log_softmax": lsm_runs},
        "ratio": ratio, "target": 0.01, "meets_target": ratio <= 0.01,
    }  # fmt: skip

    table = Table(
        title=f"sgcd bench core: B={B} T={T} V={V}, median of {args.repeats}, {result['threads']} threads"
    )
    table.add_column("phase")
    table.add_column("median ms", justify="right")
    table.add_column("% of log_softmax", justify="right")
    rows = [("credit weights", med["credit"]), ("token advantages", med["reshape"]),
            ("PPO loss fwd+bwd", med["loss"]), ("credit + advantages + loss", total), ("log_softmax", lsm)]  # fmt: skip
    for name, seconds in rows:
        table.add_row(name, f"{seconds * 1e3:.1f}", f"{100 * seconds / lsm:.3f}%" if lsm > 0 else "-")
    console.print(table)
    verdict = "meets" if ratio <= 0.01 else "MISSES"
    console.print(f"ratio (credit + advantages + loss) / log_softmax = {ratio:.4%} ({verdict} the 1% target)")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
        console.print(f"wrote {args.json}")
    return 0
