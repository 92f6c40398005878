"""evaluate(runner, domain, split, trials): run any EpisodeRunner over a split and score it with the domain's
own verifier (the reward the env returns, the same function training uses).

Per-task records, success rate, per-family success, mean turns, tool / format errors, pass^k for k = 1..trials
(tau-bench's estimator) and tool-use health. Never imports credit_reference: the evaluated student sees only
the clean prompt.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from sgcd.eval.metrics import episode_counts, episode_health, pass_hat_k, rate
from sgcd.types import Episode


@dataclass(frozen=True)
class EvalRecord:
    """One attempt at one task."""

    task_id: str
    family: str
    trial: int
    reward: float
    success: bool
    turns: int
    calls: int
    tool_errors: int
    format_errors: int
    writes: int  # successful state-changing calls
    reason: str  # why the episode ended (final_answer, a limit, an agent error)
    gold_has_write: bool | None = None  # from the domain's hooks when it has them
    horizon: int | None = None  # assistant turns of the domain's gold solution, when it has one
    # the verifier's reward factors when the env reports them (tau3-airline: {"db": .., "communicate": ..})
    breakdown: dict[str, float] = field(default_factory=dict)


@dataclass
class EvalResult:
    """What `evaluate` returns; `to_dict()` is what `sgcd eval --json` writes."""

    domain: str
    split: str
    policy: str
    trials: int
    n_tasks: int
    success_rate: float
    per_family: dict[str, dict[str, float]]
    mean_turns: float
    tool_errors: int
    format_errors: int
    pass_k: dict[int, float]
    health: dict[str, float]
    records: list[EvalRecord] = field(default_factory=list)
    episodes: list[Episode] = field(default_factory=list, repr=False)  # kept in memory, not written
    # domain-specific metrics from the domain's optional `extra_metrics(episodes) -> dict` (AppWorld: tgc, sgc)
    extra: dict[str, float] = field(default_factory=dict)
    # success per horizon bin of the gold solution (sgcd.eval.stats.HORIZON_BINS), when the domain has one
    per_horizon: dict[str, dict[str, float]] = field(default_factory=dict)

    def per_task(self) -> dict[str, float]:
        """Each task's success rate over its trials (the unit paired comparisons are made on)."""
        by_task: dict[str, list[bool]] = defaultdict(list)
        for r in self.records:
            by_task[r.task_id].append(r.success)
        return {t: sum(v) / len(v) for t, v in by_task.items()}

    def to_dict(self, with_records: bool = True) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("records", "episodes")}
        out["pass_k"] = {str(k): v for k, v in self.pass_k.items()}
        if with_records:
            out["records"] = [asdict(r) for r in self.records]
        return out

    def write_json(self, path: str | Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=1, sort_keys=True) + "\n")


def _gold_has_write(domain: Any, task: Any) -> bool | None:
    gold, is_write = getattr(domain, "gold_turns", None), getattr(domain, "is_write_tool", None)
    if gold is None or is_write is None:
        return None
    from sgcd.envs.toolcalls import parse_tool_calls

    return any(is_write(c.name) for turn in gold(task) for c in parse_tool_calls(turn)[0])


def _gold_horizon(domain: Any, task: Any) -> int | None:
    gold = getattr(domain, "gold_turns", None)
    return len(gold(task)) if gold is not None else None


def record_of(
    task: Any, trial: int, ep: Episode, gold_has_write: bool | None = None, horizon: int | None = None
) -> EvalRecord:
    c = episode_counts(ep)
    reason = str(ep.info.get("reason", "")) if isinstance(ep.info, dict) else ""
    return EvalRecord(
        task_id=task.task_id,
        family=task.family,
        trial=trial,
        reward=float(ep.reward),
        success=bool(ep.success),
        turns=c["turns"],
        calls=c["calls"],
        tool_errors=c["tool_errors"],
        format_errors=c["format_errors"],
        writes=c["writes"],
        reason=reason,
        gold_has_write=gold_has_write,
        horizon=horizon,
        breakdown=dict(ep.info.get("reward_breakdown") or {}) if isinstance(ep.info, dict) else {},
    )


def summarize(
    domain: str,
    split: str,
    policy: str,
    trials: int,
    records: Sequence[EvalRecord],
    episodes: Sequence[Episode],
) -> EvalResult:
    """Aggregate records of `trials` attempts per task into an EvalResult."""
    by_task: dict[str, list[bool]] = defaultdict(list)
    by_family: dict[str, list[EvalRecord]] = defaultdict(list)
    for r in records:
        by_task[r.task_id].append(r.success)
        by_family[r.family].append(r)
    per_family = {
        fam: {
            "n": float(len(rs)),
            "success": rate(r.success for r in rs),
            "mean_turns": rate(r.turns for r in rs),
        }
        for fam, rs in sorted(by_family.items())
    }
    return EvalResult(
        domain=domain,
        split=split,
        policy=policy,
        trials=trials,
        n_tasks=len(by_task),
        success_rate=rate(r.success for r in records),
        per_family=per_family,
        mean_turns=rate(r.turns for r in records),
        tool_errors=sum(r.tool_errors for r in records),
        format_errors=sum(r.format_errors for r in records),
        pass_k={k: pass_hat_k(by_task.values(), k) for k in range(1, trials + 1)} if records else {},
        health=episode_health(episodes),
        records=list(records),
        episodes=list(episodes),
        per_horizon=_per_horizon(records),
    )


def _per_horizon(records: Sequence[EvalRecord]) -> dict[str, dict[str, float]]:
    from sgcd.eval.stats import HORIZON_BINS, horizon_bin

    bins: dict[str, list[EvalRecord]] = defaultdict(list)
    for r in records:
        if r.horizon is not None:
            bins[horizon_bin(r.horizon)].append(r)
    order = [name for _, _, name in HORIZON_BINS]
    return {
        b: {"n": float(len(rs)), "success": rate(r.success for r in rs), "write_share": rate(r.writes > 0 for r in rs)}
        for b, rs in sorted(bins.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else -1)
    }  # fmt: skip


def evaluate(
    runner: Any,
    domain: Any,
    split: str,
    trials: int = 1,
    limit: int | None = None,
    progress: bool = True,
    batch_size: int = 32,
    policy: str = "",
) -> EvalResult:
    """Run `runner` on every task of `split` (the first `limit`), `trials` times each, and score it.

    Envs go to the runner in batches of `batch_size` (a model runner samples a batch together); a runner with
    `run_streaming` (PolicyRunner) gets every env at once and keeps `batch_size` episodes in flight, starting the
    next env as soon as one ends, so a few long episodes never leave the batch nearly empty.
    """
    if trials < 1:
        raise ValueError(f"trials must be >= 1, got {trials}")
    tasks = domain.tasks(split)
    if limit is not None:
        tasks = tasks[: max(0, int(limit))]
    jobs = [(trial, task) for trial in range(trials) for task in tasks]
    has_write = {t.task_id: _gold_has_write(domain, t) for t in tasks}
    horizon = {t.task_id: _gold_horizon(domain, t) for t in tasks}
    records: list[EvalRecord] = []
    episodes: list[Episode] = []
    with _progress(progress, len(jobs), f"{domain.name}/{split}") as advance:
        stream = getattr(runner, "run_streaming", None)
        if stream is not None:  # a model runner: every episode queued, batch_size in flight, slots refilled
            eps = stream(
                [domain.make_env(task) for _, task in jobs],
                batch_size,
                lambda ep: advance(1, int(ep.success)),
            )
            for (trial, task), ep in zip(jobs, eps, strict=True):
                records.append(record_of(task, trial, ep, has_write[task.task_id], horizon[task.task_id]))
                episodes.append(ep)
            jobs = []
        for start in range(0, len(jobs), batch_size):
            chunk = jobs[start : start + batch_size]
            eps = runner.run([domain.make_env(task) for _, task in chunk])
            for (trial, task), ep in zip(chunk, eps, strict=True):
                records.append(record_of(task, trial, ep, has_write[task.task_id], horizon[task.task_id]))
                episodes.append(ep)
            advance(len(chunk), sum(ep.success for ep in eps))
    result = summarize(domain.name, split, policy, trials, records, episodes)
    hook = getattr(domain, "extra_metrics", None)
    if callable(hook):
        result.extra = dict(hook(episodes))
    return result


class _progress:
    """Progress exposing advance(n, successes): a rich bar on a terminal; elsewhere one line per batch,
    `eval DOMAIN/SPLIT  done/total episodes  success S  X s` (sgcd.progress); nothing when disabled."""

    def __init__(self, enabled: bool, total: int, label: str) -> None:
        from sgcd.progress import on_terminal

        self.enabled, self.total, self.label = enabled, total, label
        self.bar = enabled and on_terminal()

    def __enter__(self):
        if not self.enabled:
            return lambda n, ok=0: None
        if not self.bar:
            return self._line_advance()
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

        self._bar = Progress(
            "[bold]{task.description}", BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()
        )
        self._bar.__enter__()
        task_id = self._bar.add_task(self.label, total=self.total)
        return lambda n, ok=0: self._bar.advance(task_id, n)

    def _line_advance(self):
        import time

        from sgcd.progress import line

        t0, seen = time.perf_counter(), {"done": 0, "ok": 0}

        every = max(1, self.total // 10)  # about ten lines per evaluation

        def advance(n: int, ok: int = 0) -> None:
            before = seen["done"]
            seen["done"] += n
            seen["ok"] += ok
            if seen["done"] // every == before // every and seen["done"] != self.total:
                return
            rate = seen["ok"] / seen["done"] if seen["done"] else 0.0
            line(
                f"eval {self.label}  {seen['done']}/{self.total} episodes  success {rate:.3f}  "
                f"{time.perf_counter() - t0:.1f} s"
            )

        return advance

    def __exit__(self, *exc: Any) -> None:
        if self.bar:
            self._bar.__exit__(*exc)
