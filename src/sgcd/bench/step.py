"""`sgcd bench step`: one full training step of grpo and of sgcd on the same batch, split by phase.

The rollouts are sampled once (timed as `rollout`) and reused; then, from the same model and optimizer state,
each algorithm runs the rest of the step `--repeats` times (median reported): reference (summarizer), old
log-probs, teacher scoring, credit, update. The printed ratio is SGCD step time / GRPO step time with the shared
rollout included (what a run pays), and the ratio of the post-rollout part alone.

Timing does not need a mixed group: every forward and backward runs whatever the rewards are. When two sampling
rounds find no mixed group (a model that never succeeds, like the tiny test model on airline-lite), the bench
times the first `groups_per_step` sampled groups instead (their advantages are 0) and says so
(`groups_were_mixed: false`).

Then the update path alone, on the same batch, against a plain float32 full-parameter forward+backward of the
same rows (a fresh copy of the model, every parameter trained, no autocast, log-probs at every position): the
configured path is what the run uses (model.autocast, model.train_layers / model.lora_*, the frozen trunk filled
by the old-log-prob pass, log-probs at action tokens only). `per_token_speedup` = plain / configured seconds per
trained (action) token, update pass only; `per_token_speedup_with_old` adds each path's old-log-prob pass.
`peak_rss_gb` is the process's peak resident memory before the plain copy is loaded (the run's own footprint);
`peak_rss_after_rollout_gb` the same once the rollouts were sampled, so a peak can be told apart: rollouts (KV
caches) or the training passes. Freed tensor memory that glibc keeps counts too (docs/training.md).

    sgcd bench step --json bench-step.json                      (the smoke preset: tiny model, seconds)
    sgcd bench step --preset default --json bench-step.json     (smollm2-135m, the default run's shapes)
"""

from __future__ import annotations

import copy
import json
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

PHASES = ("reference", "old_logprobs", "teacher", "credit", "update")


def add_arguments(p) -> None:
    p.add_argument("--preset", default="smoke", help="a packaged preset name or a YAML path (default: smoke)")
    p.add_argument("--json", type=Path, default=None, help="write the results here")
    p.add_argument("--repeats", type=int, default=3, help="post-rollout repetitions per algorithm (median)")
    p.add_argument("--device", default=None, help="override model.device (e.g. cuda)")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted config overrides")


def _collect(trainer, tries: int = 2):
    """Sample once; prefer a batch with mixed groups, else time the sampled groups anyway (see the docstring)."""
    from dataclasses import replace as dc_replace

    from sgcd.trainer.loop.step import collect

    t0 = time.perf_counter()
    for _ in range(tries):
        collected = collect(trainer.ctx)
        if collected.mixed:
            return collected, time.perf_counter() - t0, True
    k = trainer.cfg.sampling.groups_per_step
    return dc_replace(collected, mixed=collected.all_groups[:k]), time.perf_counter() - t0, False


def run_bench(cfg, repeats: int = 3) -> dict:
    from sgcd.trainer.loop.step import Timer, train_on
    from sgcd.trainer.trainer import Trainer

    with tempfile.TemporaryDirectory(prefix="sgcd-bench-") as tmp:
        trainer = Trainer(replace(cfg, algorithm=replace(cfg.algorithm, name="sgcd")), Path(tmp), quiet=True)
        trainer.setup()
        collected, rollout_s, was_mixed = _collect(trainer)
        rollout_rss_gb = _peak_rss_gb()
        model_state = copy.deepcopy(trainer.policy.model.state_dict())
        opt_state = copy.deepcopy(trainer.optimizer.state_dict())
        sched_state = copy.deepcopy(trainer.scheduler.state_dict())
        results = {}
        for algo in ("grpo", "sgcd"):
            trainer.ctx.cfg = replace(cfg, algorithm=replace(cfg.algorithm, name=algo))
            runs = []
            for _ in range(repeats):
                trainer.policy.model.load_state_dict(model_state)
                trainer.optimizer.load_state_dict(opt_state)
                trainer.scheduler.load_state_dict(sched_state)
                timer = Timer()
                t0 = time.perf_counter()
                train_on(trainer.ctx, collected, timer)
                times = {p: timer.times.get(f"time/{p}_s", 0.0) for p in PHASES}
                times["post_rollout"] = time.perf_counter() - t0
                runs.append(times)
            med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
            med["rollout"] = rollout_s
            med["step"] = rollout_s + med["post_rollout"]
            results[algo] = med
        peak_rss_gb = _peak_rss_gb()
        speed = update_speed(trainer, collected, repeats)
    g, s = results["grpo"], results["sgcd"]
    n_traj = sum(len(grp.trajectories) for grp in collected.mixed)
    n_tok = sum(len(t.token_ids) for grp in collected.mixed for t in grp.trajectories)
    return {
        "model": cfg.model.name,
        "device": cfg.model.device,
        "preset_steps": cfg.steps,
        "mixed_groups": len(collected.mixed),
        "groups_were_mixed": was_mixed,
        "trajectories": n_traj,
        "trajectory_tokens": n_tok,
        "repeats": repeats,
        "grpo": g,
        "sgcd": s,
        "ratio_step": s["step"] / g["step"],
        "ratio_post_rollout": s["post_rollout"] / g["post_rollout"],
        "extra_s": {p: s[p] - g[p] for p in PHASES},
        "peak_rss_gb": peak_rss_gb,
        "peak_rss_after_rollout_gb": rollout_rss_gb,
        **speed,
    }


def _peak_rss_gb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux reports KiB


def _time_pass(policy, batch, micro: int, select, grad: bool) -> float:
    """Seconds for one pass over the batch in micro-batches: old log-probs (no grad) or forward+backward."""
    import torch

    from sgcd.trainer.loop.batch import score_rows

    t0 = time.perf_counter()
    for s in range(0, batch.B, micro):
        rows = list(range(s, min(s + micro, batch.B)))
        with torch.set_grad_enabled(grad):
            sc = score_rows(
                policy,
                [batch.prefixes[i] for i in rows],
                [batch.continuations[i] for i in rows],
                batch.T,
                grad=grad,
                select=None if select is None else [select[i] for i in rows],
                share_prefix=False,
            )
            if grad:
                sc.logprobs_B_T.sum().backward()
    if grad:
        policy.model.zero_grad(set_to_none=True)
    return time.perf_counter() - t0


def update_speed(trainer, collected, repeats: int) -> dict:
    """The configured update path vs a plain float32 full-parameter forward+backward, same rows (see above)."""
    from sgcd.policy.models import load_policy
    from sgcd.trainer.loop.batch import collate

    batch = collate(collected.mixed)
    micro = trainer.cfg.algorithm.microbatch_size
    policy = trainer.policy
    conf_old, conf_upd = [], []
    for _ in range(repeats):
        policy.clear_caches()
        conf_old.append(_time_pass(policy, batch, micro, batch.select, grad=False))
        conf_upd.append(_time_pass(policy, batch, micro, batch.select, grad=True))
    policy.clear_caches()
    plain = load_policy(str(trainer.model_path), device=trainer.cfg.model.device, dtype="float32")
    plain.model.requires_grad_(True)
    plain_old, plain_upd = [], []
    for _ in range(repeats):
        plain_old.append(_time_pass(plain, batch, micro, None, grad=False))
        plain_upd.append(_time_pass(plain, batch, micro, None, grad=True))
    med = statistics.median
    action_tokens = int(batch.action_mask_B_T.sum())
    m = trainer.cfg.model
    return {
        "update": {
            "configured": {"autocast": m.autocast, "train_layers": m.train_layers, "lora_rank": m.lora_rank,
                           "old_s": med(conf_old), "update_s": med(conf_upd)},
            "plain_fp32_full": {"old_s": med(plain_old), "update_s": med(plain_upd)},
            "action_tokens": action_tokens,
            "rows": batch.B,
            "padded_T": batch.T,
        },
        "per_token_speedup": med(plain_upd) / med(conf_upd),
        "per_token_speedup_with_old": (med(plain_old) + med(plain_upd)) / (med(conf_old) + med(conf_upd)),
    }  # fmt: skip


def main(args) -> int:
    from sgcd.cli import CliError
    from sgcd.trainer.config import ConfigError, make_config

    overrides = list(args.overrides)
    if args.device:
        overrides.append(f"model.device={args.device}")
    try:
        cfg = make_config(args.preset, overrides)
    except ConfigError as exc:
        raise CliError(str(exc)) from exc
    result = run_bench(cfg, max(1, args.repeats))
    print(
        f"model {result['model']} on {result['device']}: {result['mixed_groups']} groups "
        f"({'mixed' if result['groups_were_mixed'] else 'none mixed: timed anyway, A = 0'}), "
        f"{result['trajectories']} trajectories, {result['trajectory_tokens']} tokens"
    )
    print(f"{'phase':<14}{'grpo s':>10}{'sgcd s':>10}")
    for phase in ("rollout", *PHASES, "step"):
        print(f"{phase:<14}{result['grpo'][phase]:>10.3f}{result['sgcd'][phase]:>10.3f}")
    print(
        f"SGCD/GRPO step time: {result['ratio_step']:.3f}x  (after rollouts only: "
        f"{result['ratio_post_rollout']:.3f}x; target <= 1.15x)"
    )
    u = result["update"]
    print(
        f"update pass, same {u['rows']} rows ({u['action_tokens']} action tokens): configured "
        f"{u['configured']['update_s']:.2f} s vs plain fp32 full-parameter {u['plain_fp32_full']['update_s']:.2f} s"
        f" -> per_token_speedup {result['per_token_speedup']:.2f}x (target >= 8; with the old-log-prob pass "
        f"{result['per_token_speedup_with_old']:.2f}x)"
    )
    print(
        f"peak RSS {result['peak_rss_gb']:.2f} GB (before the plain copy; "
        f"{result['peak_rss_after_rollout_gb']:.2f} GB once the rollouts were done)"
    )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0
