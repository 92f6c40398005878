"""Sampling a step's groups: a resumable task sampler and dynamic sampling with refill (algorithm.md §1).

`TaskSampler` (sgcd.rollout.sampling, shared with TRL) walks the training split in a seeded random order, epoch
after epoch; its position is two integers that checkpoints store, so a resumed run draws the same tasks.

`collect_groups` runs rounds of G sibling rollouts per task (all rows of a round batched in one rollout call),
keeps the mixed groups (`TrajectoryGroup.is_mixed`) and asks `refill_plan` how many more tasks to draw,
until it has `groups_per_step` mixed groups or `max_sampling_rounds` rounds ran. It never fails the step: it
returns what it found (possibly nothing; the trainer then skips the step and logs it). Groups beyond the target
are dropped (logged as `sampling/dropped_groups`). Departure [ours]: the first round draws `tasks_per_round`
tasks, later rounds what `refill_plan` asks for.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from sgcd.core.sampling import mixed_groups, refill_plan
from sgcd.rollout import RolloutLimits, run_groups
from sgcd.rollout.sampling import TaskSampler  # noqa: F401  (re-exported: the trainer's name)
from sgcd.types import TrajectoryGroup


@dataclass
class Collected:
    mixed: list[TrajectoryGroup]  # the groups the step trains on (<= groups_per_step)
    all_groups: list[TrajectoryGroup]  # every group sampled this step (for reward and tool-use health)
    metrics: dict[str, float] = field(default_factory=dict)


def collect_groups(
    policy: Any,
    domain: Any,
    sampler: TaskSampler,
    *,
    group_size: int,
    groups_per_step: int,
    tasks_per_round: int,
    max_rounds: int,
    params: Any,
    limits: RolloutLimits,
) -> Collected:
    """Dynamic sampling with refill; see the module docstring."""
    mixed: list[TrajectoryGroup] = []
    all_groups: list[TrajectoryGroup] = []
    n_tasks, rounds, plan_metrics = tasks_per_round, 0, {}
    while True:
        tasks = sampler.next(n_tasks)
        groups = run_groups(policy, domain.make_env, tasks, group_size, params, limits)
        rounds += 1
        all_groups += groups
        mixed += [g for g in groups if g.is_mixed]
        decision, plan_metrics = refill_plan(
            groups_per_step,
            len(mixed),
            rounds,
            max_rounds,
            sampled_groups=len(all_groups),
            max_per_round=max(4 * groups_per_step, tasks_per_round),
        )
        if decision.stop:
            break
        n_tasks = decision.n_more
    kept, dropped = mixed[:groups_per_step], max(len(mixed) - groups_per_step, 0)
    metrics = group_metrics(all_groups)
    metrics.update({k: v for k, v in plan_metrics.items()})
    metrics.update(
        {
            "sampling/rounds": float(rounds),
            "sampling/tasks_sampled": float(len(all_groups)),
            "sampling/groups_kept": float(len(kept)),
            "sampling/dropped_groups": float(dropped),
            "sampling/trajectories": float(sum(len(g.trajectories) for g in all_groups)),
        }
    )
    return Collected(mixed=kept, all_groups=all_groups, metrics=metrics)


def group_metrics(groups: list[TrajectoryGroup]) -> dict[str, float]:
    """Mixed fraction, pass rates and reward over all sampled groups (core.sampling.mixed_groups metrics)."""
    if not groups:
        return {"sampling/n_groups": 0.0, "sampling/mixed_frac": 0.0}
    success = [t.success for g in groups for t in g.trajectories]
    gids = [k for k, g in enumerate(groups) for _ in g.trajectories]
    _, metrics = mixed_groups(torch.tensor(success, dtype=torch.bool), torch.tensor(gids, dtype=torch.long))
    rewards = torch.tensor([t.reward for g in groups for t in g.trajectories], dtype=torch.float64)
    metrics.update(
        {
            "reward/mean": float(rewards.mean()),
            "reward/std": float(rewards.std(unbiased=False)),
            "reward/success_rate": float(torch.tensor(success, dtype=torch.float64).mean()),
            "reward/truncated_frac": sum(t.truncated for g in groups for t in g.trajectories) / len(success),
        }
    )
    return metrics
