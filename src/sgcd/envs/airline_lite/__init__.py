"""airline-lite: the built-in offline tool-use domain (a tau-bench-airline-like world, generated from a seed).

`make_domain(seed=0, **options)` -> AirlineLiteDomain with splits train / dev / test. Each task is one generated
world plus one natural-language request (given in full up front; no user simulator). The verifier rebuilds
the task's world, and the reward is 1 exactly when the agent's final database hash equals the gold solution's
(gold replayed on a fresh copy of the same world) and the final answer holds the required information
(amounts, ids, the status word, or the rule number of a refusal).

Splits: task i of split s lives in a world seeded by sha256("airline-lite", base, s, i); base is the domain seed
for train and a fixed 0 for dev and test, so the test set is the same for every training seed and never
shares a generated instance with train. Families cycle with the index (task i is family i mod 10); the
options `families`, `min_horizon` and `max_horizon` filter tasks and the split is filled up to its size from
further indices, so task ids stay stable under a filter.

Horizon = gold assistant turns (tool-call turns + the final answer); `n_calls` = gold tool calls.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from typing import Any

from sgcd.envs.airline_lite.catalog import FAMILIES
from sgcd.envs.airline_lite.db import DB, clone, db_hash, generate_db, seed_of
from sgcd.envs.airline_lite.families import Gold
from sgcd.envs.airline_lite.policy import POLICY_TEXT
from sgcd.envs.airline_lite.tools import WRITE_TOOLS, make_tools, schemas
from sgcd.envs.base import Task
from sgcd.envs.toolcalls import Limits, ToolEnv
from sgcd.types import Message, Observation

NAME = "airline-lite"
FAMILY_ORDER = tuple(FAMILIES)
SPLIT_SIZES = {"train": 5000, "dev": 200, "test": 300}


def build_world(family: str, seed: int) -> tuple[DB, str, dict[str, Any]]:
    """The task's starting database, its instruction and the user's intent (deterministic in family and seed)."""
    db = generate_db(seed)
    instruction, intent = FAMILIES[family].setup(random.Random(seed_of(seed, "setup")), db)
    return db, instruction, intent


def solve(family: str, db: DB, intent: dict[str, Any]) -> Gold:
    """Run the gold solver on a copy of `db`; the returned Gold holds turns, final db, required info, rule."""
    gold = Gold(clone(db))
    FAMILIES[family].solve(gold, intent)
    return gold


def _norm(text: str) -> str:
    return re.sub(r"[$,]", "", text.lower().replace("_", " "))


def answer_has(answer: str, required: str) -> bool:
    """`required` occurs in `answer` as a whole token (case, `_` vs space, `$` and thousands commas ignored)."""
    pattern = r"(?<![a-z0-9.])" + re.escape(_norm(required)) + r"(?![a-z0-9])"
    return re.search(pattern, _norm(answer)) is not None


def make_task(split: str, index: int, base_seed: int) -> Task:
    family = FAMILY_ORDER[index % len(FAMILY_ORDER)]
    seed = seed_of(NAME, base_seed, split, index)
    db, instruction, intent = build_world(family, seed)
    gold = solve(family, db, intent)
    n_calls = len(gold.turns) - 1
    data = {
        "seed": seed,
        "intent": intent,
        "gold": list(gold.turns),
        "gold_hash": db_hash(gold.db),
        "start_hash": db_hash(db),
        "required": list(gold.required),
        "horizon": len(gold.turns),
        "n_calls": n_calls,
        "writes": gold.writes,
        "rule": gold.rule,
        "outcome": "refuse" if gold.rule and gold.writes == 0 else ("write" if gold.writes else "read"),
    }
    return Task(f"{NAME}/{split}/{index:05d}", split, family, instruction, data)


@dataclass
class AirlineLiteDomain:
    """The airline-lite benchmark. Options: see `make_domain`."""

    seed: int = 0
    sizes: dict[str, int] = field(default_factory=lambda: dict(SPLIT_SIZES))
    families: tuple[str, ...] = FAMILY_ORDER
    min_horizon: int = 1
    max_horizon: int = 99
    limits: Limits = field(default_factory=lambda: Limits(max_turns=20, max_calls=30, max_errors=8))
    name: str = NAME
    _cache: dict[str, list[Task]] = field(default_factory=dict, repr=False)

    def splits(self) -> list[str]:
        return list(self.sizes)

    def _keep(self, task: Task) -> bool:
        return self.min_horizon <= task.data["horizon"] <= self.max_horizon

    def tasks(self, split: str) -> list[Task]:
        if split not in self.sizes:
            raise ValueError(f"airline-lite has no split {split!r}; choose one of {self.splits()}")
        if split not in self._cache:
            base = self.seed if split == "train" else 0
            out: list[Task] = []
            index, size = 0, self.sizes[split]
            while len(out) < size and index < 50 * size + 100:
                if FAMILY_ORDER[index % len(FAMILY_ORDER)] in self.families:
                    task = make_task(split, index, base)
                    if self._keep(task):
                        out.append(task)
                index += 1
                if index >= 2000 and not out:
                    break  # nothing matches: do not scan 50x the split for nothing
            if size > 0 and not out:
                raise ValueError(
                    f"airline-lite: no task of families {list(self.families)} has a horizon in "
                    f"[{self.min_horizon}, {self.max_horizon}] ({index} candidates tried)"
                )
            self._cache[split] = out
        return list(self._cache[split])

    def make_env(self, task: Task) -> ToolEnv:
        db, _, _ = build_world(task.family, task.data["seed"])
        opening = Observation(
            messages=(Message("system", POLICY_TEXT), Message("user", task.instruction)), tools=schemas()
        )

        def verify(answer: str) -> tuple[float, dict[str, Any]]:
            final_hash = db_hash(db)
            found = {req: answer_has(answer, req) for req in task.data["required"]}
            db_match = final_hash == task.data["gold_hash"]
            unchanged = final_hash == task.data["start_hash"]
            breakdown = {"db_match": db_match, "db_unchanged": unchanged, "required": found}
            breakdown["answer_ok"] = all(found.values())
            return float(db_match and breakdown["answer_ok"]), breakdown

        return ToolEnv(task=task, opening=opening, tools=make_tools(db), verify=verify, limits=self.limits)

    # domain-agnostic hooks used by scripted policies and metrics
    def gold_turns(self, task: Task) -> list[str]:
        return list(task.data["gold"])

    def is_write_tool(self, name: str) -> bool:
        return name in WRITE_TOOLS

    def policy_text(self) -> str:
        return POLICY_TEXT


def _as_tuple(value: Any) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else list(value)
    return tuple(str(v).strip() for v in items if str(v).strip())


def make_domain(seed: int = 0, **options: Any) -> AirlineLiteDomain:
    """Build airline-lite. Options: families (list or comma string), min_horizon, max_horizon,
    train_size / dev_size / test_size, max_turns / max_calls / max_errors (episode limits)."""
    sizes = dict(SPLIT_SIZES)
    limit_opts = {"max_turns": 20, "max_calls": 30, "max_errors": 8}
    kwargs: dict[str, Any] = {}
    for key, value in options.items():
        if value is None:
            continue
        if key.endswith("_size") and key[: -len("_size")] in sizes:
            sizes[key[: -len("_size")]] = int(value)
        elif key in limit_opts:
            limit_opts[key] = int(value)
        elif key == "families":
            fams = _as_tuple(value)
            unknown = [f for f in fams if f not in FAMILIES]
            if unknown:
                raise ValueError(
                    f"airline-lite: unknown families {unknown}; choose from {list(FAMILY_ORDER)}"
                )
            kwargs["families"] = fams
        elif key in ("min_horizon", "max_horizon"):
            kwargs[key] = int(value)
        else:
            raise ValueError(
                f"airline-lite: unknown option {key!r}; options: families, min_horizon, max_horizon, "
                "train_size, dev_size, test_size, max_turns, max_calls, max_errors"
            )
    return AirlineLiteDomain(seed=int(seed), sizes=sizes, limits=Limits(**limit_opts), **kwargs)


__all__ = ["AirlineLiteDomain", "FAMILY_ORDER", "NAME", "answer_has", "make_domain", "make_task"]
