"""The credit reference: the validated JSON object both summarizers produce (algorithm.md §3).

The field set is exactly §3's schema. Where this module is stricter or looser than the sketch there [ours]:

- `evidence.succ` / `evidence.fail` must read "k/n" with k <= n;
- `step_id`s are unique, and `first_divergence.step_id` must name one of them;
- `first_divergence` may be null when no failure differs from its nearest success in its calls (the contrast
  then lies only in argument values or the final answer, which the failure modes describe);
- unknown keys are rejected (an LLM that invents fields is asked to repair its answer), and strings are stripped.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Polarity = Literal["helpful", "harmful", "neutral"]
_COUNT_RE = re.compile(r"^(\d+)/(\d+)$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True)


class StepEvidence(_Strict):
    """How many successful / failed siblings (of those shown) contain this step, as "k/n"."""

    succ: str
    fail: str

    @field_validator("succ", "fail")
    @classmethod
    def _count(cls, v: str) -> str:
        m = _COUNT_RE.match(v)
        if not m or int(m.group(1)) > int(m.group(2)):
            raise ValueError(f"evidence count must read 'k/n' with k <= n, got {v!r}")
        return v


class StepCredit(_Strict):
    """One step of the reference: a tool call pattern (or a reasoning/answer step when tool is null)."""

    step_id: str = Field(min_length=1, max_length=16)
    tool: str | None = None
    arg_pattern: str = (
        ""  # abstract: "the reservation id the user gave", never a literal id, secret or answer
    )
    polarity: Polarity
    why: str = ""
    evidence: StepEvidence
    confidence: float = Field(ge=0.0, le=1.0)


class FirstDivergence(_Strict):
    step_id: str = Field(min_length=1, max_length=16)
    description: str = ""


class CreditReference(_Strict):
    """The training-only stepwise credit reference of one mixed group."""

    task_summary: str
    steps: list[StepCredit]
    first_divergence: FirstDivergence | None = None
    failure_modes: list[str] = Field(default_factory=list)
    end_state_requirements: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _ids_consistent(self) -> CreditReference:
        ids = [s.step_id for s in self.steps]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"step_id values must be unique, repeated: {dupes}")
        if self.first_divergence is not None and self.first_divergence.step_id not in ids:
            raise ValueError(
                f"first_divergence.step_id {self.first_divergence.step_id!r} is not one of the steps {ids}"
            )
        return self

    def polarity_counts(self) -> dict[str, int]:
        counts = {"helpful": 0, "harmful": 0, "neutral": 0}
        for s in self.steps:
            counts[s.polarity] += 1
        return counts


def reference_json_schema() -> dict:
    """The JSON schema of `CreditReference` (for prompts and docs)."""
    return CreditReference.model_json_schema()
