"""The token recorder of one episode: sampled ids verbatim, environment deltas, mask, turn ids and token types.

Everything a Trajectory stores is written at the moment it happens, never recovered by re-tokenizing text:
an assistant turn appends the policy's sampled ids (mask 1, its turn index, its sampling log-probs, its token
types); an environment answer appends `policy.encode_delta(messages)` (mask 0, turn -1, log-prob 0, type 0).
A turn cut at max_new_tokens has no end-of-turn token, so one is appended as template glue (mask 0) before the
delta, keeping the context identical to what the chat template would render.

Token types (types.TOKEN_TYPES): a turn with a `<tool_call>` tag marks the tokens that overlap a
`<tool_call>...</tool_call>` span (an unclosed one runs to the end of the turn) as 2 and the rest as 1
(reasoning); a turn without one is an answer, all 3. The end-of-turn token takes the turn's non-call type.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from sgcd.policy.base import Completion
from sgcd.types import Episode, Message, Observation, Step, StepResult, Trajectory

OBSERVATION, REASONING, TOOL_CALL, ANSWER = 0, 1, 2, 3
_CALL_SPAN = re.compile(r"<tool_call>.*?(</tool_call>|$)", re.DOTALL)


def token_char_spans(tokenizer: Any, ids: list[int]) -> list[tuple[int, int]]:
    """[start, end) character span of each token in decode(ids) (special tokens kept)."""
    pieces = [tokenizer.decode([i]) for i in ids]
    full = tokenizer.decode(ids)
    if sum(len(p) for p in pieces) != len(full):  # multi-byte characters split across tokens: go cumulative
        ends = [len(tokenizer.decode(ids[: k + 1])) for k in range(len(ids))]
    else:
        ends, total = [], 0
        for p in pieces:
            total += len(p)
            ends.append(total)
    return [(ends[k - 1] if k else 0, ends[k]) for k in range(len(ids))]


def turn_token_types(tokenizer: Any, ids: list[int]) -> list[int]:
    """Type code of each sampled token of one assistant turn (see module docstring)."""
    text = tokenizer.decode(ids)
    spans = [m.span() for m in _CALL_SPAN.finditer(text)]
    if not spans:
        return [ANSWER] * len(ids)
    out = []
    for start, end in token_char_spans(tokenizer, ids):
        inside = any(start < e and end > s for s, e in spans)
        out.append(TOOL_CALL if inside else REASONING)
    return out


@dataclass
class EpisodeRecorder:
    """Running state of one episode: the env, its opening, and the token arrays built so far."""

    env: Any
    opening: Observation
    prompt_ids: list[int]
    token_ids: list[int] = field(default_factory=list)
    action_mask: list[int] = field(default_factory=list)
    turn_ids: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    token_types: list[int] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    turns: int = 0
    last: StepResult | None = None
    done: bool = False
    truncated: bool = False
    reason: str = ""

    @classmethod
    def start(cls, policy: Any, env: Any) -> EpisodeRecorder:
        opening = env.reset()
        ids = policy.encode_prompt(opening.messages, opening.tools)
        return cls(env=env, opening=opening, prompt_ids=list(ids), messages=list(opening.messages))

    @property
    def context(self) -> list[int]:
        return self.prompt_ids + self.token_ids

    def add_turn(self, policy: Any, completion: Completion) -> None:
        ids = list(completion.token_ids)
        self.token_ids += ids
        self.action_mask += [1] * len(ids)
        self.turn_ids += [self.turns] * len(ids)
        self.logprobs += list(completion.logprobs)
        self.token_types += turn_token_types(policy.tokenizer, ids)
        self.turns += 1

    def add_observation(self, ids: list[int]) -> None:
        self.token_ids += ids
        self.action_mask += [0] * len(ids)
        self.turn_ids += [-1] * len(ids)
        self.logprobs += [0.0] * len(ids)
        self.token_types += [OBSERVATION] * len(ids)

    def stop(self, reason: str) -> None:
        self.done, self.truncated, self.reason = True, True, reason

    def step_env(self, policy: Any, completion: Completion, max_turns: int) -> None:
        """Send the turn's text to the env; append its answer (and template glue) unless the episode ends."""
        result = self.env.step(completion.text)
        self.last = result
        self.messages.append(Message(role="assistant", content=completion.text))
        self.messages += list(result.messages)
        step = result.info.get("step")
        self.steps.append(
            step if isinstance(step, Step) else _step_from(self.turns - 1, completion.text, result)
        )
        if result.done:
            self.done, self.reason = True, str(result.info.get("reason", "done"))
            return
        if self.turns >= max_turns:
            self.stop(f"max_turns ({max_turns}) reached")
            return
        glue = [] if completion.finished else [policy.eot_id]
        self.add_observation(glue + list(policy.encode_delta(result.messages)))

    def trajectory(self, group_id: int = 0) -> Trajectory:
        return Trajectory(
            episode=self.episode(),
            prompt_ids=tuple(self.prompt_ids),
            token_ids=tuple(self.token_ids),
            action_mask=tuple(self.action_mask),
            turn_ids=tuple(self.turn_ids),
            logprobs=tuple(self.logprobs),
            truncated=self.truncated,
            group_id=group_id,
            token_types=tuple(self.token_types),
        )

    def episode(self) -> Episode:
        """The env's own Episode when it gave one (or can make one), else one built from the messages."""
        ep = self.last.info.get("episode") if self.last is not None else None
        if ep is None and self.truncated and hasattr(self.env, "episode"):
            ep = self.env.episode()
        if not isinstance(ep, Episode):
            reward = self.last.reward if (self.last is not None and self.last.done) else 0.0
            ep = Episode(
                task_id=getattr(getattr(self.env, "task", None), "task_id", ""),
                messages=tuple(self.messages),
                steps=tuple(self.steps),
                reward=reward,
                success=reward >= 1.0 and not self.truncated,
                info={"reason": self.reason},
            )
        if self.truncated:
            ep = Episode(
                ep.task_id, ep.messages, ep.steps, ep.reward, False, {**ep.info, "truncated": self.reason}
            )
        return ep


def _step_from(turn: int, text: str, result: StepResult) -> Step:
    observation = "\n".join(m.content for m in result.messages)
    return Step(
        turn=turn, text=text, observation=observation, final=result.done and "<tool_call>" not in text
    )
