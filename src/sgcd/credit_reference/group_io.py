"""Groups as JSON lines for `sgcd reference show`, `reference demo --write` and the trainer's run samples.

One line = one group record:

    {"task_id": str, "instruction": str,
     "prompt": {"messages": [message...], "tools": [OpenAI tool schema...]},   # optional
     "siblings": [trajectory record, ...],
     "reference": CreditReference JSON | null,                                # optional
     "step": int}                                                             # optional (trainer samples)

A sibling is the one episode JSON of `sgcd.episode_io` (`trajectory_record`: the text-level episode under
"episode" plus the token arrays); the trainer's sample files (`RUN_DIR/samples/*.jsonl`) add their per-token
extras to each sibling. Extra keys are ignored and missing optional ones default; older records (a sibling of
just {"episode": ...}) read as text-level trajectories with empty token arrays: enough for evidence,
summarizers and rendering, not for scoring.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sgcd.episode_io import (
    jsonable,
    message_from_json,
    message_to_json,
    trajectory_from_record,
    trajectory_record,
)
from sgcd.types import Observation, TrajectoryGroup


def group_to_json(group: TrajectoryGroup, reference: Any = None, **extra: Any) -> dict[str, Any]:
    """A JSON-able record of the group (siblings as episode_io records); `reference` (a CreditReference) and
    extras optional."""
    record: dict[str, Any] = {
        "task_id": group.task_id,
        "instruction": group.instruction,
        "prompt": {
            "messages": [message_to_json(m) for m in group.prompt.messages],
            "tools": jsonable(list(group.prompt.tools)),
        },
        "siblings": [trajectory_record(t) for t in group.trajectories],
        "reference": reference.model_dump(mode="json") if reference is not None else None,
    }
    record.update(extra)
    return record


def group_from_json(record: dict[str, Any]) -> TrajectoryGroup:
    """The group a record describes (token arrays as far as the siblings carry them); a missing key raises
    ValueError naming it."""
    if "siblings" not in record:
        raise ValueError("group record lacks key 'siblings'")
    trajectories = tuple(trajectory_from_record(s, group_id=i) for i, s in enumerate(record["siblings"]))
    prompt = record.get("prompt") or {}
    obs = Observation(
        messages=tuple(message_from_json(m) for m in prompt.get("messages", [])),
        tools=tuple(prompt.get("tools", [])),
    )
    task_id = record.get("task_id") or (trajectories[0].task_id if trajectories else "")
    return TrajectoryGroup(
        task_id=str(task_id),
        trajectories=trajectories,
        prompt=obs,
        instruction=record.get("instruction", ""),
    )


def iter_records(path: str | Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, record) for every group line in a JSONL file, or in RUN_DIR/samples/*.jsonl for a directory."""
    path = Path(path)
    if path.is_dir():
        files = sorted((path / "samples").glob("*.jsonl"))
        if not files:
            raise FileNotFoundError(f"{path} holds no samples/*.jsonl (not a run directory?)")
    elif path.exists():
        files = [path]
    else:
        raise FileNotFoundError(f"{path} does not exist")
    for file in files:
        with file.open(encoding="utf-8") as fh:
            for n, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    yield f"{file.name}:{n}", json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{file}:{n}: not JSON ({exc.msg})") from None
