"""Paired statistics for two evaluations of the same tasks (before vs after training, arm A vs arm B).

- `paired_delta`: the mean per-task difference (after - before), a paired bootstrap 95% CI (tasks resampled with
  replacement, the same draw for both sides, seeded), and McNemar's exact p-value for binary outcomes.
- McNemar's exact test: of the discordant tasks, b went 1 -> 0 and c went 0 -> 1; under no change each discordant
  task is equally likely to go either way, so min(b, c) ~ Binomial(b + c, 1/2), two-sided p = min(1, 2 P[X <=
  min(b, c)]). With per-task success rates over several trials (not 0/1) it uses each task's rounded outcome.
- `horizon_bin`: the bins the docs report success in (1, 2-4, 5-8, 9+ assistant turns of the gold solution).

Pure functions of plain numbers: no torch, no config.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping

HORIZON_BINS = ((1, 1, "1"), (2, 4, "2-4"), (5, 8, "5-8"), (9, 10**9, "9+"))


def horizon_bin(turns: int) -> str:
    for lo, hi, name in HORIZON_BINS:
        if lo <= turns <= hi:
            return name
    return "0"


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts b (1 -> 0) and c (0 -> 1)."""
    n = b + c
    if n == 0:
        return 1.0
    k = min(b, c)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2 * tail)


def bootstrap_ci(
    diffs: list[float], n_boot: int = 10_000, level: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean of `diffs` (paired differences, one per task)."""
    if not diffs:
        return (0.0, 0.0)
    rng = random.Random(seed)
    n = len(diffs)
    means = sorted(sum(diffs[rng.randrange(n)] for _ in range(n)) / n for _ in range(n_boot))
    lo = means[int(math.floor((1 - level) / 2 * (n_boot - 1)))]
    hi = means[int(math.ceil((1 + level) / 2 * (n_boot - 1)))]
    return (lo, hi)


def paired_delta(
    before: Mapping[str, float], after: Mapping[str, float], n_boot: int = 10_000, seed: int = 0
) -> dict[str, float | list[float]]:
    """after - before on the tasks both evaluated: delta, 95% CI, McNemar p, and the counts behind them."""
    tasks = sorted(set(before) & set(after))
    diffs = [after[t] - before[t] for t in tasks]
    b = sum(1 for t in tasks if round(before[t]) == 1 and round(after[t]) == 0)
    c = sum(1 for t in tasks if round(before[t]) == 0 and round(after[t]) == 1)
    lo, hi = bootstrap_ci(diffs, n_boot=n_boot, seed=seed)
    return {
        "n": float(len(tasks)),
        "before": sum(before[t] for t in tasks) / len(tasks) if tasks else 0.0,
        "after": sum(after[t] for t in tasks) / len(tasks) if tasks else 0.0,
        "delta": sum(diffs) / len(diffs) if diffs else 0.0,
        "ci": [lo, hi],
        "p": mcnemar_exact(b, c),
        "lost": float(b),
        "gained": float(c),
    }
