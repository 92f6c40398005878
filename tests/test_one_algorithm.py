"""One algorithm, three front-ends (issue 18): the same batch through the reference trainer's, TRL's and verl's
token-advantage paths gives the same token advantages, and each path reaches `sgcd.algorithm`.

The batch: one mixed group of airline-lite (two siblings play the gold turns, one samples noise with the tiny
model), tokens recorded by sgcd's rollout (the recorder the verl agent loop uses too). Student and teacher
log-probs are computed once (teacher prefix from the offline reference) and handed to every path, so any
difference comes from the glue, not from scoring. The verl group is rebuilt from the records the `sgcd_agent`
loop ships (`verl.credit.episode_record` -> `group_record`), instruction included, and must give the same
reference as the trainer's group.
"""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("trl", reason="the TRL path needs the trl extra")

from sgcd.algorithm import Algorithm, CreditSpec  # noqa: E402
from sgcd.core.advantages import grpo_advantages  # noqa: E402
from sgcd.credit_reference import make_summarizer, teacher_inputs  # noqa: E402
from sgcd.credit_reference.group_io import group_from_json  # noqa: E402
from sgcd.envs import get_domain  # noqa: E402
from sgcd.integrations.trl.guided import GoldGuidedPolicy  # noqa: E402
from sgcd.integrations.trl.rollout import RolloutBatch  # noqa: E402
from sgcd.integrations.trl.trainer import SGCDOptions as TRLOptions  # noqa: E402
from sgcd.integrations.trl.trainer import token_advantages_from_scores  # noqa: E402
from sgcd.integrations.verl.credit import SGCDOptions as VerlOptions  # noqa: E402
from sgcd.integrations.verl.credit import (  # noqa: E402
    episode_record,
    group_record,
    record_turn_ids,
    sgcd_token_advantages,
)
from sgcd.policy.base import SamplingParams  # noqa: E402
from sgcd.policy.models import load_policy  # noqa: E402
from sgcd.policy.scoring import Scores  # noqa: E402
from sgcd.rollout import RolloutLimits, make_group, run_groups  # noqa: E402
from sgcd.trainer.config import make_config  # noqa: E402
from sgcd.trainer.loop.batch import collate  # noqa: E402
from sgcd.trainer.loop.step import StepContext, credit  # noqa: E402


@pytest.fixture(scope="module")
def batch():
    domain = get_domain("airline-lite", train_size=8, max_horizon=2)
    task = domain.tasks("train")[0]
    policy = load_policy("tiny")
    params, limits = (
        SamplingParams(temperature=1.0, max_new_tokens=6),
        RolloutLimits(max_turns=3, max_tokens=256),
    )
    gold = run_groups(GoldGuidedPolicy(policy, domain, p=1.0), domain.make_env, [task], 2, params, limits)[0]
    noise = run_groups(GoldGuidedPolicy(policy, domain, p=0.0), domain.make_env, [task], 1, params, limits)[0]
    group = make_group([*gold.trajectories, *noise.trajectories], gold.prompt, task.instruction)
    assert group.is_mixed and group.instruction, "the check needs a mixed group with an instruction"
    assert len({t for tr in group.trajectories for t in tr.turn_ids if t >= 0}) > 1, "needs several turns"
    records = [episode_record(t, group.prompt, task.instruction) for t in group.trajectories]
    verl_group = group_from_json(group_record(records, 1.0))
    summarizer = make_summarizer("offline")
    ref = summarizer.summarize(group)
    assert verl_group.instruction == group.instruction
    assert (
        summarizer.summarize(verl_group).model_dump() == ref.model_dump()
    )  # the same reference from the record
    tb = collate([group])
    conts = tb.continuations
    student = policy.score(tb.prefixes, conts).logprobs[:, : tb.T]
    teacher = policy.score(teacher_inputs(policy, group, ref).prefixes, conts).logprobs[:, : tb.T]
    return {"group": group, "records": records, "ref": ref, "tb": tb, "student": student, "teacher": teacher,
            "policy": policy}  # fmt: skip


def _trainer_path(b, level: str) -> torch.Tensor:
    cfg = make_config(None, ["model.name=tiny", f"credit.level={level}"])
    ctx = StepContext(
        cfg=cfg, policy=b["policy"], domain=None, sampler=None, optimizer=None, scheduler=None,
        sampling_params=None, limits=None, generator=torch.Generator().manual_seed(0),
    )  # fmt: skip
    tb = b["tb"]
    adv_B, _ = cfg.algorithm_spec.advantages(tb.rewards_B, tb.group_index_B)
    _, ahat, _ = credit(ctx, tb, adv_B, Scores(b["student"]), Scores(b["teacher"]), [b["ref"]])
    return ahat


def _trl_path(b, level: str) -> torch.Tensor:
    tb = b["tb"]
    rollout_batch = RolloutBatch(groups=[b["group"]], kept_B=torch.ones(tb.B, dtype=torch.bool))
    opts = TRLOptions(advantage="grpo", level=level)
    return token_advantages_from_scores(
        rollout_batch, tb.action_mask_B_T, opts, b["student"], b["teacher"]
    ).token_advantages_B_T


def _verl_path(b, variant: str) -> torch.Tensor:
    tb = b["tb"]
    a_B, _ = grpo_advantages(tb.rewards_B, tb.group_index_B)  # verl's GRPO (equal to core's: verl suite)
    adv_B_T = a_B.unsqueeze(-1) * tb.action_mask_B_T  # what verl's outcome estimator writes
    turns = record_turn_ids(b["records"], tb.T)  # the turn ids the agent loop ships
    ahat, _ = sgcd_token_advantages(adv_B_T, tb.action_mask_B_T, b["student"], b["teacher"],
                                    VerlOptions(variant=variant), turn_ids_B_T=turns)  # fmt: skip
    return ahat


@pytest.mark.parametrize("level, variant", [("token", "sgcd"), ("turn", "sgcd-turn")])
def test_trainer_trl_and_verl_give_the_same_token_advantages(batch, level, variant):
    trainer, trl, verl = _trainer_path(batch, level), _trl_path(batch, level), _verl_path(batch, variant)
    mask = batch["tb"].action_mask_B_T
    signs = batch["tb"].rewards_B.sub(batch["tb"].rewards_B.mean()).sign().unsqueeze(-1).expand_as(trainer)
    assert torch.equal(trainer[mask].sign(), signs[mask])  # the verifier decides the direction
    assert torch.equal(trainer, trl)
    # verl reads A_i back as the masked row mean of its broadcast advantages: equal up to float rounding
    torch.testing.assert_close(verl, trainer, rtol=0, atol=1e-6)
    w = trainer[mask] / trainer[mask].mean()
    assert w.std() > 0, "the teacher reshaped nothing: the comparison would be vacuous"


def test_turn_level_differs_from_token_level(batch):
    """The turn variant is not silently the token variant on any path."""
    assert not torch.allclose(_trainer_path(batch, "turn"), _trainer_path(batch, "token"))
    assert not torch.allclose(_verl_path(batch, "sgcd-turn"), _verl_path(batch, "sgcd"))


def test_each_front_end_speaks_the_same_algorithm():
    """The trainer's config, TRL's options and verl's block all become the same sgcd.algorithm value."""
    cfg = make_config(None, ["credit.level=turn", "credit.eps=0.1"])
    trl = TRLOptions(teacher="pi_old", advantage="grpo", level="turn", eps=0.1)
    verl = VerlOptions(variant="sgcd-turn", eps=0.1)
    want = Algorithm("sgcd", "grpo", "pi_old", CreditSpec(eps=0.1, level="turn"))
    assert cfg.algorithm_spec == trl.algorithm == verl.algorithm == want
    assert want.needs_teacher and want.needs_references and want.needs_turn_ids and not want.needs_reference
    assert Algorithm("grpo").needs_teacher is False
    assert Algorithm("sgcd", teacher="reference").needs_reference


def test_one_token_type_table():
    from sgcd.core.credit_stats import TOKEN_TYPE_NAMES
    from sgcd.report.figures import TOKEN_TYPE_NAMES as REPORT_NAMES
    from sgcd.types import TOKEN_TYPES

    assert TOKEN_TYPE_NAMES == TOKEN_TYPES and REPORT_NAMES is TOKEN_TYPES
