"""Groups as JSON lines, at the text level (episodes; no token ids), for `sgcd reference show` and run samples.

One line = one group record:

    {"task_id": str, "instruction": str,
     "prompt": {"messages": [message...], "tools": [OpenAI tool schema...]},   # optional
     "siblings": [{"episode": episode}, ...],
     "reference": CreditReference JSON | null,                                # optional
     "step": int}                                                             # optional (trainer samples)

    message = {"role", "content", "name"?, "tool_calls"?: [{"name", "arguments", "id"?}]}
    episode = {"task_id", "reward", "success", "messages": [message...], "info"?: {...},
               "steps": [{"turn", "text", "observation", "error", "final",
                          "calls": [{"name", "arguments", "output", "error", "is_write"}]}]}

The trainer's sample files (`RUN_DIR/samples/*.jsonl`) use the same keys; extra keys are ignored, missing
optional ones default. `group_from_json` rebuilds a `TrajectoryGroup` whose trajectories carry empty token
arrays: enough for evidence, summarizers and rendering, not for scoring. Info values that are not JSON are
written with repr().
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sgcd.types import CallRecord, Episode, Message, Observation, Step, ToolCall, Trajectory, TrajectoryGroup


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        if isinstance(value, dict):
            return {str(k): _jsonable(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [_jsonable(v) for v in value]
        return repr(value)


def message_to_json(m: Message) -> dict[str, Any]:
    out: dict[str, Any] = {"role": m.role, "content": m.content}
    if m.name is not None:
        out["name"] = m.name
    if m.tool_calls:
        out["tool_calls"] = [{"name": c.name, "arguments": c.arguments, "id": c.id} for c in m.tool_calls]
    return out


def message_from_json(d: dict[str, Any]) -> Message:
    calls = tuple(
        ToolCall(c["name"], dict(c.get("arguments") or {}), c.get("id")) for c in d.get("tool_calls", [])
    )
    return Message(role=d["role"], content=d.get("content") or "", tool_calls=calls, name=d.get("name"))


def episode_to_json(ep: Episode) -> dict[str, Any]:
    steps = [
        {
            "turn": s.turn, "text": s.text, "observation": s.observation, "error": s.error, "final": s.final,
            "calls": [
                {"name": c.name, "arguments": _jsonable(c.arguments), "output": c.output, "error": c.error,
                 "is_write": c.is_write}
                for c in s.calls
            ],
        }
        for s in ep.steps
    ]  # fmt: skip
    return {
        "task_id": ep.task_id,
        "reward": ep.reward,
        "success": ep.success,
        "messages": [message_to_json(m) for m in ep.messages],
        "steps": steps,
        "info": _jsonable(dict(ep.info)),
    }


def episode_from_json(d: dict[str, Any]) -> Episode:
    steps = tuple(
        Step(
            turn=int(s.get("turn", k)),
            text=s.get("text", ""),
            calls=tuple(
                CallRecord(c["name"], dict(c.get("arguments") or {}), c.get("output", ""),
                           bool(c.get("error", False)), bool(c.get("is_write", False)))
                for c in s.get("calls", [])
            ),
            observation=s.get("observation", ""),
            error=bool(s.get("error", False)),
            final=bool(s.get("final", False)),
        )
        for k, s in enumerate(d.get("steps", []))
    )  # fmt: skip
    return Episode(
        task_id=str(d.get("task_id", "")),
        messages=tuple(message_from_json(m) for m in d.get("messages", [])),
        steps=steps,
        reward=float(d["reward"]),
        success=bool(d["success"]),
        info=dict(d.get("info") or {}),
    )


def _text_trajectory(ep: Episode, index: int) -> Trajectory:
    return Trajectory(
        ep, prompt_ids=(), token_ids=(), action_mask=(), turn_ids=(), logprobs=(), group_id=index
    )


def group_to_json(group: TrajectoryGroup, reference: Any = None, **extra: Any) -> dict[str, Any]:
    """A JSON-able record of the group at the text level; `reference` (a CreditReference) and extras optional."""
    record: dict[str, Any] = {
        "task_id": group.task_id,
        "instruction": group.instruction,
        "prompt": {
            "messages": [message_to_json(m) for m in group.prompt.messages],
            "tools": _jsonable(list(group.prompt.tools)),
        },
        "siblings": [{"episode": episode_to_json(t.episode)} for t in group.trajectories],
        "reference": reference.model_dump(mode="json") if reference is not None else None,
    }
    record.update(extra)
    return record


def group_from_json(record: dict[str, Any]) -> TrajectoryGroup:
    """The group a record describes (text-level trajectories); a missing key raises ValueError naming it."""
    try:
        episodes = [episode_from_json(s["episode"]) for s in record["siblings"]]
    except KeyError as exc:
        raise ValueError(f"group record lacks key {exc.args[0]!r}") from None
    prompt = record.get("prompt") or {}
    obs = Observation(
        messages=tuple(message_from_json(m) for m in prompt.get("messages", [])),
        tools=tuple(prompt.get("tools", [])),
    )
    task_id = record.get("task_id") or (episodes[0].task_id if episodes else "")
    return TrajectoryGroup(
        task_id=str(task_id),
        trajectories=tuple(_text_trajectory(e, i) for i, e in enumerate(episodes)),
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
