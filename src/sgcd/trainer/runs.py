"""The run folder: what a training run leaves behind, and the bounded per-group samples the report reads.

RUN_DIR/
  config.yaml            the resolved config (defaults <- preset <- overrides)
  metrics.jsonl          one JSON object per step: {"step": n, "reward/...": ..., "credit/...": ..., ...}
  samples/step_NNNNNN.jsonl   <= logging.sample_groups mixed groups per eval interval (format below)
  checkpoints/step_NNNNNN/    see sgcd.trainer.checkpoint
  final/                 the trained student: a plain Hugging Face model + tokenizer (from_pretrained)
  summary.json           held-out success before/after, wall time, last credit stats, paths
  tb/                    TensorBoard events (optional)

Sample line format (a contract with `sgcd report`): one JSON object per mixed group,
  {"step", "task_id", "instruction", "reference" (CreditReference dict | null), "reference_text",
   "siblings": [{<the episode JSON of sgcd.episode_io.trajectory_record: "version", "task_id", "reward",
                  "success", "truncated", "group_id", "episode" (text level), "prompt_ids", "token_ids",
                  "action_mask", "turn_ids", "logprobs", "token_types">,
                 "advantage", "tokens" (decoded per token), "weights", "teacher_logprobs", "student_logprobs"}]}
Per-token lists cover the trajectory tokens only (after the clean prompt); teacher_logprobs is null when the
step had no teacher. Only the newest `keep_samples` files are kept, so the folder does not grow without bound.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from sgcd.files import write_atomic_text


def prepare_run_dir(out: Path, resume: bool = False) -> Path:
    """Create RUN_DIR (it must be empty or absent unless resuming) and its samples folder."""
    out = Path(out).expanduser()
    if not resume and out.exists() and any(out.iterdir()):
        raise FileExistsError(
            f"run folder {out} is not empty; pass a new --out, or --resume {out} to continue that run"
        )
    out.mkdir(parents=True, exist_ok=True)
    (out / "samples").mkdir(exist_ok=True)
    return out


def write_summary(run_dir: Path, summary: dict[str, Any]) -> Path:
    path = Path(run_dir) / "summary.json"
    write_atomic_text(path, json.dumps(summary, indent=2, default=_json_default) + "\n")
    return path


def _json_default(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj):
        return dataclasses.asdict(obj)
    if hasattr(obj, "model_dump"):
        return obj.model_dump()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    return str(obj)


def write_samples(run_dir: Path, step: int, rows: list[dict[str, Any]], keep: int) -> Path | None:
    """Write RUN_DIR/samples/step_{step:06d}.jsonl atomically; delete the oldest beyond `keep` files."""
    if not rows:
        return None
    folder = Path(run_dir) / "samples"
    folder.mkdir(exist_ok=True)
    path = folder / f"step_{step:06d}.jsonl"
    text = "".join(json.dumps(row, default=_json_default) + "\n" for row in rows)
    write_atomic_text(path, text)
    files = sorted(folder.glob("step_*.jsonl"))
    for old in files[:-keep]:
        old.unlink(missing_ok=True)
    return path
