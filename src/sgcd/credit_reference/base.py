"""The summarizer contract, its metrics, and the offline summarizer behind it.

`Summarizer.summarize(group) -> CreditReference` never raises: a bad LLM answer falls back to the offline
reference, and an unexpected error in the offline code itself yields an empty reference (no steps) and a
counter. Every reference leaves through `finish()`, which runs the leakage guard, so what a summarizer returns
is what the teacher may see.

Metrics (`metrics(reset=False)` -> flat dict of floats, keys under `summarizer/`): references, source/<where
it came from>, fallbacks and fallback/<cause>, cache_hits, cache_misses, requests, parse_failures, repairs,
latency_mean_s, latency_max_s, prompt_tokens, completion_tokens, polarity/<label>, steps_mean,
reference_chars_mean, leakage_removed, leakage/<kind>. Counts are cumulative since creation, or since the last
`metrics(reset=True)` (what a trainer calls once per step).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from sgcd.credit_reference.evidence import GroupEvidence, select_evidence
from sgcd.credit_reference.leakage import guard_reference
from sgcd.credit_reference.offline import offline_reference
from sgcd.credit_reference.schema import CreditReference
from sgcd.types import Episode, TrajectoryGroup

GroupLike = TrajectoryGroup | Sequence[Episode] | GroupEvidence


@runtime_checkable
class Summarizer(Protocol):
    name: str

    def summarize(self, group: GroupLike) -> CreditReference:
        """The guarded credit reference of one group; never raises."""
        ...

    def metrics(self, reset: bool = False) -> dict[str, float]: ...


def as_evidence(group: GroupLike) -> GroupEvidence:
    return group if isinstance(group, GroupEvidence) else select_evidence(group)


class SummarizerStats:
    """Thread-safe counters and running sums behind `metrics()`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._latency_max = 0.0

    def count(self, key: str, n: float = 1) -> None:
        with self._lock:
            self._counts[key] += n

    def latency(self, seconds: float) -> None:
        with self._lock:
            self._counts["_latency_sum"] += seconds
            self._counts["_latency_n"] += 1
            self._latency_max = max(self._latency_max, seconds)

    def record(self, ref: CreditReference, leaks: dict[str, int], source: str) -> None:
        from sgcd.credit_reference.teacher import render_reference  # teacher imports nothing from here

        with self._lock:
            c = self._counts
            c["references"] += 1
            c[f"source/{source}"] += 1
            for polarity, n in ref.polarity_counts().items():
                c[f"polarity/{polarity}"] += n
            c["_steps_sum"] += len(ref.steps)
            c["_chars_sum"] += len(render_reference(ref))
            for kind, n in leaks.items():
                c[f"leakage/{kind}"] += n
                c["leakage_removed"] += n

    def snapshot(self, reset: bool = False) -> dict[str, float]:
        with self._lock:
            c = Counter(self._counts)
            lat_max = self._latency_max
            if reset:
                self._counts.clear()
                self._latency_max = 0.0
        refs = c.get("references", 0)
        out = {f"summarizer/{k}": float(v) for k, v in c.items() if not k.startswith("_")}
        for key in ("references", "fallbacks", "cache_hits", "cache_misses", "requests", "parse_failures"):
            out.setdefault(f"summarizer/{key}", 0.0)
        for polarity in ("helpful", "harmful", "neutral"):
            out.setdefault(f"summarizer/polarity/{polarity}", 0.0)
        out.setdefault("summarizer/leakage_removed", 0.0)
        out["summarizer/steps_mean"] = c["_steps_sum"] / refs if refs else 0.0
        out["summarizer/reference_chars_mean"] = c["_chars_sum"] / refs if refs else 0.0
        n_lat = c.get("_latency_n", 0)
        out["summarizer/latency_mean_s"] = c["_latency_sum"] / n_lat if n_lat else 0.0
        out["summarizer/latency_max_s"] = lat_max
        return out


def safe_offline(ev: GroupEvidence, stats: SummarizerStats) -> CreditReference:
    """The offline reference, or (on an unexpected error, counted) an empty one: never raises."""
    try:
        return offline_reference(ev)
    except Exception:  # noqa: BLE001 - the training step must not fail because of the summarizer
        stats.count("offline_errors")
        return CreditReference(task_summary=f"task {ev.task_id}", steps=[])


def finish(ref: CreditReference, ev: GroupEvidence, stats: SummarizerStats, source: str) -> CreditReference:
    """Guard the reference against leakage and record it; every summarizer returns through here."""
    guarded, leaks = guard_reference(ref, ev)
    stats.record(guarded, leaks, source)
    return guarded


class OfflineSummarizer:
    """§3's deterministic summarizer (the default): no model, no network."""

    name = "offline"

    def __init__(self) -> None:
        self.stats = SummarizerStats()

    def summarize(self, group: GroupLike) -> CreditReference:
        ev = as_evidence(group)
        return finish(safe_offline(ev, self.stats), ev, self.stats, "offline")

    def metrics(self, reset: bool = False) -> dict[str, float]:
        return self.stats.snapshot(reset)
