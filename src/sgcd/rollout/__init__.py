"""Multi-turn rollouts: run_episode / run_group record tokens, action mask and turn ids as they happen."""

from sgcd.rollout.loop import RolloutLimits, make_group, run_batch, run_episode, run_group, run_groups
from sgcd.rollout.runner import PolicyRunner

__all__ = [
    "PolicyRunner",
    "RolloutLimits",
    "make_group",
    "run_batch",
    "run_episode",
    "run_group",
    "run_groups",
]
