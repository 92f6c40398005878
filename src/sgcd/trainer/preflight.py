"""Checks a run makes before any model loads, each failing with one line: the output folder, the device, the
logging extras, and the domain (its name, options and splits).

`check(cfg, out)` is cheap (no model, no domain); `build_domain(cfg)` builds the domain and checks both splits
exist, so a typo in `env.*` costs seconds, not a model load.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

from sgcd.trainer.config import RunConfig
from sgcd.trainer.setup import TrainError


def check(cfg: RunConfig, out: Path | None = None) -> None:
    if out is not None:
        check_out(Path(out))
    check_device(cfg.model.device)
    check_extras(cfg)


def check_out(out: Path) -> None:
    """`out` is a folder (or can become one) that this process can write."""
    if out.exists() and not out.is_dir():
        raise TrainError(f"--out {out} is a file, not a folder")
    probe = out
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise TrainError(f"--out {out}: {probe} is a file, not a folder")
    if probe.exists() and not os.access(probe, os.W_OK | os.X_OK):
        raise TrainError(f"--out {out}: {probe} is not writable (permission denied or read-only)")


def check_device(device: str) -> None:
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise TrainError(f"model.device={device!r} is not a torch device; use cpu, cuda or cuda:N") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise TrainError(f"model.device={device!r}: torch sees no CUDA device on this machine; use cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise TrainError(
                f"model.device={device!r}: this machine has {torch.cuda.device_count()} CUDA device(s)"
            )
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise TrainError(f"model.device={device!r}: MPS is not available on this machine; use cpu")
    elif dev.type not in ("cpu", "cuda", "mps"):
        raise TrainError(f"model.device={device!r} is not supported; use cpu, cuda or cuda:N")


def check_extras(cfg: RunConfig) -> None:
    if cfg.logging.tensorboard and importlib.util.find_spec("tensorboard") is None:
        raise TrainError(
            "logging.tensorboard=true needs the tensorboard extra: pip install 'sgcd[tensorboard]'"
        )
    if cfg.logging.wandb and importlib.util.find_spec("wandb") is None:
        raise TrainError("logging.wandb=true needs the wandb extra: pip install 'sgcd[wandb]'")


def build_domain(cfg: RunConfig) -> Any:
    """The run's domain; TrainError in one line for an unknown name, a bad option or a missing split."""
    from sgcd.envs import get_domain

    e = cfg.env
    try:
        domain = get_domain(e.name, seed=cfg.seed, **e.options)
    except TypeError as exc:  # the factory does not take an option
        raise TrainError(f"env.options for {e.name!r}: {str(exc).splitlines()[0]}") from exc
    except (ValueError, RuntimeError, KeyError, ImportError, OSError) as exc:
        msg = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        key = "env.name" if msg.startswith("unknown environment") else "env"
        raise TrainError(f"{key}={e.name!r}: {msg}") from exc
    splits = _splits(domain)
    for key, split in (("env.train_split", e.train_split), ("env.eval_split", e.eval_split)):
        if splits is not None and split not in splits:
            raise TrainError(
                f"{key}={split!r} is not a split of {e.name!r}; choose one of: {', '.join(splits)}"
            )
    return domain


def _splits(domain: Any) -> list[str] | None:
    fn = getattr(domain, "splits", None)
    if fn is None:
        return None
    try:
        return list(fn())
    except Exception:  # a domain that cannot list its splits is checked when it builds the tasks
        return None
