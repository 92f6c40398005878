"""Test doubles for rollouts: a scripted single-use env and a scripted TokenPolicy with a tiny word tokenizer."""

from __future__ import annotations

from dataclasses import dataclass, field

from sgcd.envs.base import Task
from sgcd.policy.base import Completion, SamplingParams
from sgcd.types import Message, Observation, StepResult

TOOLS = (
    {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}}},
)


@dataclass
class FakeEnv:
    """Answers every tool-call turn with a tool message; the first turn without `<tool_call>` ends it.

    reward 1.0 iff the final text contains `goal`; `max_turns` ends it with reward 0 (like ToolEnv's limit).
    """

    task: Task
    goal: str = "done"
    max_turns: int = 99
    always_continue: bool = False  # answer every turn with a tool message until max_turns
    turns: int = 0
    seen: list[str] = field(default_factory=list)

    def reset(self) -> Observation:
        msgs = (Message("system", "You are an agent."), Message("user", self.task.instruction))
        return Observation(messages=msgs, tools=TOOLS)

    def step(self, assistant_text: str) -> StepResult:
        self.turns += 1
        self.seen.append(assistant_text)
        if "<tool_call>" not in assistant_text and not self.always_continue:
            reward = 1.0 if self.goal in assistant_text else 0.0
            return StepResult(messages=(), done=True, reward=reward, info={"reason": "final_answer"})
        if self.turns >= self.max_turns:
            return StepResult(messages=(), done=True, reward=0.0, info={"reason": "max_turns"})
        return StepResult(messages=(Message("tool", f"result {self.turns}", name="lookup"),), done=False)


def fake_task(i: int = 0) -> Task:
    return Task(task_id=f"t{i}", split="train", family="fake", instruction=f"find item {i}")


class WordTokenizer:
    """id <-> word piece; decode concatenates pieces. Enough for the recorder's token-type and decode needs."""

    def __init__(self, pieces: dict[int, str]) -> None:
        self.pieces = pieces

    def decode(self, ids, skip_special_tokens: bool = False) -> str:
        return "".join("" if (skip_special_tokens and i == EOT) else self.pieces[i] for i in ids)


EOT = 2


@dataclass
class ScriptedPolicy:
    """A TokenPolicy whose turns are scripted: each generate() call pops one completion per prompt.

    encode_prompt -> `prompt`; encode_delta(messages) -> `delta` (same every time); records every context.
    """

    script: list[tuple[tuple[int, ...], bool]]  # (ids, finished) per turn, in order
    pieces: dict[int, str]
    prompt: tuple[int, ...] = (100, 101, 102)
    delta: tuple[int, ...] = (200, 201)
    contexts: list[list[int]] = field(default_factory=list)
    eot_id: int = EOT

    def __post_init__(self) -> None:
        self.tokenizer = WordTokenizer(self.pieces)

    def encode_prompt(self, messages, tools):
        return list(self.prompt)

    def encode_delta(self, messages):
        return list(self.delta)

    def decode(self, ids):
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    def generate(self, prompts, params: SamplingParams):
        out = []
        for p in prompts:
            self.contexts.append(list(p))
            ids, finished = self.script.pop(0)
            lps = tuple(-(k + 1) / 10 for k in range(len(ids)))
            out.append(Completion(ids, lps, self.decode(ids[:-1] if finished else ids), finished))
        return out
