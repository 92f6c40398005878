"""credit/ref_sensitivity: by hand, and its sign on a model trained to follow a credit reference.

The reference is built with the real schema and rendered into the teacher's system message by
`sgcd.credit_reference.teacher_messages`; the tiny model is trained (a few seconds) to make a `lookup` call when the
reference marks that step helpful, to answer directly when it marks it harmful, and 50/50 on the clean prompt.
Then on a trajectory that makes the call, the teacher-student divergence must have the sign the reference asks for.
"""

from __future__ import annotations

import copy

import pytest
import torch

from sgcd.credit_reference.schema import CreditReference, StepCredit, StepEvidence
from sgcd.credit_reference.teacher import teacher_messages
from sgcd.policy.hf import HFPolicy
from sgcd.trainer.loop.step import ref_sensitivity
from sgcd.types import Message


def test_ref_sensitivity_by_hand():
    # one row, 4 action tokens, delta = [1, 3, 0, 0] (uncentred)
    delta = torch.tensor([[1.0, 3.0, 0.0, 0.0, 9.0]])
    mask = torch.tensor([[True, True, True, True, False]])  # the 9 sits on an observation token: ignored
    pol = torch.tensor([[0.0, 1.0, -1.0, 0.0, 1.0]])  # token 1 helpful, token 2 harmful
    out = ref_sensitivity(delta, pol, mask)
    # marked action tokens: +1 * 3 and -1 * 0 -> mean (3 + 0) / 2 = 1.5
    assert out["credit/ref_sensitivity"] == pytest.approx(1.5) and out["credit/ref_sensitivity_tokens"] == 2
    assert ref_sensitivity(delta, torch.zeros_like(pol), mask)["credit/ref_sensitivity"] == 0.0


def _reference(polarity: str) -> CreditReference:
    step = StepCredit(step_id="S1", tool="lookup", arg_pattern="the item the user named", polarity=polarity,
                      why="successes call it first", evidence=StepEvidence(succ="2/2", fail="0/3"), confidence=1.0)  # fmt: skip
    return CreditReference(task_summary="find the item", steps=[step])


@pytest.fixture(scope="module")
def follower(tiny_policy):
    """The tiny model trained to follow the reference's polarity for the `lookup` step."""
    policy = HFPolicy(copy.deepcopy(tiny_policy.model), tiny_policy.tokenizer, seed=0)
    opening = [Message("system", "You are an agent."), Message("user", "Find item 7.")]
    enc = lambda msgs: policy.encode_prompt(msgs, ())  # noqa: E731
    clean = enc(opening)
    helpful, harmful = enc(teacher_messages(opening, _reference("helpful"))), enc(teacher_messages(opening, _reference("harmful")))  # fmt: skip
    call = policy.tokenizer('<tool_call>{"name": "lookup"}</tool_call>', add_special_tokens=False)[
        "input_ids"
    ]
    answer = policy.tokenizer("It is item seven.", add_special_tokens=False)["input_ids"]
    data = [(helpful, call), (harmful, answer), (clean, call), (clean, answer)]
    opt = torch.optim.AdamW(policy.model.parameters(), lr=3e-3)
    for _ in range(120):
        opt.zero_grad()
        out = policy.score([p for p, _ in data], [c for _, c in data], grad=True, share_prefix=False)
        (-(out.logprobs.sum(-1) / out.mask.sum(-1)).mean()).backward()
        opt.step()
    return policy, clean, helpful, harmful, call


@pytest.mark.parametrize("polarity,sign", [("helpful", 1.0), ("harmful", -1.0)])
def test_sensitivity_is_positive_when_the_teacher_follows_the_reference(follower, polarity, sign):
    policy, clean, helpful, harmful, call = follower
    teacher_prefix = helpful if polarity == "helpful" else harmful
    with torch.no_grad():
        student = policy.score([clean], [call]).logprobs
        teacher = policy.score([teacher_prefix], [call]).logprobs
    # the trajectory: an answer token (unmarked), then the call's tokens, which the reference marks
    delta = torch.cat([torch.zeros(1, 1), teacher - student], dim=1)
    mask = torch.ones_like(delta, dtype=torch.bool)
    pol = torch.cat([torch.zeros(1, 1), torch.full_like(student, sign)], dim=1)
    got = ref_sensitivity(delta, pol, mask)["credit/ref_sensitivity"]
    assert got > 0.02, got  # the teacher moves the marked call the way the reference says
    flipped = ref_sensitivity(delta, -pol, mask)["credit/ref_sensitivity"]
    assert flipped < -0.02  # and a reference read backwards would show as negative
