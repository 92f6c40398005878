"""SGCD inside TRL's GRPOTrainer (extra `sgcd[trl]`, tested with trl>=1.16,<1.17).

    from trl import GRPOConfig
    from sgcd.envs import get_domain
    from sgcd.integrations.trl import SGCDGRPOTrainer, SGCDOptions, SGCDRollout

    rollout = SGCDRollout(get_domain("airline-lite"))
    trainer = SGCDGRPOTrainer(model, rollout=rollout, sgcd=SGCDOptions(teacher="pi_old"), args=GRPOConfig(...))
    trainer.train()

See docs/integrations_trl.md. Importing this package imports TRL; a missing TRL is a one-line error.
"""

from __future__ import annotations

try:
    import trl  # noqa: F401
except ModuleNotFoundError as exc:  # pragma: no cover - exercised only without the extra
    raise ModuleNotFoundError(
        "sgcd.integrations.trl needs TRL: pip install 'sgcd[trl]' (tested with trl>=1.16,<1.17)"
    ) from exc

from sgcd.integrations.trl.compat import TESTED_RANGE, TRLCompatError, check_trl
from sgcd.integrations.trl.guided import GoldGuidedPolicy
from sgcd.integrations.trl.rollout import RolloutBatch, SGCDRollout, env_reward, task_dataset
from sgcd.integrations.trl.trainer import SGCDGRPOTrainer, SGCDOptions, SGCDStep, sgcd_token_advantages
from sgcd.integrations.trl.vllm import VLLMServerPolicy

__all__ = [
    "TESTED_RANGE",
    "GoldGuidedPolicy",
    "RolloutBatch",
    "SGCDGRPOTrainer",
    "SGCDOptions",
    "SGCDRollout",
    "SGCDStep",
    "TRLCompatError",
    "VLLMServerPolicy",
    "check_trl",
    "env_reward",
    "sgcd_token_advantages",
    "task_dataset",
]
