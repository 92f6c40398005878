"""Atomic checkpoints: everything needed to continue a run exactly, written to a temp folder then renamed.

Layout: RUN_DIR/checkpoints/step_{step:06d}/ is a Hugging Face model folder (so `sgcd eval --policy` and
`from_pretrained` take any checkpoint) with the training state beside it:
    config.json, model.safetensors, generation_config.json, tokenizer files   save_pretrained (safetensors)
    optimizer.pt   AdamW state           scheduler.pt   LR scheduler state
    rng.pt         python, numpy, torch (CPU and CUDA) RNG states, plus any extra generator states
    state.json     step, sampler position, metrics.jsonl byte offset, summarizer cache path, config and its hash
A plain torch module (no save_pretrained) is stored as model.safetensors alone; checkpoints of older versions
(model.pt) still load. A checkpoint folder exists under its final name only once every file in it is complete
(os.replace of the whole folder is atomic on POSIX), so a kill at any moment leaves either the previous
checkpoints or the new one, never half of one. Temp folders (`.tmp-*`) left by a kill are removed on the next save
or resume. The last `keep_last` checkpoints are kept; older ones are deleted only after the new one is in place.

A failed write (a full disk, a permission error) removes the temp folder and raises `CheckpointError` naming the
step, the cause ("disk full" whenever the file system has no room left, whatever the library's own message) and
the last intact checkpoint; the run folder is left as it was before the attempt.
"""

from __future__ import annotations

import dataclasses
import errno
import io
import json
import os
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
    config_hash: str = ""  # sgcd.trainer.rundir.config_hash of the run config (steps excluded)
    config: dict[str, Any] = field(default_factory=dict)  # that config, to name what an edit changed


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
    tokenizer: Any = None,
) -> Path:
    """Write checkpoint `state.step` atomically and prune old ones; returns its folder."""
    root = checkpoint_dir(run_dir)
    root.mkdir(parents=True, exist_ok=True)
    _clean_temps(root)
    final = root / f"{PREFIX}{state.step:06d}"
    tmp = root / f".tmp-{PREFIX}{state.step:06d}-{os.getpid()}"
    try:
        tmp.mkdir()
        _save_weights(model, tokenizer, tmp)
        _write_bytes(tmp / "optimizer.pt", _torch_bytes(optimizer.state_dict()))
        _write_bytes(
            tmp / "scheduler.pt", _torch_bytes(scheduler.state_dict() if scheduler is not None else {})
        )
        _write_bytes(tmp / "rng.pt", _torch_bytes(rng_state(generators)))
        _write_json(tmp / "state.json", state.__dict__)
        _fsync_dir(tmp)
        if final.exists():  # re-saving the same step (e.g. the end of a resumed run): replace it whole
            shutil.rmtree(final)
        os.replace(tmp, final)
        _fsync_dir(root)
    except Exception as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        last = latest_checkpoint(run_dir)
        cause = "disk full" if disk_full(exc, root) else f"{type(exc).__name__}: {_first_line(exc)}"
        kept = f"the last intact checkpoint is {last.name}" if last else "no earlier checkpoint exists"
        raise CheckpointError(f"checkpoint at step {state.step} failed ({cause}); {kept}") from exc
    for old in list_checkpoints(run_dir)[:-keep_last]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def _save_weights(model: torch.nn.Module, tokenizer: Any, folder: Path) -> None:
    if hasattr(model, "save_pretrained"):
        from transformers.utils import logging as hf_logging

        bars = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()  # no "Writing model shards" bar at every checkpoint
        try:
            from sgcd.policy.trainable import save_model_folder

            save_model_folder(model, tokenizer, folder)  # a peft model: merged weights + adapter/
        finally:
            if bars:
                hf_logging.enable_progress_bar()
    else:
        from safetensors.torch import save

        _write_bytes(folder / "model.safetensors", save(model.state_dict()))


def _load_weights(model: torch.nn.Module, folder: Path) -> None:
    from sgcd.policy.trainable import has_adapters, load_adapter

    if has_adapters(model):  # LoRA: the base never trains; the adapter is what resumes
        load_adapter(model, folder)
        return
    if (folder / "model.pt").exists() and not (folder / "model.safetensors").exists():  # older checkpoints
        model.load_state_dict(torch.load(folder / "model.pt", map_location="cpu", weights_only=True))
        return
    from safetensors.torch import load_file

    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"no model.safetensors in {folder}")
    weights: dict[str, torch.Tensor] = {}
    for f in files:
        weights.update(load_file(str(f)))
    missing, unexpected = model.load_state_dict(weights, strict=False)
    # save_pretrained stores a tied weight once; its twin shares the storage loaded here
    shared = {p.data_ptr() for name, p in model.state_dict().items() if name in weights}
    untied = [k for k in missing if model.state_dict()[k].data_ptr() not in shared]
    if unexpected or untied:
        raise KeyError(f"weights do not match the model (missing {untied[:3]}, unexpected {unexpected[:3]})")


def _torch_bytes(obj: Any) -> bytes:
    """Serialize in memory, so the file write below is ours and a full disk surfaces as an OSError."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def _write_bytes(path: Path, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""


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
        state = read_state(path)
        _load_weights(model, path)
        optimizer.load_state_dict(torch.load(path / "optimizer.pt", map_location="cpu", weights_only=True))
        if scheduler is not None:
            scheduler.load_state_dict(torch.load(path / "scheduler.pt", weights_only=False))
        set_rng_state(torch.load(path / "rng.pt", weights_only=False), generators)
    except CheckpointError:
        raise
    except Exception as exc:  # torch, safetensors and pickle each raise their own kinds
        raise CheckpointError(
            f"checkpoint {path} cannot be read: {type(exc).__name__}: {_first_line(exc)}"
        ) from exc
    _clean_temps(path.parent)
    return state


def read_state(path: Path) -> TrainState:
    """state.json of checkpoint `path` (no tensors loaded); CheckpointError naming what is wrong with it."""
    try:
        data = json.loads((Path(path) / "state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"checkpoint {path} cannot be read: state.json: {_first_line(exc)}") from exc
    if not isinstance(data, dict):
        raise CheckpointError(f"checkpoint {path} cannot be read: state.json is not an object")
    known = {f.name for f in dataclasses.fields(TrainState)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise CheckpointError(
            f"checkpoint {path} cannot be read: state.json has unknown field {unknown[0]!r} "
            f"(written by another sgcd version?)"
        )
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


def disk_full(exc: BaseException, folder: Path | None = None) -> bool:
    """True when `exc` (or its cause) is ENOSPC/EDQUOT, or `folder`'s file system has (almost) no room left:
    torch and safetensors report a full disk in their own words ("unexpected pos", "os error 28")."""
    seen = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if "No space left" in str(seen) or "os error 28" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    if folder is not None:
        try:
            return shutil.disk_usage(folder).free < 1 << 20
        except OSError:
            return False
    return False
