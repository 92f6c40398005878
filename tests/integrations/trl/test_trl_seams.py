"""Bugs found in the seams between TRL and SGCD (issue 18): scoring mode, per-rank refill order, the loss
normaliser of masked groups, and the optimizer step of an all-masked batch."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
import trl_helpers as H
from test_trl_rollout import ScriptPolicy, ToyDomain

from sgcd.credit_reference import make_summarizer
from sgcd.integrations.trl import SGCDGRPOTrainer, SGCDRollout
from sgcd.integrations.trl.config import SGCDConfig
from sgcd.integrations.trl.rollout import RolloutBatch
from sgcd.integrations.trl.trainer import SGCDOptions, sgcd_token_advantages
from sgcd.policy.base import SamplingParams
from sgcd.rollout import RolloutLimits
from sgcd.types import Episode, Message, Observation, Step, Trajectory, TrajectoryGroup


def sgcd_args(tmp_path, steps: int = 1, **kw):
    base = H.grpo_args(tmp_path, steps).to_dict()
    keep = {k: base[k] for k in ("output_dir", "use_cpu", "seed", "num_generations", "per_device_train_batch_size",
                                 "max_steps", "learning_rate", "max_completion_length", "temperature",
                                 "mask_truncated_completions", "report_to", "save_strategy", "logging_steps",
                                 "disable_tqdm", "dataloader_num_workers")}  # fmt: skip
    return SGCDConfig(**{**keep, **kw})


def _groups(policy) -> list[TrajectoryGroup]:
    g = torch.Generator().manual_seed(3)
    prompt = Observation(messages=(Message("system", "Be brief."), Message("user", "Say ok.")))
    ids = tuple(policy.encode_prompt(prompt.messages, prompt.tools))
    trajs = []
    for reward in (1.0, 0.0):
        toks = tuple(int(x) for x in torch.randint(5, 200, (6,), generator=g))
        ep = Episode("t0", (), (Step(0, "ok", final=True),), reward, reward >= 1.0)
        trajs.append(Trajectory(ep, ids, toks, (1, 1, 0, 1, 1, 1), (0, 0, -1, 1, 1, 1), (0.0,) * 6))
    return [TrajectoryGroup("t0", tuple(trajs), prompt, "Say ok.")]


def test_teacher_and_student_are_scored_without_dropout():
    """TRL keeps the model in train mode; the credit scores are taken in eval mode (no dropout noise in w) and
    the mode is restored afterwards."""
    policy = H.fresh_policy()
    policy.model.train()
    modes: list[bool] = []
    real = policy.score

    def spy(*args, **kwargs):
        modes.append(policy.model.training)
        return real(*args, **kwargs)

    policy.score = spy
    groups = _groups(policy)
    batch = RolloutBatch(groups=groups, kept_B=torch.ones(2, dtype=torch.bool))
    mask = torch.tensor([[1, 1, 0, 1, 1, 1]] * 2, dtype=torch.bool)
    sgcd_token_advantages(
        policy, batch, mask, SGCDOptions(advantage="grpo"), summarizer=make_summarizer("offline")
    )
    assert modes and not any(modes), modes
    assert policy.model.training


def _rank_trainer(rank: int):
    return SimpleNamespace(
        num_generations=2, num_generations_eval=2, model=SimpleNamespace(training=True),
        accelerator=SimpleNamespace(process_index=rank),
    )  # fmt: skip


def test_refill_sampler_draws_a_different_order_on_each_rank():
    """Two ranks with the same seed must not refill from the same task sequence."""
    drawn = {}
    for rank in (0, 1):
        ro = SGCDRollout(ToyDomain(n=64), sampling=SamplingParams(max_new_tokens=4),
                         limits=RolloutLimits(max_turns=1, max_tokens=16), max_rounds=2, seed=0)  # fmt: skip
        policy = ScriptPolicy(list("yy" * 40))  # every group all-pass: refill to the limit
        ro.policy = lambda trainer, _p=policy: _p
        ro(["toy/0", "toy/0"], _rank_trainer(rank))
        assert ro.last.metrics["sampling/rounds"] == 2.0  # one refill round ran
        drawn[rank] = [t.task_id for t in ro._sampler.next(8)]
    assert drawn[0] != drawn[1]


def _loss_inputs(policy, masked_row: bool):
    g = torch.Generator().manual_seed(0)
    B, P, T = 2, 4, 6
    tool = torch.ones(B, T, dtype=torch.long)
    if masked_row:
        tool[0] = 0
    adv = torch.tensor([[0.0] * T, [0.7] * T])
    return {
        "prompt_ids": torch.randint(5, 200, (B, P), generator=g),
        "prompt_mask": torch.ones(B, P, dtype=torch.long),
        "completion_ids": torch.randint(5, 200, (B, T), generator=g),
        "completion_mask": torch.ones(B, T, dtype=torch.long),
        "tool_mask": tool,
        "advantages": adv * tool,
        "num_items_in_batch": (tool.sum()).float(),
    }


@pytest.mark.parametrize(
    "loss_type, extra",
    [("grpo", {}), ("sapo", {}), ("dr_grpo", {}), ("luspo", {"importance_sampling_level": "sequence"})],
)
def test_masked_groups_do_not_count_in_the_loss_normaliser(airline, tmp_path, loss_type, extra):
    """A row whose group is masked (not mixed) neither learns nor dilutes the loss: the loss of [masked, kept]
    equals the loss of [kept] alone."""
    policy = H.fresh_policy()
    trainer = SGCDGRPOTrainer(
        policy.model, rollout=H.make_rollout(airline),
        args=sgcd_args(tmp_path, loss_type=loss_type, sgcd_teacher="none", **extra),
        processing_class=policy.tokenizer,
    )  # fmt: skip
    trainer.model.eval()
    both = _loss_inputs(policy, masked_row=True)
    alone = {k: (v[1:] if torch.is_tensor(v) and v.dim() else v) for k, v in both.items()}
    got = trainer._compute_loss(trainer.model, both)
    want = trainer._compute_loss(trainer.model, alone)
    assert float(want.detach()) != 0.0
    torch.testing.assert_close(got, want)


def test_all_masked_batch_takes_no_optimizer_step(airline, tmp_path):
    """Nothing mixed (the tiny model never succeeds): the step has no signal, so the parameters (and AdamW's
    decoupled weight decay) must not move."""
    policy = H.fresh_policy()
    before = {k: v.detach().clone() for k, v in policy.model.state_dict().items()}
    rollout = SGCDRollout(airline, sampling=SamplingParams(temperature=1.0, max_new_tokens=4),
                          limits=RolloutLimits(max_turns=1, max_tokens=64), max_rounds=1)  # fmt: skip
    trainer = SGCDGRPOTrainer(
        policy.model, rollout=rollout, args=sgcd_args(tmp_path, weight_decay=0.1, sgcd_teacher="none"),
        processing_class=policy.tokenizer,
    )  # fmt: skip
    rec = H.capture(trainer, rollout)
    trainer.train()
    assert not rec["gen"][0]["batch"].kept_B.any(), "the check needs an all-masked batch"
    moved = [k for k, v in policy.model.state_dict().items() if not torch.equal(v, before[k])]
    assert not moved, moved[:3]
