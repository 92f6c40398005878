"""The task sampler shared by the reference trainer and the TRL integration (dynamic sampling's refill order).

`TaskSampler` walks a task list in a seeded random order, epoch after epoch; its position is two integers
(`epoch`, `pos`) that checkpoints store, so a resumed run draws exactly the tasks it would have drawn.
"""

from __future__ import annotations

import random
from typing import Any


class TaskSampler:
    """Seeded, epoch-based, resumable order over a task list."""

    def __init__(self, tasks: list[Any], seed: int) -> None:
        if not tasks:
            raise ValueError("the training split has no tasks")
        self.tasks = list(tasks)
        self.seed = seed
        self.epoch = 0
        self.pos = 0
        self._order = self._perm(0)

    def _perm(self, epoch: int) -> list[int]:
        order = list(range(len(self.tasks)))
        random.Random(self.seed * 1_000_003 + epoch).shuffle(order)
        return order

    def next(self, n: int) -> list[Any]:
        out = []
        for _ in range(n):
            if self.pos >= len(self._order):
                self.epoch += 1
                self.pos = 0
                self._order = self._perm(self.epoch)
            out.append(self.tasks[self._order[self.pos]])
            self.pos += 1
        return out

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "pos": self.pos}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch = int(state.get("epoch", 0))
        self.pos = int(state.get("pos", 0))
        self._order = self._perm(self.epoch)
