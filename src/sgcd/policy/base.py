"""The policy contract: how rollouts, the credit reference, the trainer and evaluation talk to a model.

Two levels:

- `TokenPolicy` (transformers models): chat-template encoding, batched sampling that returns token ids with
  their sampling log-probs, and `score` = per-token log-probs of given continuations after given prefixes.
  `score` is how the teacher re-scores a trajectory: same continuation tokens, different prefix.
- `TextAgent` (scripted policies, OpenAI-compatible servers): messages in, assistant text out. Evaluation drives
  environments with either, through an `EpisodeRunner`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from sgcd.types import Episode, Message


class EndpointError(RuntimeError):
    """The model endpoint cannot serve any request (unreachable, refused the key, unknown model or path).

    Not a task failure: episode runners let it through instead of scoring the episode 0, and `sgcd eval` stops
    with one line and a non-zero exit code."""


@dataclass(frozen=True)
class SamplingParams:
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 256  # per assistant turn


@dataclass(frozen=True)
class Completion:
    """One sampled assistant turn: ids verbatim as sampled (the end-of-turn token included when emitted)."""

    token_ids: tuple[int, ...]
    logprobs: tuple[float, ...]  # sampling log-probs of token_ids under the (temperature-free) policy
    text: str
    finished: bool  # True if it ended with the end-of-turn token, False if cut at max_new_tokens
    # True if generation stopped early to let other rows start their next turn (`generate(pause_below=...)`):
    # the turn is not over; the caller continues it by generating again after prompt + token_ids.
    paused: bool = False


@dataclass
class ScoreOutput:
    """Per-token scores of continuations, right-padded to (B, T_max) with `mask` marking real positions.

    logprobs_B_T: log p(token_t | prefix, tokens_<t); entropy_B_T and topk_* when asked for.
    """

    logprobs: Any  # torch.Tensor (B, T) float32
    mask: Any  # torch.Tensor (B, T) bool
    entropy: Any = None  # torch.Tensor (B, T) or None
    topk_logprobs: Any = None  # torch.Tensor (B, T, k) or None
    topk_ids: Any = None  # torch.Tensor (B, T, k) or None


@runtime_checkable
class TokenPolicy(Protocol):
    tokenizer: Any

    def encode_prompt(self, messages: Sequence[Message], tools: Sequence[dict[str, Any]]) -> list[int]:
        """Token ids of the opening messages (tools rendered as the template allows) + the assistant header."""
        ...

    def encode_delta(self, messages: Sequence[Message]) -> list[int]:
        """Token ids appended after a sampled assistant turn: these environment messages + the next header."""
        ...

    def generate(self, prompts: list[list[int]], params: SamplingParams) -> list[Completion]:
        """One assistant turn per prompt. HFPolicy also takes `max_new` (a cap per row) and `pause_below` (see
        sgcd.rollout.loop's continuous batching); policies without them are driven turn by turn."""
        ...

    def score(
        self,
        prefixes: list[list[int]],
        continuations: list[list[int]],
        *,
        topk: int = 0,
        with_entropy: bool = False,
        grad: bool = False,
    ) -> ScoreOutput: ...


@runtime_checkable
class TextAgent(Protocol):
    def act(self, messages: Sequence[Message], tools: Sequence[dict[str, Any]]) -> str:
        """The next assistant message's text given the conversation so far."""
        ...


@runtime_checkable
class EpisodeRunner(Protocol):
    def run(self, envs: list[Any]) -> list[Episode]:
        """Run these fresh single-use envs to completion (batched where the runner can) and return episodes."""
        ...
