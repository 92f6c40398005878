"""Small helpers shared by the trainer tests."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file

NAMESPACES = ("reward", "sampling", "credit", "reference", "loss", "policy", "tools", "time", "eval")


def final_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    files = sorted((Path(run_dir) / "final").glob("*.safetensors"))
    assert files, f"no safetensors in {run_dir}/final"
    out: dict[str, torch.Tensor] = {}
    for f in files:
        out.update(load_file(str(f)))
    return out


def same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def stable_metrics(rows: list[dict]) -> list[dict]:
    """Metric rows without wall-clock figures (time/*, *_s latencies), which no two runs share."""
    return [{k: v for k, v in r.items() if not k.startswith("time/") and not k.endswith("_s")} for r in rows]
