"""Shared records: what an episode is at the text level and at the token level.

Everyone (environments, policies, rollouts, credit reference, trainer, eval, report) speaks these types.
They are plain frozen dataclasses so they pickle, compare and print well; use `dataclasses.replace` to derive.

Text level (every agent, scripted or model):
    Message, ToolCall, CallRecord, Step, Observation, StepResult, Episode
Token level (model policies only; what the trainer consumes):
    Trajectory (an Episode plus prompt ids, trajectory ids, action mask, turn ids, sampling log-probs),
    TrajectoryGroup (the G siblings of one task).

Token layout of a Trajectory (suffix _T = the trajectory axis, after the clean prompt):

    prompt_ids   [system, tools, first user turn, assistant header]       -- the clean prompt, P tokens
    token_ids_T  [assistant turn 0][obs 0][assistant turn 1][obs 1]...   -- T tokens
    action_mask  [1 1 ... 1       ][0 ...][1 1 ...          ][0 ...]     -- 1 exactly on sampled tokens
    turn_ids     [0 0 ... 0       ][-1..][1 1 ...          ][-1..]       -- assistant turn index, -1 elsewhere
    logprobs     [sampling log-probs on action tokens, 0.0 elsewhere]

The teacher re-scores `token_ids_T` verbatim after a different prefix; the tokens align by their offset from the
end of the prefix, which is why prompt and trajectory are stored apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ToolCall:
    """One tool call as the model wrote it: a name and JSON arguments."""

    name: str
    arguments: dict[str, Any]
    id: str | None = None


@dataclass(frozen=True)
class Message:
    """One chat message. role: system | user | assistant | tool."""

    role: str
    content: str
    tool_calls: tuple[ToolCall, ...] = ()
    name: str | None = None  # tool name for role == "tool"

    def to_openai(self) -> dict[str, Any]:
        """The message as a plain OpenAI-style dict (tool calls kept in the text, Hermes style)."""
        out: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.name is not None:
            out["name"] = self.name
        return out


@dataclass(frozen=True)
class CallRecord:
    """What happened to one tool call during an episode."""

    name: str
    arguments: dict[str, Any]
    output: str
    error: bool = False  # malformed, unknown tool, bad arguments, or the tool itself refused
    is_write: bool = False  # the tool changes the environment's state (book, cancel, update, ...)


@dataclass(frozen=True)
class Step:
    """One assistant turn and what the environment answered (the summarizer and report read these)."""

    turn: int
    text: str  # the assistant's raw text for this turn
    calls: tuple[CallRecord, ...] = ()
    observation: str = ""  # the environment's answer, as the model saw it
    error: bool = False  # any call in this turn failed, or the turn was malformed
    final: bool = False  # this turn is a message with no tool call (a final answer / reply to the user)


@dataclass(frozen=True)
class Observation:
    """What `Env.reset()` returns: the opening messages and the tool schemas (OpenAI function format)."""

    messages: tuple[Message, ...]
    tools: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True)
class StepResult:
    """What `Env.step(assistant_text)` returns.

    messages: what the environment appends to the conversation (tool results, a user turn); empty when done.
    reward: the verifier's reward, set when done (0.0 before).
    info: diagnostics; on the last step it carries the verifier's breakdown and `step` the turn's Step record.
    """

    messages: tuple[Message, ...]
    done: bool
    reward: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Episode:
    """A finished episode at the text level: what any agent produces, and what evaluation scores."""

    task_id: str
    messages: tuple[Message, ...]
    steps: tuple[Step, ...]
    reward: float
    success: bool
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def final_answer(self) -> str:
        for step in reversed(self.steps):
            if step.final:
                return step.text
        return ""


# Token types (Trajectory.token_types): what each trajectory token is, for diagnostics split by type (§8).
TOKEN_TYPES = {0: "observation", 1: "reasoning", 2: "tool_call", 3: "answer"}
TOKEN_CODE = {name: code for code, name in TOKEN_TYPES.items()}  # "tool_call" -> 2
# (core/credit_stats.py keeps a copy, as core imports nothing outside core; a test checks the two are equal.)


@dataclass(frozen=True)
class Trajectory:
    """An Episode plus the exact tokens a model policy sampled, recorded during the rollout."""

    episode: Episode
    prompt_ids: tuple[int, ...]
    token_ids: tuple[int, ...]
    action_mask: tuple[int, ...]
    turn_ids: tuple[int, ...]
    logprobs: tuple[float, ...]
    truncated: bool = False
    group_id: int = 0
    # Per-token type, recorded at rollout time like the mask (codes in TOKEN_TYPES); () when not recorded.
    token_types: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        n = len(self.token_ids)
        if not (len(self.action_mask) == len(self.turn_ids) == len(self.logprobs) == n) or (
            self.token_types and len(self.token_types) != n
        ):
            raise ValueError(
                f"trajectory {self.episode.task_id}: token_ids ({n}), action_mask ({len(self.action_mask)}), "
                f"turn_ids ({len(self.turn_ids)}) and logprobs ({len(self.logprobs)}) must have equal length"
            )

    @property
    def task_id(self) -> str:
        return self.episode.task_id

    @property
    def reward(self) -> float:
        return self.episode.reward

    @property
    def success(self) -> bool:
        return self.episode.success


@dataclass(frozen=True)
class TrajectoryGroup:
    """The G siblings of one task, sampled from the same policy on the same clean prompt.

    prompt: the opening messages and tools every sibling saw (Env.reset()); the teacher prefix is built from it
    by adding the credit reference to the system message.
    """

    task_id: str
    trajectories: tuple[Trajectory, ...]
    prompt: Observation
    instruction: str = ""  # the task as the agent was given it (for the summarizer)

    @property
    def rewards(self) -> list[float]:
        return [t.reward for t in self.trajectories]

    @property
    def is_mixed(self) -> bool:
        s = [t.success for t in self.trajectories]
        return any(s) and not all(s)
