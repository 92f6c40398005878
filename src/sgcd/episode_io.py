"""The episode JSON: the one definition of how a `Trajectory` (and its text-level `Episode`) is written as JSON.

Every writer of an episode uses `trajectory_record` and every reader `trajectory_from_record`: the trainer's
run samples (`RUN_DIR/samples/*.jsonl`, one record per sibling plus the trainer's per-token extras), the
group files of `sgcd reference` (credit_reference.group_io), and verl's agent-loop record (plus verl's extras).
Writers may add keys of their own on top; readers ignore keys they do not know.

A trajectory record (RECORD_VERSION 1):

    {"version": 1,
     "task_id": str, "reward": float, "success": bool,   # the outcome; the same values as in "episode"
     "truncated": bool, "group_id": int,
     "episode": episode,
     "prompt_ids": [int],                                 # the clean prompt (P tokens)
     "token_ids": [int], "action_mask": [0|1], "turn_ids": [int], "logprobs": [float],   # T each
     "token_types": [int] | null}                         # T codes of types.TOKEN_TYPES; null: not recorded

    episode = {"task_id", "reward", "success", "messages": [message...], "info": {...},
               "steps": [{"turn", "text", "observation", "error", "final",
                          "calls": [{"name", "arguments", "output", "error", "is_write"}]}]}
    message = {"role", "content", "name"?, "tool_calls"?: [{"name", "arguments", "id"}]}

Older records have no "version" (the trainer's samples before it, verl's records before it): their missing
token arrays read as empty (a text-level trajectory) and missing sampling log-probs as zeros; a record from a
newer version is refused with a one-line error. Info and argument values that are not JSON are written with
repr(). Imports only sgcd.types.
"""

from __future__ import annotations

import json
from typing import Any

from sgcd.types import CallRecord, Episode, Message, Step, ToolCall, Trajectory

RECORD_VERSION = 1
TOKEN_FIELDS = ("token_ids", "action_mask", "turn_ids", "logprobs", "token_types")  # T entries each
RECORD_FIELDS = ("version", "task_id", "reward", "success", "truncated", "group_id", "episode", "prompt_ids",
                 *TOKEN_FIELDS)  # fmt: skip


def jsonable(value: Any) -> Any:
    """`value` if it is JSON already, else the same structure with non-JSON leaves written as repr()."""
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        if isinstance(value, dict):
            return {str(k): jsonable(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [jsonable(v) for v in value]
        return repr(value)


def message_to_json(m: Message) -> dict[str, Any]:
    out: dict[str, Any] = {"role": m.role, "content": m.content}
    if m.name is not None:
        out["name"] = m.name
    if m.tool_calls:
        out["tool_calls"] = [
            {"name": c.name, "arguments": jsonable(c.arguments), "id": c.id} for c in m.tool_calls
        ]
    return out


def message_from_json(d: dict[str, Any]) -> Message:
    calls = tuple(
        ToolCall(c["name"], dict(c.get("arguments") or {}), c.get("id")) for c in d.get("tool_calls") or []
    )
    return Message(role=d["role"], content=d.get("content") or "", tool_calls=calls, name=d.get("name"))


def episode_to_json(ep: Episode) -> dict[str, Any]:
    steps = [
        {
            "turn": s.turn, "text": s.text, "observation": s.observation, "error": s.error, "final": s.final,
            "calls": [
                {"name": c.name, "arguments": jsonable(c.arguments), "output": c.output, "error": c.error,
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
        "info": jsonable(dict(ep.info)),
    }


def episode_from_json(d: dict[str, Any]) -> Episode:
    steps = tuple(
        Step(
            turn=int(s.get("turn", k)),
            text=s.get("text", ""),
            calls=tuple(
                CallRecord(c["name"], dict(c.get("arguments") or {}), c.get("output", ""),
                           bool(c.get("error", False)), bool(c.get("is_write", False)))
                for c in s.get("calls") or []
            ),
            observation=s.get("observation", ""),
            error=bool(s.get("error", False)),
            final=bool(s.get("final", False)),
        )
        for k, s in enumerate(d.get("steps") or [])
    )  # fmt: skip
    return Episode(
        task_id=str(d.get("task_id", "")),
        messages=tuple(message_from_json(m) for m in d.get("messages") or []),
        steps=steps,
        reward=float(d["reward"]),
        success=bool(d["success"]),
        info=dict(d.get("info") or {}),
    )


def trajectory_record(traj: Trajectory) -> dict[str, Any]:
    """The JSON record of one trajectory (format in the module docstring); `json.dumps` takes it as it is."""
    ep = traj.episode
    return {
        "version": RECORD_VERSION,
        "task_id": ep.task_id,
        "reward": float(ep.reward),
        "success": bool(ep.success),
        "truncated": bool(traj.truncated),
        "group_id": int(traj.group_id),
        "episode": episode_to_json(ep),
        "prompt_ids": [int(x) for x in traj.prompt_ids],
        "token_ids": [int(x) for x in traj.token_ids],
        "action_mask": [int(x) for x in traj.action_mask],
        "turn_ids": [int(x) for x in traj.turn_ids],
        "logprobs": [float(x) for x in traj.logprobs],
        "token_types": [int(x) for x in traj.token_types] if traj.token_types else None,
    }


def with_success(record: dict[str, Any], success: bool) -> dict[str, Any]:
    """A copy of `record` whose outcome label is `success` (at the top and in its episode alike)."""
    return {**record, "success": bool(success), "episode": {**record["episode"], "success": bool(success)}}


def record_version(record: dict[str, Any]) -> int:
    """The record's format version (0: written before the key existed); ValueError for one this code cannot
    read (newer, or not an integer)."""
    version = record.get("version", 0)
    if isinstance(version, bool) or not isinstance(version, int) or not 0 <= version <= RECORD_VERSION:
        raise ValueError(
            f"episode record version {version!r} is not one this sgcd reads (0..{RECORD_VERSION}); upgrade sgcd"
        )
    return version


def trajectory_from_record(record: dict[str, Any], group_id: int = 0) -> Trajectory:
    """The Trajectory a record describes; older records read as the module docstring says. `group_id` is the
    default for records that carry none. A malformed record raises ValueError naming the problem."""
    record_version(record)
    if "episode" not in record:
        raise ValueError("episode record lacks key 'episode'")
    try:
        ep = episode_from_json(record["episode"])
    except KeyError as exc:
        raise ValueError(f"episode record: episode lacks key {exc.args[0]!r}") from None
    token_ids = tuple(int(x) for x in record.get("token_ids") or ())
    T = len(token_ids)

    def column(name: str, cast: type, default: Any) -> tuple:
        values = record.get(name)
        return tuple(cast(x) for x in values) if values else (default,) * T

    return Trajectory(
        ep,
        prompt_ids=tuple(int(x) for x in record.get("prompt_ids") or ()),
        token_ids=token_ids,
        # pre-version records: a text-level record has no token arrays; the trainer's old samples had no
        # sampling log-probs (zeros, as on non-action tokens)
        action_mask=column("action_mask", int, 0) if T else (),
        turn_ids=column("turn_ids", int, -1) if T else (),
        logprobs=column("logprobs", float, 0.0) if T else (),
        truncated=bool(record.get("truncated", False)),
        group_id=int(record.get("group_id", group_id)),
        token_types=tuple(int(x) for x in record.get("token_types") or ()) if T else (),
    )
