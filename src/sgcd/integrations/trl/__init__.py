"""SGCD inside TRL's GRPOTrainer (extra `sgcd[trl]`, tested with trl>=1.16,<1.17).

    from sgcd.envs import get_domain
    from sgcd.integrations.trl import SGCDConfig, SGCDGRPOTrainer, SGCDRollout

    rollout = SGCDRollout(get_domain("airline-lite"))
    trainer = SGCDGRPOTrainer(model, rollout=rollout, args=SGCDConfig(..., sgcd_teacher="pi_old"))
    trainer.train()

`SGCDConfig` is a GRPOConfig (every GRPO field, flag and YAML key) with SGCD's `sgcd_*` fields; scripts parse it
with `TrlParser((ScriptArguments, SGCDConfig, ModelConfig))` (examples/trl_airline_lite.py).

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
from sgcd.integrations.trl.config import SGCDConfig
from sgcd.integrations.trl.guided import GoldGuidedPolicy
from sgcd.integrations.trl.options import SGCDOptions
from sgcd.integrations.trl.rollout import RolloutBatch, SGCDRollout, env_reward, task_dataset
from sgcd.integrations.trl.trainer import SGCDGRPOTrainer, SGCDStep, sgcd_token_advantages
from sgcd.integrations.trl.vllm import VLLMServerPolicy

__all__ = [
    "TESTED_RANGE",
    "GoldGuidedPolicy",
    "SGCDConfig",
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
