"""A demo and test aid: a TokenPolicy that plays a task's gold turns in some episodes and samples in the rest.

The `tiny` test model has random weights, so on airline-lite it never succeeds: every group fails, nothing is
mixed, every advantage is 0 and a training step changes nothing. To exercise the whole SGCD-in-TRL path on CPU
(mixed groups, env-masked multi-turn tokens, non-zero token advantages, a real update), `GoldGuidedPolicy`
makes each episode, with probability `p` (drawn at its first turn from a seeded generator), play the domain's
gold assistant turns instead of sampling. Gold tokens are given the wrapped model's log-probs (`score`), so the
trajectory records look like sampled ones. The result is off-policy data: this is for plumbing tests and the
CPU demo only, never for real training (a real model needs no guide).

How an episode is followed across turns: `encode_prompt` notes the prompt of each known task (matched by its
user message = the task instruction); after a gold turn the context it produced is remembered, and a later
context that extends it is the same episode's next turn.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from sgcd.policy.base import Completion, SamplingParams
from sgcd.types import Message


class GoldGuidedPolicy:
    """Wraps a TokenPolicy (HFPolicy); every other attribute is the wrapped policy's."""

    def __init__(self, policy: Any, domain: Any, split: str = "train", p: float = 0.5, seed: int = 0) -> None:
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"GoldGuidedPolicy: p must be in [0, 1], got {p}")
        self.policy, self.p = policy, p
        self.generator = torch.Generator().manual_seed(seed)
        self._gold = {t.instruction: list(domain.gold_turns(t)) for t in domain.tasks(split)}
        self._prompts: dict[tuple[int, ...], list[str]] = {}  # prompt ids -> gold turns
        self._next: dict[tuple[int, ...], tuple[list[str], int]] = {}  # context so far -> (gold, next turn)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.policy, name)

    def encode_prompt(self, messages: Sequence[Message], tools: Sequence[dict[str, Any]] = ()) -> list[int]:
        ids = self.policy.encode_prompt(messages, tools)
        user = next((m.content for m in messages if m.role == "user"), None)
        if user in self._gold:
            self._prompts[tuple(ids)] = self._gold[user]
        return ids

    def generate(self, prompts: list[list[int]], params: SamplingParams) -> list[Completion]:
        plan = [self._gold_turn(list(c)) for c in prompts]
        sample_rows = [i for i, g in enumerate(plan) if g is None]
        gold_rows = [i for i, g in enumerate(plan) if g is not None]
        out: list[Completion | None] = [None] * len(prompts)
        if sample_rows:
            sampled = self.policy.generate([prompts[i] for i in sample_rows], params)
            for i, comp in zip(sample_rows, sampled):
                out[i] = comp
        if gold_rows:  # all gold turns of this call scored in one forward
            ids = [self._gold_ids(*plan[i]) for i in gold_rows]
            logprobs_R_T = self.policy.score([list(prompts[i]) for i in gold_rows], ids).logprobs
            for r, i in enumerate(gold_rows):
                gold, k = plan[i]
                if len(self._next) > 4096:
                    self._next.clear()
                self._next[tuple(list(prompts[i]) + ids[r])] = (gold, k + 1)
                lps = tuple(logprobs_R_T[r, : len(ids[r])].tolist())
                out[i] = Completion(tuple(ids[r]), lps, self.policy.decode(ids[r][:-1]), True)
        return out  # type: ignore[return-value]

    def _gold_turn(self, context: list[int]) -> tuple[list[str], int] | None:
        """(gold turns, index of the turn to play) when this context belongs to a guided episode, else None."""
        key = tuple(context)
        if key in self._prompts:  # first turn: guide this episode with probability p
            draw = float(torch.rand((), generator=self.generator))
            return (self._prompts[key], 0) if draw < self.p else None
        for prev, (gold, k) in self._next.items():
            if len(context) > len(prev) and tuple(context[: len(prev)]) == prev:
                return (gold, k) if k < len(gold) else None
        return None

    def _gold_ids(self, gold: list[str], k: int) -> list[int]:
        return list(self.policy.tokenizer(gold[k], add_special_tokens=False)["input_ids"]) + [
            self.policy.eot_id
        ]
