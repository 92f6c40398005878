"""SGCD's options for the TRL trainer (`SGCDOptions`): the names and checks of the run config's `credit.*`
(sgcd.algorithm), read by both SGCDConfig (config.py) and SGCDGRPOTrainer (trainer.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sgcd.algorithm import Algorithm, CreditSpec, credit_problems
from sgcd.core.advantages import ADVANTAGE_ESTIMATORS

TEACHERS = ("pi_old", "none")
ADVANTAGES = ("trl", *ADVANTAGE_ESTIMATORS)


@dataclass
class SGCDOptions:
    """SGCD's side of the TRL trainer (names follow sgcd's RunConfig `credit.*` where they overlap).

    teacher: pi_old (the live policy given the credit reference) | none (w = 1: plain GRPO).
    summarizer / summarizer_options / max_concurrency: `sgcd.credit_reference.make_summarizer` spec and options.
    advantage: trl | grpo | drgrpo | rloo (see the module docstring).
    eps, lam, level, unsigned, failures_only, entropy_gate, gate_h0, gate_min: as in `sgcd.core.credit_weights`.
    score_microbatch: rows per no-grad scoring forward.
    """

    teacher: str = "pi_old"
    summarizer: str = "offline"
    summarizer_options: dict[str, Any] = field(default_factory=dict)
    max_concurrency: int = 4
    advantage: str = "trl"
    eps: float = CreditSpec.eps  # the credit defaults are sgcd.algorithm's (= the run config's)
    lam: float = CreditSpec.lam
    level: str = CreditSpec.level
    unsigned: bool = CreditSpec.unsigned
    failures_only: bool = CreditSpec.failures_only
    entropy_gate: bool = CreditSpec.entropy_gate
    gate_h0: float = CreditSpec.gate_h0
    gate_min: float = CreditSpec.gate_min
    score_microbatch: int = 8

    def __post_init__(self) -> None:
        for name, value, allowed in (
            ("teacher", self.teacher, TEACHERS),
            ("advantage", self.advantage, ADVANTAGES),
            ("level", self.level, ("token", "turn")),
        ):
            if value not in allowed:
                raise ValueError(f"SGCDOptions.{name}={value!r}; choose one of {list(allowed)}")
        bad = credit_problems(eps=self.eps, lam=self.lam, level=self.level, gate_h0=self.gate_h0,
                              gate_min=self.gate_min)  # fmt: skip
        if bad:  # the run config's checks (sgcd.algorithm), one line naming the field
            raise ValueError(f"SGCDOptions.{bad[0]}")
        if self.score_microbatch < 1:
            raise ValueError(f"SGCDOptions.score_microbatch must be >= 1, got {self.score_microbatch}")

    @property
    def algorithm(self) -> Algorithm:
        """These options as sgcd.algorithm's Algorithm (teacher none: w = 1, plain GRPO)."""
        credit = CreditSpec(**{f: getattr(self, f) for f in CREDIT_FIELDS})
        advantage = "grpo" if self.advantage == "trl" else self.advantage
        return Algorithm("sgcd", advantage=advantage, teacher=self.teacher, credit=credit)


CREDIT_FIELDS = ("eps", "lam", "level", "unsigned", "failures_only", "entropy_gate", "gate_h0", "gate_min")
