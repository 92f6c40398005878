"""The progress display of a run on stderr: on a terminal a rich bar (step, ETA, training success, mixed
fraction, the key credit stats); anywhere else (nohup, SLURM, a pipe) one flushed line per step,
`step N/T  success ..  mixed K/G  w_std ..  loss ..  X s` (`sgcd.progress.step_line`), and no bar.

Off (a no-op) with `logging.progress=false` or `--quiet`. The JSONL file, not this display, is the record of a run.
"""

from __future__ import annotations

from typing import Any

from sgcd.progress import line, on_terminal, step_line


class Progress:
    def __init__(self, total: int, start: int = 0, enabled: bool = True, bar: bool | None = None) -> None:
        self.total, self.start, self.enabled = total, start, enabled and total > start
        self.bar = on_terminal() if bar is None else bar  # False: one line per step instead of a bar
        self._bar: Any = None
        self._task: Any = None

    def __enter__(self) -> Progress:
        if self.enabled and self.bar:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(
                TextColumn("[bold]step"),
                MofNCompleteColumn(),
                BarColumn(),
                TimeElapsedColumn(),
                TextColumn("eta"),
                TimeRemainingColumn(),
                TextColumn("{task.description}"),
                console=Console(stderr=True),
                transient=False,
            )
            self._bar.__enter__()
            self._task = self._bar.add_task("", total=self.total, completed=self.start)
        return self

    def update(self, step: int, metrics: dict[str, float]) -> None:
        if self.enabled and not self.bar:
            line(step_line(step, self.total, metrics))
        if self._bar is None:
            return
        self._bar.update(self._task, completed=step, description=describe(metrics))

    def __exit__(self, *exc: Any) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)


def describe(m: dict[str, float]) -> str:
    """A short status line: training success, mixed fraction, weight spread, loss, held-out success."""
    parts = []
    fmt = {
        "reward/success_rate": "succ {:.2f}",
        "sampling/mixed_frac": "mixed {:.2f}",
        "credit/w_std": "w_std {:.3f}",
        "credit/w_frac_at_high": "w@hi {:.2f}",
        "loss/policy": "loss {:+.3f}",
        "eval/success": "eval {:.2f}",
    }
    for key, pattern in fmt.items():
        if isinstance(m.get(key), (int, float)):
            parts.append(pattern.format(m[key]))
    if m.get("sampling/skipped"):
        parts.append("skipped (no mixed group)")
    return "  ".join(parts)
