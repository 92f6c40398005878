"""Pure metrics over finished episodes: tool-use health and pass^k. No I/O, no model, no domain imports.

`episode_health` is what the trainer logs under tools/ and what `sgcd eval` prints: it watches for the collapse
the paper reports for direct self-distillation (state-changing calls falling to zero, answer-only replies).
`pass_hat_k` is tau-bench's pass^k: the chance that k i.i.d. attempts at a task all succeed, estimated without
bias from n >= k attempts with c successes as C(c, k) / C(n, k), averaged over tasks.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from math import comb
from typing import Any

from sgcd.types import Episode


def episode_counts(ep: Episode) -> dict[str, int]:
    """Per-episode counts from the Step records (format errors from env counters when the env kept them)."""
    calls = [c for s in ep.steps for c in s.calls]
    counts = ep.info.get("counts", {}) if isinstance(ep.info, dict) else {}
    fallback_format = sum(1 for s in ep.steps if s.error and not s.calls and not s.final)
    return {
        "turns": len(ep.steps),
        "calls": len(calls),
        "tool_errors": sum(1 for c in calls if c.error),
        "format_errors": int(counts.get("format_errors", fallback_format)),
        "writes": sum(1 for c in calls if c.is_write and not c.error),
        "final": int(any(s.final for s in ep.steps)),
    }


def episode_health(episodes: Sequence[Episode]) -> dict[str, float]:
    """Tool-use health of a batch of episodes (all floats; zeros for an empty batch).

    calls_per_episode   mean tool calls per episode
    write_share         share of episodes with at least one successful state-changing call
    writes_per_episode  mean successful state-changing calls per episode
    tool_error_rate     failed calls / all calls
    format_error_rate   malformed turns (markup, JSON, over-long) / all turns
    answer_only_share   share of episodes with no tool call at all
    final_answer_share  share of episodes that ended with an answer (not a limit)
    turns_mean          mean assistant turns per episode
    """
    keys = ("calls_per_episode", "write_share", "tool_error_rate", "format_error_rate", "answer_only_share")
    if not episodes:
        return dict.fromkeys((*keys, "writes_per_episode", "final_answer_share", "turns_mean"), 0.0)
    rows = [episode_counts(ep) for ep in episodes]
    n = len(rows)
    calls = sum(r["calls"] for r in rows)
    turns = sum(r["turns"] for r in rows)
    return {
        "calls_per_episode": calls / n,
        "write_share": sum(1 for r in rows if r["writes"] > 0) / n,
        "writes_per_episode": sum(r["writes"] for r in rows) / n,
        "tool_error_rate": sum(r["tool_errors"] for r in rows) / calls if calls else 0.0,
        "format_error_rate": sum(r["format_errors"] for r in rows) / turns if turns else 0.0,
        "answer_only_share": sum(1 for r in rows if r["calls"] == 0) / n,
        "final_answer_share": sum(r["final"] for r in rows) / n,
        "turns_mean": turns / n,
    }


def pass_hat_k(successes_per_task: Iterable[Sequence[bool]], k: int) -> float:
    """Mean over tasks of C(c, k) / C(n, k) (tau-bench pass^k); tasks with fewer than k attempts are an error."""
    values = []
    for attempts in successes_per_task:
        n, c = len(attempts), sum(bool(a) for a in attempts)
        if n < k:
            raise ValueError(f"pass^{k} needs at least {k} attempts per task, got {n}")
        values.append(comb(c, k) / comb(n, k))
    return sum(values) / len(values) if values else 0.0


def rate(values: Iterable[Any]) -> float:
    vals = [float(v) for v in values]
    return sum(vals) / len(vals) if vals else 0.0
