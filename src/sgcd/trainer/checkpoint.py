"""Atomic checkpoints: everything needed to continue a run exactly, written to a temp folder then renamed.

Layout: RUN_DIR/checkpoints/step_{step:06d}/ with
    model.pt       policy state_dict           optimizer.pt   AdamW state      scheduler.pt  LR scheduler state
    rng.pt         python, numpy, torch (CPU and CUDA) RNG states, plus any extra generator states
    state.json     step, sampler position, metrics.jsonl byte offset, summarizer cache path, config hash
A checkpoint folder exists under its final name only once every file in it is complete (os.replace of the whole
folder is atomic on POSIX), so a kill at any moment leaves either the previous checkpoints or the new one, never
half of one. Temp folders (`.tmp-*`) left by a kill are removed on the next save or resume. The last `keep_last`
checkpoints are kept; older ones are deleted only after the new one is in place.

A failed write (a full disk, a permission error) removes the temp folder and raises `CheckpointError` naming the
step, the cause and the last intact checkpoint; the run folder is left as it was before the attempt.
"""

from __future__ import annotations

import errno
import json
import os
import pickle
import random
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

PREFIX = "step_"


class CheckpointError(RuntimeError):
    """Writing or reading a checkpoint failed; the message says which step and why, in one line."""


@dataclass
class TrainState:
    """The loop's own position: everything besides tensors that resume needs."""

    step: int = 0  # steps completed
    sampler: dict[str, Any] = field(default_factory=dict)
    metrics_offset: int = 0  # bytes of metrics.jsonl that belong to steps <= step
    summarizer_cache: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def rng_state(extra_generators: dict[str, torch.Generator] | None = None) -> dict[str, Any]:
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "generators": {k: g.get_state() for k, g in (extra_generators or {}).items()},
    }
    return state


def set_rng_state(state: dict[str, Any], extra_generators: dict[str, torch.Generator] | None = None) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    for key, gen in (extra_generators or {}).items():
        if key in state.get("generators", {}):
            gen.set_state(state["generators"][key])


def checkpoint_dir(run_dir: Path) -> Path:
    return Path(run_dir) / "checkpoints"


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Complete checkpoints, oldest first."""
    root = checkpoint_dir(run_dir)
    if not root.exists():
        return []
    done = [
        p for p in root.iterdir() if p.is_dir() and p.name.startswith(PREFIX) and (p / "state.json").exists()
    ]
    return sorted(done, key=lambda p: int(p.name[len(PREFIX) :]))


def latest_checkpoint(run_dir: Path) -> Path | None:
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


def _clean_temps(root: Path) -> None:
    if root.exists():
        for p in root.iterdir():
            if p.name.startswith(".tmp-"):
                shutil.rmtree(p, ignore_errors=True)


def save_checkpoint(
    run_dir: Path,
    state: TrainState,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    keep_last: int = 2,
    generators: dict[str, torch.Generator] | None = None,
) -> Path:
    """Write checkpoint `state.step` atomically and prune old ones; returns its folder."""
    root = checkpoint_dir(run_dir)
    root.mkdir(parents=True, exist_ok=True)
    _clean_temps(root)
    final = root / f"{PREFIX}{state.step:06d}"
    tmp = root / f".tmp-{PREFIX}{state.step:06d}-{os.getpid()}"
    try:
        tmp.mkdir()
        torch.save(model.state_dict(), tmp / "model.pt")
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        torch.save(scheduler.state_dict() if scheduler is not None else {}, tmp / "scheduler.pt")
        torch.save(rng_state(generators), tmp / "rng.pt")
        _write_json(tmp / "state.json", state.__dict__)
        _fsync_dir(tmp)
        if final.exists():  # re-saving the same step (e.g. the end of a resumed run): replace it whole
            shutil.rmtree(final)
        os.replace(tmp, final)
        _fsync_dir(root)
    except (OSError, RuntimeError) as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        last = latest_checkpoint(run_dir)
        cause = "disk full" if _is_enospc(exc) else f"{type(exc).__name__}: {exc}"
        kept = f"the last intact checkpoint is {last.name}" if last else "no earlier checkpoint exists"
        raise CheckpointError(f"checkpoint at step {state.step} failed ({cause}); {kept}") from exc
    for old in list_checkpoints(run_dir)[:-keep_last]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load_checkpoint(
    path: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    generators: dict[str, torch.Generator] | None = None,
) -> TrainState:
    """Restore model, optimizer, scheduler and RNG from `path`; return the loop state."""
    path = Path(path)
    try:
        model.load_state_dict(torch.load(path / "model.pt", map_location="cpu", weights_only=True))
        optimizer.load_state_dict(torch.load(path / "optimizer.pt", map_location="cpu", weights_only=True))
        if scheduler is not None:
            scheduler.load_state_dict(torch.load(path / "scheduler.pt", weights_only=False))
        set_rng_state(torch.load(path / "rng.pt", weights_only=False), generators)
        data = json.loads((path / "state.json").read_text())
    except (OSError, RuntimeError, KeyError, ValueError, pickle.UnpicklingError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise CheckpointError(f"checkpoint {path} cannot be read: {type(exc).__name__}: {first}") from exc
    _clean_temps(path.parent)
    return TrainState(**data)


def _write_json(path: Path, data: dict) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=1, default=str)
        fh.flush()
        os.fsync(fh.fileno())


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _is_enospc(exc: BaseException) -> bool:
    while exc is not None:
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if "No space left" in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def write_atomic_text(path: Path, text: str) -> None:
    """Write a small file atomically (temp file + rename): summary.json, compare.json."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
