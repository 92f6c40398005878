"""The algorithm, once: from a spec to the functions to call and what they need, and the only SGCD glue.

`Algorithm` (advantage estimator, credit spec, teacher choice, policy loss by algorithm name) says what a step
needs (`needs_teacher`, `needs_references`, `needs_reference`, `needs_turn_ids`, `needs_teacher_entropy`) and
turns group advantages plus teacher/student log-probs into token advantages with `token_advantages`. The
reference trainer (`trainer/loop/step.py`), TRL (`integrations/trl/credit.py`) and verl
(`integrations/verl/credit.py`) all call it; they differ only in how they get the tensors out of their batch.

`CreditSpec` is the credit options as one value with one validation; the run config's `credit.*` section, TRL's
`sgcd_*` fields and verl's `sgcd:` block carry the same names, defaults and bounds (each reads this module).

No torch at import time: config loading reads the defaults and checks here before any model loads.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any

ALGORITHMS = ("grpo", "sgcd", "sd-replace", "sd-aux", "opd-advantage")
ADVANTAGES = ("grpo", "drgrpo", "rloo")
TEACHERS = ("pi_old", "reference", "none")
LEVELS = ("token", "turn")
# The policy loss of each algorithm (core.losses.POLICY_LOSSES); grpo and sgcd share PPO-clip.
LOSS_OF = {"grpo": "ppo-clip", "sgcd": "ppo-clip", "sd-replace": "sd-replace", "sd-aux": "sd-aux",
           "opd-advantage": "opd-advantage"}  # fmt: skip
# Named credit variants (core.credit.CREDIT_VARIANTS) as credit specs; "grpo" is w = 1 (no reweighting).
VARIANT_SPECS: dict[str, dict[str, Any]] = {
    "sgcd": {},
    "sgcd-turn": {"level": "turn"},
    "sgcd-gate": {"entropy_gate": True},
    "unsigned": {"unsigned": True},
    "failures-only": {"failures_only": True},
    "shuffle": {"shuffle": True},
}


@dataclass(frozen=True)
class CreditSpec:
    """The credit-weight options of algorithm.md §5 (defaults: the run config's documented values)."""

    eps: float = 0.2  # weight bound: w in [1-eps, 1+eps] before renormalising, in (0, 1)
    lam: float = 1.0  # w = (1-lam) + lam*w, in [0, 1] (0 = GRPO)
    level: str = "token"  # token | turn (u averaged over each assistant turn)
    unsigned: bool = False  # ablation: ignore the sign of A when forming u
    failures_only: bool = False  # reweight failed trajectories only
    shuffle: bool = False  # falsification control: shuffle w within each trajectory
    entropy_gate: bool = False  # gate u by teacher entropy: g = clamp(1 - H_T/H0, g_min, 1)
    gate_h0: float = 4.0  # H0 of the entropy gate (nats), > 0
    gate_min: float = 0.0  # g_min of the entropy gate, in [0, 1]

    def __post_init__(self) -> None:
        bad = credit_problems(**{f.name: getattr(self, f.name) for f in fields(self)})
        if bad:
            raise ValueError(f"credit.{bad[0]}")

    @classmethod
    def from_variant(cls, variant: str, **params: Any) -> CreditSpec:
        """The spec of a named core credit variant (sgcd, sgcd-turn, unsigned, ...) with these parameters."""
        if variant not in VARIANT_SPECS:
            raise ValueError(f"credit variant {variant!r}; choose one of {sorted(VARIANT_SPECS)}")
        return cls(**{**params, **VARIANT_SPECS[variant]})


def credit_problems(
    eps: float = 0.2, lam: float = 1.0, level: str = "token", gate_h0: float = 4.0, gate_min: float = 0.0,
    **_: Any,
) -> list[str]:  # fmt: skip
    """One line per credit value core would reject (empty: all fine); each starts with the field name."""
    out = []
    if not 0.0 < eps < 1.0:
        out.append(f"eps: {eps!r} must be in (0, 1)")
    if not 0.0 <= lam <= 1.0:
        out.append(f"lam: {lam!r} must be in [0, 1]")
    if level not in LEVELS:
        out.append(f"level: {level!r} is not allowed; choose one of: {', '.join(LEVELS)}")
    if not gate_h0 > 0.0:
        out.append(f"gate_h0: {gate_h0!r} must be greater than 0")
    if not 0.0 <= gate_min <= 1.0:
        out.append(f"gate_min: {gate_min!r} must be in [0, 1]")
    return out


def loss_problems(
    clip_low: float = 0.2, clip_high: float = 0.28, dual_clip: float = 3.0, **_: Any
) -> list[str]:
    """One line per PPO-clip value core would reject or that makes the clip range empty."""
    out = []
    if not 0.0 <= clip_low < 1.0:
        out.append(f"clip_low: {clip_low!r} must be in [0, 1) (the ratio's lower bound is 1 - clip_low)")
    if not clip_high >= 0.0:
        out.append(f"clip_high: {clip_high!r} must be >= 0")
    if dual_clip != 0 and not dual_clip > 1.0:
        out.append(f"dual_clip: {dual_clip!r} must be > 1 (or 0 = off)")
    return out


@dataclass(frozen=True)
class TokenAdvantages:
    weights_B_T: Any  # w, 1 off the mask and where nothing is reweighted
    token_advantages_B_T: Any  # Ahat = A * w, 0 off the mask
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Algorithm:
    """One training algorithm: name (grpo | sgcd | sd-replace | sd-aux | opd-advantage), the group advantage
    estimator, who the teacher is, the credit spec and the KL-to-reference weight."""

    name: str = "sgcd"
    advantage: str = "grpo"
    teacher: str = "pi_old"
    credit: CreditSpec = field(default_factory=CreditSpec)
    kl_beta: float = 0.0

    def __post_init__(self) -> None:
        for key, value, allowed in (("name", self.name, ALGORITHMS), ("teacher", self.teacher, TEACHERS)):
            if value not in allowed:
                raise ValueError(f"algorithm {key} {value!r}; choose one of {list(allowed)}")

    @classmethod
    def from_spec(cls, name: str = "sgcd", *, advantage: str = "grpo", teacher: str = "pi_old",
                  kl_beta: float = 0.0, **credit: Any) -> Algorithm:  # fmt: skip
        return cls(name, advantage, teacher, CreditSpec(**credit), kl_beta)

    @property
    def loss(self) -> str:
        return LOSS_OF[self.name]

    @property
    def reweights(self) -> bool:
        """The credit weights reshape the advantages (sgcd); otherwise w = 1."""
        return self.name == "sgcd"

    @property
    def needs_teacher(self) -> bool:
        """Teacher log-probs are used (by the credit weights or by the loss)."""
        return self.name != "grpo"

    @property
    def needs_references(self) -> bool:
        """Credit references are summarized and the teacher scores after them (one extra forward)."""
        return self.needs_teacher and self.teacher != "none"

    @property
    def needs_reference(self) -> bool:
        """A frozen copy of the initial model is loaded (KL term, or the reference as teacher)."""
        return self.kl_beta > 0 or (self.needs_references and self.teacher == "reference")

    @property
    def needs_turn_ids(self) -> bool:
        return self.reweights and self.credit.level == "turn"

    @property
    def needs_teacher_entropy(self) -> bool:
        return self.reweights and self.credit.entropy_gate

    def with_credit(self, **changes: Any) -> Algorithm:
        return replace(self, credit=replace(self.credit, **changes))

    def advantages(self, rewards_B: Any, group_ids_B: Any) -> tuple[Any, dict[str, float]]:
        """A_i from the group advantage estimator (core.advantages.ADVANTAGE_ESTIMATORS)."""
        from sgcd.core.advantages import ADVANTAGE_ESTIMATORS

        return ADVANTAGE_ESTIMATORS[self.advantage](rewards_B, group_ids_B)

    def token_advantages(
        self,
        advantages_B: Any,
        mask_B_T: Any,
        student_B_T: Any,
        teacher_B_T: Any = None,
        *,
        turn_ids_B_T: Any = None,
        teacher_entropy_B_T: Any = None,
        generator: Any = None,
    ) -> TokenAdvantages:
        """Ahat_B_T = A_i * w_B_T (algorithm.md §5), w from core.credit; w = 1 when the algorithm does not
        reweight or no teacher log-probs are given.

        advantages_B: (B,) A_i. mask_B_T: (B, T) action tokens. student_B_T / teacher_B_T: (B, T) log-probs of the
        sampled tokens after the clean prompt / the teacher prefix (same model). turn_ids_B_T: (B, T), needed at
        level=turn (values off the mask are ignored). teacher_entropy_B_T: needed with the entropy gate.
        generator: the shuffle control's."""
        import torch

        from sgcd.core.credit import CREDIT_VARIANTS, credit_weights, reshape_advantages

        mask = mask_B_T.bool()
        if not self.reweights or teacher_B_T is None:
            w_B_T, metrics = CREDIT_VARIANTS["grpo"](None, student_B_T, advantages_B, mask)
        else:
            c = self.credit
            turns = None
            if self.needs_turn_ids:
                if turn_ids_B_T is None:
                    raise ValueError("credit.level=turn needs the trajectories' turn ids")
                turns = torch.where(mask, turn_ids_B_T.long(), 0).clamp(min=0)
            if self.needs_teacher_entropy and teacher_entropy_B_T is None:
                raise ValueError("credit.entropy_gate needs the teacher's entropies")
            w_B_T, metrics = credit_weights(
                teacher_B_T, student_B_T, advantages_B, mask, c.eps, c.lam, turn_ids=turns,
                teacher_entropy=teacher_entropy_B_T if c.entropy_gate else None, gate_h0=c.gate_h0,
                gate_min=c.gate_min, signed=not c.unsigned, failures_only=c.failures_only, shuffle=c.shuffle,
                generator=generator,
            )  # fmt: skip
        ahat_B_T, adv_metrics = reshape_advantages(advantages_B, w_B_T, mask)
        return TokenAdvantages(w_B_T, ahat_B_T, {**metrics, **adv_metrics})
