"""Run-folder safety: one writer at a time, and a resume that either continues exactly or refuses in one line.

- `RunLock`: an exclusive lock (filelock on RUN_DIR/.lock) held for the whole life of a train or resume; a
  second writer fails at once with one line naming the holder's pid (RUN_DIR/.lock.pid).
- `config_hash`: every checkpoint records the hash of the run config (steps excluded: `--resume RUN steps=N`
  may change them) and the config itself; `check_config` refuses a resume whose config.yaml was edited since,
  naming the changed keys, unless `--allow-config-change` is given.
- `plan_resume`: what a resume will do, decided from the run folder before any model loads: restart from step 0
  (killed before its first checkpoint), nothing (already finished), refuse (steps below the checkpoint), or
  continue from the newest checkpoint whose state.json reads.
- `repair_metrics`: metrics.jsonl cut back to the checkpoint's byte offset when longer, and to its last complete
  row when shorter (a torn line never swallows the next row).
- `os_error_line`: an OSError as one line; a full disk is called "disk full".
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from sgcd.trainer import checkpoint as ckpt

LOCK = ".lock"


class RunDirError(RuntimeError):
    """A run folder cannot be used as asked; one line saying why (the trainer re-raises it as TrainError)."""


class RunLock:
    """Exclusive use of a run folder; `with RunLock(run_dir):` or acquire()/release()."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        self._lock = FileLock(str(self.run_dir / LOCK), timeout=0)
        self._pid_file = self.run_dir / f"{LOCK}.pid"

    def acquire(self) -> RunLock:
        try:
            self._lock.acquire()
        except Timeout:
            try:
                holder = self._pid_file.read_text().strip() or "unknown"
            except OSError:
                holder = "unknown"
            raise RunDirError(
                f"run folder {self.run_dir} is in use by another sgcd process (pid {holder}); wait for it to "
                f"finish or stop it first"
            ) from None
        self._pid_file.write_text(f"{os.getpid()}\n")
        return self

    def release(self) -> None:
        if self._lock.is_locked:
            self._pid_file.unlink(missing_ok=True)
            self._lock.release()

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()


def config_dict(cfg: Any) -> dict[str, Any]:
    """The config as hashed: everything but `steps`."""
    data = dataclasses.asdict(cfg)
    data.pop("steps", None)
    return data


def config_hash(cfg: Any) -> str:
    text = json.dumps(config_dict(cfg), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _flat(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for key, value in data.items():
            out.update(_flat(value, f"{prefix}{key}."))
        return out if data else {prefix[:-1]: {}}
    return {prefix[:-1]: data}


def check_config(state: ckpt.TrainState, cfg: Any, where: Path, allow_change: bool) -> list[str]:
    """The keys changed since checkpoint `where`; RunDirError when any changed and `allow_change` is false."""
    if not state.config_hash or state.config_hash == config_hash(cfg):
        return []
    old, new = _flat(state.config), _flat(config_dict(cfg))
    changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k)) or ["(unknown)"]
    if not allow_change:
        raise RunDirError(
            f"config.yaml of {where.parent.parent} was edited since checkpoint {where.name} (changed: "
            f"{', '.join(changed[:6])}); undo the edit, or pass --allow-config-change to continue with it"
        )
    return changed


@dataclass
class ResumePlan:
    """restart: no checkpoint yet, start over at step 0; finished: nothing to do; otherwise continue."""

    checkpoint: Path | None
    state: ckpt.TrainState | None
    restart: bool = False
    finished: bool = False


def plan_resume(run_dir: Path, cfg: Any, steps: int | None, allow_config_change: bool) -> ResumePlan:
    """Decide what `--resume` does, from the folder alone (no model is loaded); RunDirError when it cannot."""
    found = ckpt.list_checkpoints(run_dir)
    if not found:
        return ResumePlan(None, None, restart=True)
    path, state = None, None
    for candidate in reversed(found):  # the newest checkpoint whose state.json reads
        try:
            path, state = candidate, ckpt.read_state(candidate)
            break
        except ckpt.CheckpointError:
            continue
    if state is None:
        return ResumePlan(found[-1], None)  # loading will name the damage
    if steps is not None and steps < state.step:
        raise RunDirError(
            f"steps={steps} is below the step of the last checkpoint ({path.name}, step {state.step}): a run "
            f"cannot be shortened; pass steps >= {state.step}"
        )
    check_config(state, cfg, path, allow_config_change)
    finished = (Path(run_dir) / "summary.json").exists() and state.step >= cfg.steps
    return ResumePlan(path, state, finished=finished)


def repair_metrics(path: Path, offset: int) -> str | None:
    """Make metrics.jsonl hold exactly the rows up to the checkpoint; returns a note when rows were lost."""
    path = Path(path)
    size = path.stat().st_size if path.exists() else 0
    if size == offset:
        return None
    if size > offset:
        with open(path, "r+b") as fh:
            fh.truncate(offset)
        return None
    data = path.read_bytes() if path.exists() else b""
    keep = data.rfind(b"\n") + 1  # the last complete row; a torn line is dropped
    with open(path, "r+b" if path.exists() else "wb") as fh:
        fh.truncate(keep)
    rows = data[:keep].count(b"\n")
    return f"metrics.jsonl is shorter than the checkpoint recorded ({size} < {offset} bytes); kept its {rows} rows"


def reset_for_restart(run_dir: Path) -> None:
    """A run killed before its first checkpoint: drop what it wrote after config.yaml, so it starts over."""
    run_dir = Path(run_dir)
    for name in ("metrics.jsonl", "summary.json"):
        (run_dir / name).unlink(missing_ok=True)
    samples = run_dir / "samples"
    if samples.is_dir():
        for f in samples.glob("step_*.jsonl"):
            f.unlink()


def os_error_line(exc: OSError, what: str = "") -> str:
    """One line for a file-system error, naming a full disk as such."""
    where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"disk full{' while ' + what if what else ''}{where}: free some space, then --resume the run"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"{what + ': ' if what else ''}permission denied{where} (is the folder read-only?)"
    reason = exc.strerror or (str(exc).splitlines() or [type(exc).__name__])[0]
    return f"{what + ': ' if what else ''}{reason}{where}"
