"""TRL's `rollout_func` backed by sgcd's agent loop and environments, with dynamic sampling.

TRL calls `rollout(prompts, trainer)` with each dataset prompt repeated `num_generations` times (G). Here a
prompt is a task id of the domain (`task_dataset` builds such a dataset). For every run of G equal prompts the
rollout runs G sibling episodes through `sgcd.rollout.run_groups` (multi-turn, env answers recorded as we go)
and returns, per row, what TRL needs:

    prompt_ids      the clean prompt (Trajectory.prompt_ids)
    completion_ids  the whole multi-turn trajectory (Trajectory.token_ids: assistant turns and env answers)
    logprobs        sampling log-probs on assistant tokens, 0.0 on env tokens
    env_mask        1 on sampled tokens, 0 on env tokens (TRL turns it into `tool_mask`, so env tokens get no loss)
    env_reward, env_success, sgcd_task_id, sgcd_mixed   extra fields TRL forwards to reward functions

Dynamic sampling (algorithm.md §1), *resample then mask* [ours; TRL has none]: a group that is not mixed (all
siblings succeed or all fail) is replaced by the group of a fresh task drawn from the domain's training split,
for up to `max_rounds` rounds in all (the refill size comes from `sgcd.core.sampling.refill_plan`). Groups still
not mixed after that stay in the batch with `env_mask` all 0, so TRL's loss neither learns from them nor counts
their tokens. The batch shape (rows, groups of G) never changes, which TRL's splitting and distributed gathers
need. A replaced row trains on its new task, but TRL's logged `prompt` stays the dataset's; `sgcd_task_id` is
the task actually played.

Rollouts sample with an `HFPolicy` over the trainer's live (unwrapped) model, so they see every update.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from sgcd.core.sampling import refill_plan
from sgcd.policy.base import SamplingParams
from sgcd.rollout import RolloutLimits, run_groups
from sgcd.trainer.loop.collect import TaskSampler, _is_mixed
from sgcd.types import TrajectoryGroup


def task_dataset(domain: Any, split: str = "train", limit: int | None = None) -> Any:
    """A `datasets.Dataset` with one column, `prompt` = task id, over `split` (first `limit` tasks)."""
    from datasets import Dataset

    tasks = domain.tasks(split)[:limit] if limit else domain.tasks(split)
    if not tasks:
        raise ValueError(f"domain {getattr(domain, 'name', domain)!r} split {split!r} has no tasks")
    return Dataset.from_dict({"prompt": [t.task_id for t in tasks]})


@dataclass
class RolloutBatch:
    """What the last rollout call produced, rows in the order TRL received them."""

    groups: list[TrajectoryGroup]  # one per run of G rows
    kept_B: torch.Tensor  # (B,) bool: the row's group is mixed (or dynamic sampling is off)
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def trajectories(self) -> list[Any]:
        return [t for g in self.groups for t in g.trajectories]


def policy_for(trainer: Any, seed: int = 0) -> Any:
    """An HFPolicy over the trainer's live model and tokenizer (built once per trainer, reused after)."""
    from sgcd.policy.hf import HFPolicy

    model = trainer.accelerator.unwrap_model(trainer.model)
    cached = getattr(trainer, "_sgcd_policy", None)
    if cached is not None and cached.model is model:
        return cached
    tokenizer = getattr(trainer.processing_class, "tokenizer", trainer.processing_class)
    policy = HFPolicy(model, tokenizer, seed=seed + trainer.accelerator.process_index)
    trainer._sgcd_policy = policy
    return policy


@dataclass
class SGCDRollout:
    """A TRL `rollout_func` over an sgcd domain. Call `task_dataset(domain)` for the matching train dataset.

    domain: an sgcd Domain; split: the split prompts and refills come from; sampling / limits: per-turn sampling
    and episode limits; dynamic_sampling / max_rounds: see the module docstring; seed: refill order and the
    sampler's generator; wrap_policy: optional policy -> policy hook (e.g. `GoldGuidedPolicy` in tests).
    """

    domain: Any
    split: str = "train"
    sampling: SamplingParams = field(
        default_factory=lambda: SamplingParams(temperature=1.0, max_new_tokens=256)
    )
    limits: RolloutLimits = field(default_factory=RolloutLimits)
    dynamic_sampling: bool = True
    max_rounds: int = 3
    seed: int = 0
    wrap_policy: Callable[[Any], Any] | None = None
    last: RolloutBatch | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if self.max_rounds < 1:
            raise ValueError(f"SGCDRollout: max_rounds must be >= 1, got {self.max_rounds}")
        self._tasks = {t.task_id: t for t in self.domain.tasks(self.split)}
        self._sampler = TaskSampler(list(self._tasks.values()), self.seed)

    def policy(self, trainer: Any) -> Any:
        base = policy_for(trainer, self.seed)
        if self.wrap_policy is None:
            return base
        wrapped = getattr(self, "_wrapped", None)
        if wrapped is None or wrapped[0] is not base:
            self._wrapped = (base, self.wrap_policy(base))
        return self._wrapped[1]

    def __call__(self, prompts: list[Any], trainer: Any) -> dict[str, list[Any]]:
        G = int(trainer.num_generations if trainer.model.training else trainer.num_generations_eval)
        tasks = self._tasks_of(prompts, G)
        policy = self.policy(trainer)
        groups = run_groups(policy, self.domain.make_env, tasks, G, self.sampling, self.limits)
        metrics: dict[str, float] = {"sampling/rounds": 1.0, "sampling/replaced": 0.0}
        if self.dynamic_sampling:
            groups, metrics = self._refill(policy, groups, G)
        mixed = [_is_mixed(g) or not self.dynamic_sampling for g in groups]
        kept_B = torch.tensor([m for m, g in zip(mixed, groups) for _ in g.trajectories], dtype=torch.bool)
        metrics["sampling/kept_frac"] = float(kept_B.float().mean()) if len(kept_B) else 0.0
        self.last = RolloutBatch(groups=groups, kept_B=kept_B, metrics=metrics)
        rows = [(t, keep) for g, keep in zip(groups, mixed) for t in g.trajectories]
        return {
            "prompt_ids": [list(t.prompt_ids) for t, _ in rows],
            "completion_ids": [list(t.token_ids) for t, _ in rows],
            "logprobs": [list(t.logprobs) for t, _ in rows],
            "env_mask": [list(t.action_mask) if keep else [0] * len(t.token_ids) for t, keep in rows],
            "env_reward": [float(t.reward) for t, _ in rows],
            "env_success": [bool(t.success) for t, _ in rows],
            "sgcd_task_id": [t.task_id for t, _ in rows],
            "sgcd_mixed": [bool(keep) for _, keep in rows],
        }

    def _tasks_of(self, prompts: list[Any], G: int) -> list[Any]:
        """One task per run of G equal prompts; a clear error when TRL's rows do not form whole groups."""
        if G < 1 or len(prompts) % G:
            raise ValueError(
                f"SGCDRollout: got {len(prompts)} prompts, not a multiple of num_generations={G}; make "
                "per_device_train_batch_size * steps_per_generation a multiple of num_generations"
            )
        tasks = []
        for s in range(0, len(prompts), G):
            run = prompts[s : s + G]
            if any(p != run[0] for p in run):
                raise ValueError(
                    f"SGCDRollout: rows {s}..{s + G - 1} are not one task repeated G={G} times ({run}); "
                    "each process must receive whole groups"
                )
            key = run[0] if isinstance(run[0], str) else str(run[0])
            if key not in self._tasks:
                raise ValueError(
                    f"SGCDRollout: prompt {key!r} is not a task id of {self.domain.name!r} split "
                    f"{self.split!r}; build the dataset with task_dataset(domain, {self.split!r})"
                )
            tasks.append(self._tasks[key])
        return tasks

    def _refill(self, policy: Any, groups: list[TrajectoryGroup], G: int):
        """Replace non-mixed groups by fresh tasks' groups, round by round (see the module docstring)."""
        target, rounds, sampled = len(groups), 1, len(groups)
        replaced = 0
        while True:
            slots = [k for k, g in enumerate(groups) if not _is_mixed(g)]
            decision, _ = refill_plan(
                target, target - len(slots), rounds, self.max_rounds, sampled_groups=sampled,
                max_per_round=4 * target,
            )  # fmt: skip
            if decision.stop or not slots:
                break
            fresh = run_groups(
                policy,
                self.domain.make_env,
                self._sampler.next(decision.n_more),
                G,
                self.sampling,
                self.limits,
            )
            rounds, sampled = rounds + 1, sampled + len(fresh)
            for g in (g for g in fresh if _is_mixed(g)):
                if not slots:
                    break
                groups[slots.pop(0)] = g
                replaced += 1
        metrics = {"sampling/rounds": float(rounds), "sampling/replaced": float(replaced),
                   "sampling/tasks_sampled": float(sampled)}  # fmt: skip
        return groups, metrics


def env_reward(
    prompts: list[Any], completions: list[Any], env_reward: list[float], **kwargs: Any
) -> list[float]:
    """The TRL reward function of an SGCDRollout: the environment verifier's reward of each row."""
    return [float(r) for r in env_reward]
