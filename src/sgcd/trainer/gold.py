"""Scripted episodes recorded by the rollout loop: the SFT warm start's training data.

`GoldScript` stands in for a TokenPolicy and "samples" given assistant texts (each tokenized alone + the
end-of-turn token), so `run_episode` records prompt ids, observation deltas and the action mask exactly as an
RL rollout would. `gold_trajectories` plays the domain's gold turns (the clean SFT examples);
`scripted_trajectory` plays any script (the scripted siblings of `sgcd.trainer.sft_reference`). No departure
from the paper: this is data plumbing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sgcd.policy.base import Completion, SamplingParams
from sgcd.types import Trajectory


@dataclass
class GoldScript:
    """A TokenPolicy stand-in whose turns are the given gold texts, tokenized alone (+ end-of-turn)."""

    policy: Any
    turns: list[str]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.policy, name)

    def generate(self, prompts: list[list[int]], params: SamplingParams) -> list[Completion]:
        out = []
        for _ in prompts:
            text = self.turns.pop(0)
            ids = self.policy.tokenizer(text, add_special_tokens=False)["input_ids"] + [self.policy.eot_id]
            out.append(Completion(tuple(ids), (0.0,) * len(ids), text, True))
        return out


def scripted_trajectory(policy: Any, domain: Any, task: Any, turns: list[str]) -> Trajectory:
    """The episode of the given assistant turns on a fresh env of `task`, recorded by the rollout loop."""
    from sgcd.rollout import RolloutLimits, run_episode

    limits = RolloutLimits(max_turns=64, max_tokens=10**6)
    params = SamplingParams(max_new_tokens=10**6)
    return run_episode(GoldScript(policy, list(turns)), domain.make_env(task), params, limits)


def gold_trajectories(policy: Any, domain: Any, tasks: list[Any], max_tokens: int = 4096) -> list[Trajectory]:
    """Gold episodes recorded by the rollout loop (reward-1 ones only, shorter than max_tokens)."""
    out = []
    for task in tasks:
        traj = scripted_trajectory(policy, domain, task, domain.gold_turns(task))
        if traj.success and len(traj.token_ids) <= max_tokens:
            out.append(traj)
    return out
