"""AppWorld's two metrics, computed from per-task successes (Trivedi et al., 2024).

TGC (task goal completion): the share of tasks whose ground-truth tests all pass.
SGC (scenario goal completion): the share of scenarios all of whose tasks pass; a task's scenario is its id's
prefix before `_` (`82e2fac_1` -> `82e2fac`). Both are percentages in [0, 100] like the paper's tables
(AppWorld rounds to one decimal; we do not round).

With several trials per task, each trial is scored as one run and the runs are averaged (`tgc_sgc_trials`);
AppWorld itself reports a single run.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any


def scenario_of(task_id: str) -> str:
    """`82e2fac_1` -> `82e2fac` (a `:tag` suffix is ignored, as AppWorld does)."""
    base = task_id.split(":")[0]
    if base.count("_") != 1:
        raise ValueError(f"AppWorld task id {task_id!r} must look like '<scenario>_<n>'")
    return base.split("_")[0]


def tgc_sgc(task_ids: Sequence[str], successes: Sequence[bool]) -> dict[str, float]:
    """TGC and SGC (percent) of one run: each task id once, with whether it fully passed."""
    if len(task_ids) != len(successes):
        raise ValueError(
            f"task_ids ({len(task_ids)}) and successes ({len(successes)}) must have equal length"
        )
    if len(set(task_ids)) != len(task_ids):
        raise ValueError("each task id must appear once per run; use tgc_sgc_trials for repeated trials")
    if not task_ids:
        return {"tgc": 0.0, "sgc": 0.0, "tasks": 0, "scenarios": 0}
    by_scenario: dict[str, list[bool]] = defaultdict(list)
    for task_id, ok in zip(task_ids, successes):
        by_scenario[scenario_of(task_id)].append(bool(ok))
    tgc = 100.0 * sum(bool(s) for s in successes) / len(successes)
    sgc = 100.0 * sum(all(v) for v in by_scenario.values()) / len(by_scenario)
    return {"tgc": tgc, "sgc": sgc, "tasks": len(task_ids), "scenarios": len(by_scenario)}


def tgc_sgc_trials(task_ids: Sequence[str], successes: Sequence[bool]) -> dict[str, Any]:
    """Mean TGC/SGC over trials: the k-th occurrence of each task id belongs to trial k."""
    seen: dict[str, int] = defaultdict(int)
    runs: dict[int, tuple[list[str], list[bool]]] = defaultdict(lambda: ([], []))
    for task_id, ok in zip(task_ids, successes, strict=True):
        trial = seen[task_id]
        seen[task_id] += 1
        runs[trial][0].append(task_id)
        runs[trial][1].append(bool(ok))
    per_trial = [tgc_sgc(ids, oks) for _, (ids, oks) in sorted(runs.items())]
    if not per_trial:
        return {"tgc": 0.0, "sgc": 0.0, "trials": 0}
    return {
        "tgc": sum(r["tgc"] for r in per_trial) / len(per_trial),
        "sgc": sum(r["sgc"] for r in per_trial) / len(per_trial),
        "trials": len(per_trial),
    }
