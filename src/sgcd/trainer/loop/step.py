"""One training step as a composition of phases, each a function with plain inputs and outputs.

    collect (rollouts + dynamic sampling)  ->  references (summarize mixed groups)  ->  collate + advantages
    ->  old log-probs (pi_old, clean prompt)  ->  teacher log-probs (credit-reference prefix)  ->  credit
    ->  PPO epochs over minibatches with gradient accumulation (+ optional k3 KL to the frozen reference)

The algorithms share every line but one: `credit` picks the weights (grpo: w = 1; sgcd: core.credit) and
`update` picks the loss from core.losses.POLICY_LOSSES (ppo-clip for grpo and sgcd; sd-replace, sd-aux,
opd-advantage for the baselines). With credit.teacher=none the teacher scores the *clean* prompt through the
same code path, so delta = 0 exactly and SGCD reduces bit-for-bit to GRPO (tested end to end).

Departures from the textbook (each deliberate):
- Old log-probs are recomputed with `policy.score` under no_grad before the update instead of reusing the
  sampling log-probs: the batched KV-cache sampler and a full forward differ in the last float bits, and the PPO
  ratio must be exactly 1 at the first minibatch. This costs one forward per step (both algorithms pay it).
- The LR scheduler advances once per training step, not per optimizer step.
- Loss scaling under gradient accumulation: each micro-batch's loss is multiplied by its share of the
  minibatch's action tokens (token-mean) or trajectories (seq-mean modes), so the accumulated gradient equals
  the gradient of the minibatch loss.
"""

from __future__ import annotations

import math
import time
import warnings
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import torch

from sgcd.core.credit_stats import polarity_agreement, weight_stats_by_token_type
from sgcd.core.losses import POLICY_LOSSES, kl_k3
from sgcd.rollout.sampling import TaskSampler
from sgcd.trainer.config import RunConfig
from sgcd.trainer.loop.batch import Scores, TokenBatch, collate, score_batch, score_rows
from sgcd.trainer.loop.collect import Collected, collect_groups
from sgcd.trainer.loop.teacher import build_references, needs_references, teacher_prefix_rows, token_polarity

SHUFFLE_SEED_OFFSET = 0x5EED  # the shuffle control's generator: seed + this, apart from the minibatch order


@dataclass
class StepContext:
    """What a step needs; built once by the Trainer. The config is read here, never inside core functions."""

    cfg: RunConfig
    policy: Any  # HFPolicy being trained
    domain: Any
    sampler: TaskSampler
    optimizer: torch.optim.Optimizer
    scheduler: Any
    sampling_params: Any
    limits: Any
    generator: torch.Generator  # minibatch order
    summarizer: Any = None
    ref_policy: Any = None  # frozen initial model (kl_beta > 0 or credit.teacher=reference)
    # The shuffle control's own generator, so turning the control on changes the weights' positions and nothing
    # else (sharing `generator` would also reorder the minibatches). None: seeded from cfg.seed.
    shuffle_generator: torch.Generator | None = None

    def __post_init__(self) -> None:
        if self.shuffle_generator is None:
            self.shuffle_generator = torch.Generator().manual_seed(SHUFFLE_SEED_OFFSET + self.cfg.seed)


@dataclass
class StepOutput:
    metrics: dict[str, float]
    skipped: bool = False
    batch: TokenBatch | None = None
    references: list[Any] = field(default_factory=list)
    advantages_B: torch.Tensor | None = None
    weights_B_T: torch.Tensor | None = None
    student_B_T: torch.Tensor | None = None
    teacher_B_T: torch.Tensor | None = None
    collected: Collected | None = None


class Timer:
    def __init__(self) -> None:
        self.times: dict[str, float] = {}

    def __call__(self, name: str):
        timer = self

        class _Ctx:
            def __enter__(self):
                self.t0 = time.perf_counter()

            def __exit__(self, *exc):
                timer.times[f"time/{name}_s"] = (
                    timer.times.get(f"time/{name}_s", 0.0) + time.perf_counter() - self.t0
                )

        return _Ctx()


def collect(ctx: StepContext) -> Collected:
    s = ctx.cfg.sampling
    return collect_groups(
        ctx.policy,
        ctx.domain,
        ctx.sampler,
        group_size=s.group_size,
        groups_per_step=s.groups_per_step,
        tasks_per_round=s.tasks_per_round,
        max_rounds=s.max_sampling_rounds,
        params=ctx.sampling_params,
        limits=ctx.limits,
    )


def run_step(ctx: StepContext) -> StepOutput:
    """One full training step: sample, then train on the mixed groups found."""
    timer = Timer()
    with timer("rollout"):
        collected = collect(ctx)
    out = train_on(ctx, collected, timer)
    return out


def train_on(ctx: StepContext, collected: Collected, timer: Timer | None = None) -> StepOutput:
    """Everything after sampling. Reused by `sgcd bench step` to time two algorithms on the same rollouts."""
    timer = timer or Timer()
    cfg, t0 = ctx.cfg, time.perf_counter()
    metrics = dict(collected.metrics)
    metrics.update(tool_metrics(collected.all_groups))
    if not collected.mixed:  # nothing to learn from: skip, log, never fail
        metrics.update({"sampling/skipped": 1.0, **timer.times, "policy/lr": ctx.scheduler.get_last_lr()[0]})
        with warnings.catch_warnings():  # the schedule follows training steps, skipped ones included
            warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler\.step\(\)`")
            ctx.scheduler.step()
        return StepOutput(metrics=metrics, skipped=True, collected=collected)
    metrics["sampling/skipped"] = 0.0
    with timer("reference"):
        refs, ref_metrics = build_references(ctx, collected.mixed)
    metrics.update(ref_metrics)
    batch = collate(collected.mixed)
    alg = cfg.algorithm_spec
    adv_B, adv_metrics = alg.advantages(batch.rewards_B, batch.group_index_B)
    metrics.update(adv_metrics)
    micro = cfg.algorithm.microbatch_size
    ctx.policy.clear_caches()  # the frozen trunk's hidden states of the last step's rows
    with timer(
        "old_logprobs"
    ):  # the update's own numerical path (no shared prefix), so the ratio starts at 1
        old = score_batch(ctx.policy, batch.prefixes, batch.continuations, batch.T, micro, with_entropy=True,
                          select=batch.select, share_prefix=False, pad_to=batch.row_len)  # fmt: skip
    teacher, student = None, old
    if alg.needs_teacher:
        with timer("teacher"):
            student, teacher = score_teacher(ctx, batch, refs, old)
            metrics["credit/noise_floor_std"] = noise_floor(ctx, batch, old)
    ref_lp = None
    if cfg.algorithm.kl_beta > 0:
        with timer("ref_model"):
            ref_lp = score_batch(
                ctx.ref_policy, batch.prefixes, batch.continuations, batch.T, micro, select=batch.select
            ).logprobs_B_T
    with timer("credit"):
        w_B_T, ahat_B_T, credit_metrics = credit(ctx, batch, adv_B, student, teacher, refs)
    metrics.update(credit_metrics)
    with timer("update"):
        metrics.update(update(ctx, batch, old.logprobs_B_T, adv_B, ahat_B_T, teacher, ref_lp))
    ctx.policy.clear_caches()
    ent = old.entropy_B_T
    if ent is not None:
        metrics["policy/entropy"] = (
            float(ent[batch.action_mask_B_T].mean()) if batch.action_mask_B_T.any() else 0.0
        )
    metrics["policy/lr"] = ctx.scheduler.get_last_lr()[0]
    ctx.scheduler.step()
    metrics["time/train_s"] = time.perf_counter() - t0
    metrics.update(timer.times)
    return StepOutput(
        metrics=metrics,
        batch=batch,
        references=refs,
        advantages_B=adv_B,
        weights_B_T=w_B_T,
        student_B_T=student.logprobs_B_T,
        teacher_B_T=None if teacher is None else teacher.logprobs_B_T,
        collected=collected,
    )


def score_teacher(ctx: StepContext, batch: TokenBatch, refs: list[Any], old: Scores) -> tuple[Scores, Scores]:
    """(student, teacher) log-probs of the identical trajectory tokens (no grad): the teacher after the teacher
    prefix, the student after the clean prompt, both scored by the same model.

    With no reference (credit.teacher=none) the teacher's prompt is the student's, so its scores *are* the old
    log-probs: no forward, and delta = 0 exactly (SGCD = GRPO bit for bit). With credit.teacher=reference the
    frozen reference scores both sides (one extra forward), so delta carries the credit reference only, not the
    policy's drift from the reference; otherwise the student is pi_old, whose log-probs the step already has."""
    cfg = ctx.cfg
    if not needs_references(cfg):
        return old, Scores(
            old.logprobs_B_T.clone(), None if old.entropy_B_T is None else old.entropy_B_T.clone()
        )
    use_ref = cfg.credit.teacher == "reference" and ctx.ref_policy is not None
    model = ctx.ref_policy if use_ref else ctx.policy
    micro = cfg.algorithm.microbatch_size
    prefixes = teacher_prefix_rows(ctx, batch, refs)
    teacher = score_batch(model, prefixes, batch.continuations, batch.T, micro,
                          with_entropy=cfg.credit.entropy_gate, select=batch.select)  # fmt: skip
    student = old
    if use_ref:
        student = score_batch(model, batch.prefixes, batch.continuations, batch.T, micro, select=batch.select)
    return student, teacher


NOISE_ROWS = 2


def noise_floor(ctx: StepContext, batch: TokenBatch, old: Scores) -> float:
    """Std over action tokens of (teacher path on the *clean* prompt - student) on the first NOISE_ROWS rows.

    Same weights, same prompt: any difference is numerical (autocast, the shared-prefix cache, batch shapes).
    Logged as `credit/noise_floor_std` beside `credit/w_std`'s source, the teacher-student divergence: a credit
    signal no larger than this floor is noise."""
    rows = list(range(min(NOISE_ROWS, batch.B)))
    clean = score_batch(
        ctx.policy,
        [batch.prefixes[i] for i in rows],
        [batch.continuations[i] for i in rows],
        batch.T,
        ctx.cfg.algorithm.microbatch_size,
        select=[batch.select[i] for i in rows],
    ).logprobs_B_T
    mask = batch.action_mask_B_T[rows]
    diff = (clean - old.logprobs_B_T[rows])[mask]
    return float(diff.std()) if diff.numel() > 1 else 0.0


def credit(
    ctx: StepContext,
    batch: TokenBatch,
    adv_B: torch.Tensor,
    student_scores: Scores,
    teacher: Scores | None,
    refs: list[Any],
) -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
    """Credit weights (the one line where grpo and sgcd differ) and the token advantages Ahat = A * w.

    student_scores: the clean-prompt log-probs of the model that scored the teacher (pi_old, or the reference)."""
    mask = batch.action_mask_B_T
    student = student_scores.logprobs_B_T
    out = ctx.cfg.algorithm_spec.token_advantages(
        adv_B, mask, student, None if teacher is None else teacher.logprobs_B_T,
        turn_ids_B_T=batch.turn_ids_B_T, teacher_entropy_B_T=None if teacher is None else teacher.entropy_B_T,
        generator=ctx.shuffle_generator,
    )  # fmt: skip
    w_B_T, ahat_B_T, metrics = out.weights_B_T, out.token_advantages_B_T, dict(out.metrics)
    _, type_metrics = weight_stats_by_token_type(w_B_T, mask, batch.token_types_B_T)
    metrics.update({k: v for k, v in type_metrics.items() if not k.endswith("_observation_mean")})
    if refs and any(r is not None for r in refs):
        pol_B_T = token_polarity(batch, refs)
        polarity_B_T = pol_B_T * torch.sign(adv_B).unsqueeze(-1)
        _, agree = polarity_agreement(w_B_T, polarity_B_T, mask & (adv_B != 0).unsqueeze(-1))
        metrics.update(agree)
        if teacher is not None:
            metrics.update(ref_sensitivity(teacher.logprobs_B_T - student, pol_B_T, mask))
    if teacher is not None:
        delta = (teacher.logprobs_B_T - student)[mask]
        metrics["credit/teacher_minus_student_mean"] = float(delta.mean()) if delta.numel() else 0.0
        if teacher.entropy_B_T is not None:
            metrics["credit/teacher_entropy"] = float(teacher.entropy_B_T[mask].mean()) if mask.any() else 0.0
    return w_B_T, ahat_B_T, metrics


def ref_sensitivity(
    delta_B_T: torch.Tensor, pol_B_T: torch.Tensor, mask_B_T: torch.Tensor
) -> dict[str, float]:
    """Does the teacher read the reference? Mean of polarity * delta over the action tokens of steps the
    reference marks helpful (+1) or harmful (-1), delta = teacher - student log-prob: positive = the teacher
    raises what the reference backs and lowers what it blames. Uncentred: a teacher that only primes on the
    tool names a reference mentions raises helpful and harmful calls alike, and the two cancel."""
    marked = mask_B_T & (pol_B_T != 0)
    n = int(marked.sum())
    value = float((pol_B_T * delta_B_T)[marked].mean()) if n else 0.0
    return {"credit/ref_sensitivity": value, "credit/ref_sensitivity_tokens": float(n)}


def _loss_kwargs(ctx: StepContext, rows: torch.Tensor, adv_B, teacher: Scores | None) -> dict[str, Any]:
    a = ctx.cfg.algorithm
    name = ctx.cfg.algorithm_spec.loss
    common = {"agg": a.loss_agg, "norm_len": float(ctx.cfg.sampling.max_tokens)}
    ppo = {"clip_low": a.clip_low, "clip_high": a.clip_high, "dual_clip": a.dual_clip or None}
    if name == "ppo-clip":
        return {**common, **ppo}
    t_lp = teacher.logprobs_B_T.index_select(0, rows)
    if name == "sd-replace":
        return {**common, "teacher_logprobs": t_lp}
    if name == "sd-aux":
        return {**common, **ppo, "teacher_logprobs": t_lp, "beta_sd": a.sd_beta}
    return {
        **common,
        **ppo,
        "teacher_logprobs": t_lp,
        "advantages": adv_B.index_select(0, rows),
        "c": a.opd_c,
    }


def _share(mask_b_T: torch.Tensor, mask_mb_T: torch.Tensor, agg: str) -> float:
    """The micro-batch's share of the minibatch loss under this aggregation mode."""
    if agg == "token-mean":
        return float(mask_b_T.sum()) / max(float(mask_mb_T.sum()), 1.0)
    if agg == "seq-mean-token-mean":
        return float(mask_b_T.any(-1).sum()) / max(float(mask_mb_T.any(-1).sum()), 1.0)
    return mask_b_T.shape[0] / max(mask_mb_T.shape[0], 1)


def update(
    ctx: StepContext,
    batch: TokenBatch,
    old_B_T: torch.Tensor,
    adv_B: torch.Tensor,
    ahat_B_T: torch.Tensor,
    teacher: Scores | None,
    ref_B_T: torch.Tensor | None,
) -> dict[str, float]:
    """PPO epochs over shuffled minibatches, gradient accumulation over micro-batches, AdamW with clipping."""
    a, o = ctx.cfg.algorithm, ctx.cfg.optim
    loss_fn = POLICY_LOSSES[ctx.cfg.algorithm_spec.loss]
    params = [p for p in ctx.policy.model.parameters() if p.requires_grad]
    dev = ctx.policy.device
    sums: dict[str, float] = defaultdict(float)
    n_opt, n_micro = 0, 0
    for _ in range(a.ppo_epochs):
        perm = torch.randperm(batch.B, generator=ctx.generator)
        for s in range(0, batch.B, a.minibatch_size):
            mb = perm[s : s + a.minibatch_size]
            mask_mb = batch.action_mask_B_T.index_select(0, mb)
            ctx.optimizer.zero_grad(set_to_none=True)
            for u in range(0, len(mb), a.microbatch_size):
                rows = mb[u : u + a.microbatch_size]
                sc = score_rows(
                    ctx.policy,
                    [batch.prefixes[i] for i in rows.tolist()],
                    [batch.continuations[i] for i in rows.tolist()],
                    batch.T,
                    grad=True,
                    select=[batch.select[i] for i in rows.tolist()],
                    share_prefix=False,
                    pad_to=batch.row_len,
                )
                mask_b = batch.action_mask_B_T.index_select(0, rows).to(dev)
                kwargs = {
                    k: (v.to(dev) if torch.is_tensor(v) else v)
                    for k, v in _loss_kwargs(ctx, rows, adv_B, teacher).items()
                }
                loss, m = loss_fn(
                    sc.logprobs_B_T,
                    old_B_T.index_select(0, rows).to(dev),
                    ahat_B_T.index_select(0, rows).to(dev),
                    mask_b,
                    **kwargs,
                )
                if ref_B_T is not None:
                    kl, km = kl_k3(sc.logprobs_B_T, ref_B_T.index_select(0, rows).to(dev), mask_b, a.loss_agg,
                                   float(ctx.cfg.sampling.max_tokens))  # the PPO term's norm_len  # fmt: skip
                    loss = loss + a.kl_beta * kl
                    m.update(km)
                (loss * _share(mask_b.cpu(), mask_mb, a.loss_agg)).backward()
                m["loss/total"] = float(loss.detach())
                for k, v in m.items():
                    sums[k] += float(v)
                n_micro += 1
            clip = o.grad_clip if o.grad_clip > 0 else math.inf
            grad_norm = torch.nn.utils.clip_grad_norm_(params, clip)
            sums["policy/grad_norm"] += float(grad_norm)
            ctx.optimizer.step()
            n_opt += 1
    out = {k: v / max(n_micro, 1) for k, v in sums.items() if k != "policy/grad_norm"}
    out["policy/grad_norm"] = sums["policy/grad_norm"] / max(n_opt, 1)
    out["policy/optimizer_steps"] = float(n_opt)
    out.setdefault("loss/total", 0.0)
    out.setdefault("loss/policy", out.get("loss/sd_div", 0.0))
    return out


def tool_metrics(groups: list[Any]) -> dict[str, float]:
    """Tool-use health of every sampled episode (sgcd.eval.episode_health, under tools/)."""
    from sgcd.eval import episode_health

    episodes = [t.episode for g in groups for t in g.trajectories]
    health = episode_health(episodes) if episodes else {}
    return {
        (k if k.startswith("tools/") else f"tools/{k}"): float(v)
        for k, v in health.items()
        if isinstance(v, (int, float))
    }
