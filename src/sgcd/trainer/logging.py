"""Metrics logging through one small protocol: `log(metrics, step)` and `close()`.

Sinks: JSONL (RUN_DIR/metrics.jsonl, always on), stdout (one line per step), TensorBoard and W&B (optional
extras, imported only when asked for). `NullLogger` lets the loop log unconditionally. `MultiLogger` fans out.
Keys are namespaced (`reward/mean`, `credit/w_std`, ...); values are plain floats.

JSONL is appended and flushed after every line; on resume the file is truncated to the checkpoint's byte offset
so a killed run never leaves duplicate or half-written steps behind.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Protocol


class Logger(Protocol):
    def log(self, metrics: dict[str, float], step: int) -> None: ...

    def close(self) -> None: ...


class NullLogger:
    def log(self, metrics: dict[str, float], step: int) -> None:
        pass

    def close(self) -> None:
        pass


def _clean(value: Any) -> Any:
    """JSON-safe scalar: NaN/inf become None (JSON has no NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class JsonlLogger:
    """One JSON object per step: {"step": n, <namespaced keys>...}."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()

    def log(self, metrics: dict[str, float], step: int) -> None:
        row = {"step": step, **{k: _clean(v) for k, v in sorted(metrics.items())}}
        self._fh.write(json.dumps(row) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def offset(self) -> int:
        """Byte length of the file so far (stored in checkpoints)."""
        self._fh.flush()
        return self._fh.tell()

    def close(self) -> None:
        self._fh.close()


class StdoutLogger:
    """`logging.stdout=true`: one line per training step on stdout, in the progress line's format
    (`step N  success ..  mixed K/G  w_std ..  loss ..  X s`); a held-out evaluation row prints `step N eval ...`.
    Rows with neither (nothing to say) print nothing."""

    def log(self, metrics: dict[str, float], step: int) -> None:
        from sgcd.progress import step_line

        if isinstance(metrics.get("time/step_s"), (int, float)):
            print(step_line(step, None, metrics), flush=True)
        elif isinstance(metrics.get("eval/success"), (int, float)):
            n = metrics.get("eval/n")
            episodes = f" ({n:.0f} episodes)" if isinstance(n, (int, float)) else ""
            print(f"step {step} eval: success {metrics['eval/success']:.3f}{episodes}", flush=True)

    def close(self) -> None:
        pass


class TensorBoardLogger:
    def __init__(self, logdir: Path) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as exc:
            raise RuntimeError(
                "logging.tensorboard=true needs the tensorboard extra: pip install 'sgcd[tensorboard]'"
            ) from exc
        self._writer = SummaryWriter(str(logdir))

    def log(self, metrics: dict[str, float], step: int) -> None:
        for key, value in metrics.items():
            if isinstance(value, (int, float)) and math.isfinite(value):
                self._writer.add_scalar(key, value, step)
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()


class WandbLogger:
    def __init__(self, project: str, run_dir: Path, config: dict) -> None:
        try:
            import wandb
        except ImportError as exc:
            raise RuntimeError("logging.wandb=true needs the wandb extra: pip install 'sgcd[wandb]'") from exc
        self._run = wandb.init(project=project, dir=str(run_dir), config=config, name=Path(run_dir).name)

    def log(self, metrics: dict[str, float], step: int) -> None:
        self._run.log(metrics, step=step)

    def close(self) -> None:
        self._run.finish()


class MultiLogger:
    def __init__(self, sinks: list[Logger]) -> None:
        self.sinks = sinks

    def log(self, metrics: dict[str, float], step: int) -> None:
        for sink in self.sinks:
            sink.log(metrics, step)

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()


def truncate_jsonl(path: Path, offset: int) -> None:
    """Cut metrics.jsonl back to `offset` bytes (the state at the last checkpoint)."""
    path = Path(path)
    if path.exists() and path.stat().st_size > offset:
        with open(path, "r+b") as fh:
            fh.truncate(offset)


def read_jsonl(path: Path) -> list[dict]:
    """All complete rows of a metrics file (a trailing partial line from a kill is ignored)."""
    rows = []
    path = Path(path)
    if not path.exists():
        return rows
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows
