"""Scripted text agents built only from a domain's hooks, for tests and for checking any environment by hand.

Hooks a Domain provides (duck-typed; airline-lite and tau3-airline both do):
    gold_turns(task) -> list[str]   the gold assistant texts in order (tool-call turns, final answer last)
    is_write_tool(name) -> bool     whether a tool changes state

Agents (spec strings, see `scripted_factory`):
    gold        the gold turns verbatim
    noisy:p     each gold turn is dropped or perturbed with probability p (seeded by task id and attempt)
    read-only   the gold turns without any turn that calls a write tool
    replay:FILE recorded assistant turns from a JSONL file, one object per line {"task_id": ..., "turns": [...]}

`gold_episode(domain, task)` plays the gold script through a fresh env and returns the full Episode (with the
tool outputs), e.g. as supervised fine-tuning data.

A scripted agent ignores what the environment answers: turn k of the episode is script item k (counted from
the assistant messages so far), and after the script runs out it answers "Done." (a final answer).
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sgcd.envs.toolcalls import format_tool_call, parse_tool_calls
from sgcd.types import Message

FALLBACK = "Done."


def _seed(*parts: Any) -> int:
    """A process-independent seed from parts (Python's hash() is salted per process)."""
    return int.from_bytes(hashlib.sha256(":".join(map(str, parts)).encode()).digest()[:8], "big")


@dataclass
class ScriptAgent:
    """A TextAgent that plays a fixed list of assistant texts, one per turn."""

    script: list[str]

    def act(self, messages: Sequence[Message], tools: Sequence[dict[str, Any]] = ()) -> str:
        k = sum(1 for m in messages if m.role == "assistant")
        return self.script[k] if k < len(self.script) else FALLBACK


def _hooks(domain: Any) -> tuple[Callable[[Any], list[str]], Callable[[str], bool]]:
    gold = getattr(domain, "gold_turns", None)
    is_write = getattr(domain, "is_write_tool", None)
    if gold is None or is_write is None:
        raise ValueError(
            f"domain {getattr(domain, 'name', domain)!r} has no gold_turns/is_write_tool hooks; "
            "scripted policies need both"
        )
    return gold, is_write


def _perturb_value(value: Any, rng: random.Random) -> Any:
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + rng.choice((-1, 1))
    if isinstance(value, str):
        return value[:-1] + ("X" if not value.endswith("X") else "Y") if value else "X"
    return value


def perturb_turn(text: str, rng: random.Random) -> str:
    """A wrong version of one gold turn: one argument of one call changed, or the final answer made vague."""
    calls, _ = parse_tool_calls(text)
    if not calls:
        return "I have taken care of your request."
    out = []
    target = rng.randrange(len(calls))
    for i, call in enumerate(calls):
        args = dict(call.arguments)
        if i == target and args:
            key = rng.choice(sorted(args))
            args[key] = _perturb_value(args[key], rng)
        out.append(format_tool_call(call.name, args))
    return "".join(out)


def noisy_script(turns: list[str], p: float, rng: random.Random) -> list[str]:
    """Each turn kept with prob 1-p, else dropped or perturbed (equal odds). The last (final) turn is never
    dropped, only perturbed, so a noisy script still ends with an answer."""
    out: list[str] = []
    for i, turn in enumerate(turns):
        if rng.random() >= p:
            out.append(turn)
        elif i < len(turns) - 1 and rng.random() < 0.5:
            continue
        else:
            out.append(perturb_turn(turn, rng))
    return out


def read_only_script(turns: list[str], is_write: Callable[[str], bool]) -> list[str]:
    """The gold turns without those that call any write tool."""
    keep = []
    for turn in turns:
        calls, _ = parse_tool_calls(turn)
        if not any(is_write(c.name) for c in calls):
            keep.append(turn)
    return keep


def load_replay(path: str | Path) -> dict[str, list[str]]:
    """task_id -> recorded assistant turns, from JSONL lines {"task_id": str, "turns": [str, ...]}."""
    table: dict[str, list[str]] = {}
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            if not isinstance(row, dict):
                raise TypeError("a line must be a JSON object")
            turns = row["turns"]
            if not isinstance(row["task_id"], str) or not isinstance(turns, list):
                raise TypeError("task_id must be a string and turns a list of strings")
            if not all(isinstance(t, str) for t in turns):
                raise TypeError("every turn must be a string")
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ValueError(
                f"{path}:{n}: bad replay line ({exc}); want {{'task_id': ..., 'turns': [...]}}"
            ) from None
        table[row["task_id"]] = list(turns)
    return table


@dataclass
class ScriptedFactory:
    """task -> a fresh ScriptAgent, for one scripted spec over one domain. `attempts` seeds noisy retries."""

    kind: str
    domain: Any
    p: float = 0.0
    seed: int = 0
    replay: dict[str, list[str]] = field(default_factory=dict)
    attempts: dict[str, int] = field(default_factory=dict)

    def __call__(self, task: Any) -> ScriptAgent:
        if self.kind == "replay":
            return ScriptAgent(list(self.replay.get(task.task_id, [FALLBACK])))
        gold, is_write = _hooks(self.domain)
        turns = list(gold(task))
        if self.kind == "read-only":
            return ScriptAgent(read_only_script(turns, is_write))
        if self.kind == "noisy":
            n = self.attempts.get(task.task_id, 0)
            self.attempts[task.task_id] = n + 1
            rng = random.Random(_seed("noisy", self.seed, self.p, task.task_id, n))
            return ScriptAgent(noisy_script(turns, self.p, rng))
        return ScriptAgent(turns)


def scripted_factory(spec: str, domain: Any, seed: int = 0) -> ScriptedFactory:
    """Parse `gold`, `noisy:P`, `read-only` or `replay:FILE` (an optional `scripted:` prefix is allowed)."""
    body = spec.removeprefix("scripted:")
    kind, _, arg = body.partition(":")
    if kind == "gold" and not arg:
        return ScriptedFactory("gold", domain, seed=seed)
    if kind == "read-only" and not arg:
        return ScriptedFactory("read-only", domain, seed=seed)
    if kind == "noisy":
        try:
            p = float(arg)
        except ValueError:
            raise ValueError(f"scripted policy {spec!r}: noisy needs a probability, e.g. noisy:0.3") from None
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"scripted policy {spec!r}: p must be in [0, 1], got {p}")
        return ScriptedFactory("noisy", domain, p=p, seed=seed)
    if kind == "replay" and arg:
        return ScriptedFactory("replay", domain, replay=load_replay(arg), seed=seed)
    raise ValueError(f"unknown scripted policy {spec!r}; use gold, noisy:P, read-only or replay:FILE")


def play(domain: Any, task: Any, agent: Any) -> Any:
    """Run one episode of `agent` (a TextAgent) on a fresh env for `task`; returns the finished Episode."""
    env = domain.make_env(task)
    obs = env.reset()
    messages: list[Message] = list(obs.messages)
    while True:
        text = agent.act(messages, obs.tools)
        result = env.step(text)
        messages += [Message(role="assistant", content=text), *result.messages]
        if result.done:
            return result.info["episode"]


def gold_episode(domain: Any, task: Any) -> Any:
    """The gold trajectory as a full Episode (messages with tool outputs included): SFT data, docs, checks."""
    return play(domain, task, scripted_factory("gold", domain)(task))
