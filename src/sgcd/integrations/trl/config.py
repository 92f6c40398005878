"""`SGCDConfig`: TRL's `GRPOConfig` plus SGCD's fields, the TRL way of carrying an algorithm's options.

Because the SGCD fields live on the training arguments, everything TRL does with those arguments carries them too:
`TrlParser` turns them into flags (`--sgcd_teacher none --sgcd_eps 0.1`) and YAML keys (`--config`), the Trainer
saves them with the run (`training_args.bin` in the output folder and in every checkpoint), and the trackers log
them with the run config (`to_dict()` / `to_sanitized_dict()`: W&B, TensorBoard hparams, ...).

Every SGCD field starts with `sgcd_`, so none shadows a GRPO field (`epsilon` is GRPO's PPO clip, `sgcd_eps` the
bound of SGCD's credit weights). The fields mirror `SGCDOptions` (the plain value object the credit math takes,
built by `sgcd_options()`); see sgcd/integrations/trl/trainer.py for what each option does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from trl import GRPOConfig

from sgcd.algorithm import CreditSpec
from sgcd.integrations.trl.options import ADVANTAGES, TEACHERS, SGCDOptions


@dataclass
class SGCDConfig(GRPOConfig):
    """GRPOConfig + SGCD. `SGCDGRPOTrainer(model, rollout=..., args=SGCDConfig(..., sgcd_teacher="pi_old"))`."""

    sgcd_teacher: str = field(
        default="pi_old",
        metadata={
            "help": "who scores trajectories with the credit reference: pi_old (the live policy) or none (w = 1, "
            "plain GRPO)",
            "choices": list(TEACHERS),
        },
    )
    sgcd_advantage: str = field(
        default="trl",
        metadata={
            "help": "A_i: trl (TRL's own advantages, so scale_rewards etc. apply) or sgcd.core's grpo | drgrpo | "
            "rloo over the environment rewards",
            "choices": list(ADVANTAGES),
        },
    )
    sgcd_summarizer: str = field(
        default="offline",
        metadata={"help": "credit-reference summarizer spec: offline, or openai:MODEL (an LLM endpoint)"},
    )
    sgcd_summarizer_options: dict[str, Any] | str | None = field(
        default=None,
        metadata={
            "help": "keyword options for the summarizer, as a dict or a JSON string (e.g. "
            '\'{"base_url": "http://127.0.0.1:8000/v1"}\')'
        },
    )
    sgcd_max_concurrency: int = field(default=4, metadata={"help": "groups summarized concurrently"})
    sgcd_eps: float = field(
        default=CreditSpec.eps, metadata={"help": "credit-weight bound: w in [1-eps, 1+eps], in (0, 1)"}
    )
    sgcd_lam: float = field(
        default=CreditSpec.lam, metadata={"help": "lambda: w = (1-lambda) + lambda*w (0 = GRPO)"}
    )
    sgcd_level: str = field(
        default=CreditSpec.level, metadata={"help": "credit granularity", "choices": ["token", "turn"]}
    )
    sgcd_unsigned: bool = field(
        default=CreditSpec.unsigned, metadata={"help": "ablation: ignore the sign of A when forming u"}
    )
    sgcd_failures_only: bool = field(
        default=CreditSpec.failures_only,
        metadata={"help": "reweight failed trajectories only (successes keep w = 1)"},
    )
    sgcd_entropy_gate: bool = field(
        default=CreditSpec.entropy_gate,
        metadata={"help": "gate u by teacher entropy: g = clamp(1 - H_T/H0, g_min, 1)"},
    )
    sgcd_gate_h0: float = field(
        default=CreditSpec.gate_h0, metadata={"help": "H0 of the entropy gate (nats)"}
    )
    sgcd_gate_min: float = field(default=CreditSpec.gate_min, metadata={"help": "g_min of the entropy gate"})
    sgcd_score_microbatch: int = field(
        default=8, metadata={"help": "rows per no-grad scoring forward (student and teacher log-probs)"}
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.sgcd_summarizer_options, str):
            try:
                self.sgcd_summarizer_options = json.loads(self.sgcd_summarizer_options or "{}")
            except json.JSONDecodeError as exc:
                raise ValueError(f"sgcd_summarizer_options is not valid JSON: {exc}") from None
        if self.sgcd_summarizer_options is None:
            self.sgcd_summarizer_options = {}
        if not isinstance(self.sgcd_summarizer_options, dict):
            raise ValueError(
                f"sgcd_summarizer_options must be a mapping, got {self.sgcd_summarizer_options!r}"
            )
        self.sgcd_options()  # validates: a bad value fails here, when the config is built, naming the field

    def sgcd_options(self) -> SGCDOptions:
        """The SGCD fields as the `SGCDOptions` value the credit math takes."""
        try:
            return SGCDOptions(
                teacher=self.sgcd_teacher,
                summarizer=self.sgcd_summarizer,
                summarizer_options=dict(self.sgcd_summarizer_options or {}),
                max_concurrency=self.sgcd_max_concurrency,
                advantage=self.sgcd_advantage,
                eps=self.sgcd_eps,
                lam=self.sgcd_lam,
                level=self.sgcd_level,
                unsigned=self.sgcd_unsigned,
                failures_only=self.sgcd_failures_only,
                entropy_gate=self.sgcd_entropy_gate,
                gate_h0=self.sgcd_gate_h0,
                gate_min=self.sgcd_gate_min,
                score_microbatch=self.sgcd_score_microbatch,
            )
        except ValueError as exc:  # name the config field, not the internal options object
            message = (
                str(exc).replace("SGCDOptions.", "SGCDConfig.sgcd_").replace("SGCDOptions", "SGCDConfig")
            )
            raise ValueError(message) from None
