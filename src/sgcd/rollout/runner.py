"""PolicyRunner: an EpisodeRunner over a TokenPolicy, so evaluation drives model policies like any agent.

`sgcd eval --policy MODEL` calls `PolicyRunner.from_spec(spec, sampling, device, batch_size)`; `run(envs)`
advances all envs together with `run_batch` and returns their text-level Episodes (tokens are dropped).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from sgcd.policy.base import SamplingParams
from sgcd.rollout.loop import RolloutLimits, run_batch
from sgcd.types import Episode


@dataclass
class PolicyRunner:
    policy: Any  # a TokenPolicy (HFPolicy)
    sampling: SamplingParams = field(default_factory=SamplingParams)
    limits: RolloutLimits = field(default_factory=RolloutLimits)

    @classmethod
    def from_spec(
        cls,
        spec: str,
        sampling: SamplingParams | None = None,
        device: str = "cpu",
        batch_size: int = 32,
        dtype: str = "float32",
        seed: int = 0,
        max_turns: int = 16,
        max_tokens: int = 4096,
        pause_share: float = 0.5,
    ) -> PolicyRunner:
        """Load model `spec` (see sgcd.policy.models.resolve_model) as a runner; `pause_share`: continuous
        batching (sgcd.rollout.loop; 0 = each round waits for its longest turn)."""
        from sgcd.policy.models import load_policy

        policy = load_policy(spec, device=device, dtype=dtype, seed=seed)
        limits = RolloutLimits(
            max_turns=max_turns, max_tokens=max_tokens, batch_size=batch_size, pause_share=pause_share
        )
        return cls(policy=policy, sampling=sampling or SamplingParams(), limits=limits)

    def run(self, envs: list[Any]) -> list[Episode]:
        return [t.episode for t in run_batch(self.policy, envs, self.sampling, self.limits)]

    def run_streaming(self, envs: list[Any], batch_size: int, on_episode: Any = None) -> list[Episode]:
        """All envs with at most `batch_size` in flight (a slot is refilled as soon as an episode ends);
        on_episode(episode) as each ends (evaluation's progress)."""
        limits = replace(self.limits, batch_size=batch_size)
        done = None if on_episode is None else (lambda i, rec: on_episode(rec.episode()))
        return [t.episode for t in run_batch(self.policy, envs, self.sampling, limits, done)]
