"""SGCD as a verl plugin (extra `sgcd[verl]`): an SGCD trainer mode and a multi-turn agent loop, no fork.

verl (0.9.x) imports every setuptools entry point of the group `verl.plugins` at the end of `import verl`, in the
driver and in every Ray worker. Our entry point (`sgcd = "sgcd.integrations.verl.plugin:register"`) names the
module `plugin`, whose import registers:

- trainer mode `sgcd` (`trainer.use_v1=True trainer.v1.trainer_mode=sgcd`): `SGCDTrainer`, a `PPOTrainerSync`
  whose `_compute_advantage` lets verl compute its GRPO advantages, then reshapes them with `sgcd.core`
  (credit weights from teacher-vs-student log-probs; the teacher is the actor scored after a credit-reference
  prefix through the same `compute_log_prob` call that gives the old log-probs);
- agent loop `sgcd_agent` (`SGCDAgentLoop`): drives an `sgcd.envs` domain turn by turn through verl's LLM
  server, records tokens exactly as sampled (`response_mask` 1 on sampled tokens, 0 on tool/user/template
  tokens) and returns the domain verifier's reward.

Departures from verl's own pieces: token encoding follows `sgcd.policy.chat` (the same template deltas as the
reference trainer), not verl's continuous-token builder; the advantage estimator must be outcome-level (one
advantage per trajectory, e.g. grpo / rloo), else SGCD refuses with a clear error.

Supported verl versions: `SUPPORTED_VERL` below, checked at registration (`check_verl_version`).
"""

from __future__ import annotations

from packaging.version import InvalidVersion, Version

SUPPORTED_VERL = (">=0.9.1", "<0.10")  # tested: 0.9.1 (the private APIs we override change between minors)
TRAINER_MODE = "sgcd"
AGENT_NAME = "sgcd_agent"


class VerlVersionError(RuntimeError):
    """The installed verl is outside SUPPORTED_VERL."""


def _in_range(version: str) -> bool:
    v = Version(version)
    low, high = Version(SUPPORTED_VERL[0].lstrip(">=")), Version(SUPPORTED_VERL[1].lstrip("<"))
    return low <= v < high


def check_verl_version(version: str | None = None) -> str:
    """The installed verl version (or `version`), or VerlVersionError naming it and the supported range."""
    if version is None:
        import verl

        version = str(getattr(verl, "__version__", "unknown"))
    try:
        ok = _in_range(version)
    except InvalidVersion:
        ok = False
    if not ok:
        raise VerlVersionError(
            f"sgcd.integrations.verl supports verl {','.join(SUPPORTED_VERL)} (tested 0.9.1); installed verl is "
            f"{version}. Install a supported release: pip install 'sgcd[verl]' (or 'verl{','.join(SUPPORTED_VERL)}')."
        )
    return version


__all__ = ["AGENT_NAME", "SUPPORTED_VERL", "TRAINER_MODE", "VerlVersionError", "check_verl_version"]
