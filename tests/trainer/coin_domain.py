"""A test double domain for trainer tests: one-turn tasks with a short prompt, success = even reply length.

The tiny test model's replies are noise, so on a real domain it never succeeds and every group is all-fail
(the step is skipped). Here about half of the sampled replies succeed, so groups are mixed, advantages are
non-zero and the update really runs, in a fraction of a second per step. Registered as `test-coin`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sgcd.envs.base import Task, register_domain
from sgcd.types import CallRecord, Message, Observation, Step, StepResult

NAME = "test-coin"


@dataclass
class CoinEnv:
    task: Task
    turns: int = 0

    def reset(self) -> Observation:
        return Observation(messages=(Message("system", "Reply."), Message("user", self.task.instruction)))

    def step(self, assistant_text: str) -> StepResult:
        self.turns += 1
        reward = 1.0 if len(assistant_text) % 2 == 0 else 0.0
        # a fake call record on odd task numbers, so tool-use health has something to count
        calls = (
            (CallRecord("lookup", {}, "ok", is_write=self.turns % 2 == 1),)
            if "1" in self.task.task_id
            else ()
        )
        step = Step(turn=self.turns - 1, text=assistant_text, calls=calls, final=True)
        return StepResult(
            messages=(), done=True, reward=reward, info={"reason": "final_answer", "step": step}
        )


@dataclass
class CoinDomain:
    seed: int = 0
    name: str = NAME
    sizes: dict[str, int] = field(default_factory=lambda: {"train": 16, "test": 4})

    def splits(self) -> list[str]:
        return list(self.sizes)

    def tasks(self, split: str) -> list[Task]:
        return [
            Task(f"{NAME}/{split}/{i}", split, "coin", f"Say something {i}.")
            for i in range(self.sizes[split])
        ]

    def make_env(self, task: Task) -> CoinEnv:
        return CoinEnv(task)


def make_domain(seed: int = 0, **options: Any) -> CoinDomain:
    return CoinDomain(seed=seed)


def register() -> None:
    register_domain(NAME, make_domain)


# Overrides that make a run on the coin domain fast: tiny model, 2 siblings x 2 tasks, short replies.
FAST = [
    "model.name=tiny",
    "model.sft_warmstart=off",
    "model.autocast=none",
    "model.train_layers=0",
    f"env.name={NAME}",
    "env.eval_split=test",
    "sampling.group_size=4",
    "sampling.groups_per_step=2",
    "sampling.tasks_per_round=2",
    "sampling.max_sampling_rounds=2",
    "sampling.max_new_tokens=12",
    "sampling.max_turns=1",
    "sampling.max_tokens=32",
    "algorithm.minibatch_size=4",
    "algorithm.microbatch_size=2",
    "optim.lr=1e-3",
    "logging.progress=false",
    "eval.limit=2",
    "eval.every=2",
    "checkpoint.every=1",
    "logging.sample_groups=2",
]
