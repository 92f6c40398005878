"""SGCD inside TRL's GRPOTrainer, end to end on CPU with the tiny model on airline-lite (issue 9, Must show 1-3).

One module-scoped run (two TRL steps, advantage=grpo, teacher=pi_old, offline summarizer) is shared by the first
two tests; the third runs plain TRL GRPO and the subclass with teacher=none for one step each.
"""

from __future__ import annotations

import pytest
import torch
import trl_helpers as H
from trl import GRPOTrainer

from sgcd.core.advantages import ADVANTAGE_ESTIMATORS, grpo_advantages
from sgcd.core.credit import credit_weights, reshape_advantages
from sgcd.credit_reference import make_summarizer, teacher_inputs
from sgcd.integrations.trl import SGCDGRPOTrainer, SGCDOptions, env_reward, task_dataset
from sgcd.policy.hf import HFPolicy
from sgcd.trainer.config import make_config
from sgcd.trainer.loop.batch import collate, score_batch
from sgcd.trainer.loop.step import StepContext, credit, score_teacher
from sgcd.trainer.loop.teacher import build_references


def _policy_at(state: dict[str, torch.Tensor]) -> HFPolicy:
    """The tiny model with the weights a generation batch was sampled with."""
    policy = H.fresh_policy()
    policy.model.load_state_dict(state)
    return policy


@pytest.fixture(scope="module")
def sgcd_run(airline, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sgcd_run")
    policy = H.fresh_policy()
    initial = {k: v.detach().clone() for k, v in policy.model.state_dict().items()}
    rollout = H.make_rollout(airline)
    trainer = SGCDGRPOTrainer(
        policy.model,
        rollout=rollout,
        sgcd=SGCDOptions(teacher="pi_old", advantage="grpo"),
        args=H.grpo_args(tmp, steps=2),
        processing_class=policy.tokenizer,
    )
    rec = H.capture(trainer, rollout)
    trainer.train()
    return {"initial": initial, "final": policy.model.state_dict(), "rec": rec, "tokenizer": policy.tokenizer}


def _independent_token_advantages(gen: dict) -> torch.Tensor:
    """sgcd.core + sgcd.credit_reference applied by hand to a captured generation batch, rows in rollout order,
    padded to TRL's T: A = grpo_advantages(env rewards), offline reference per mixed group, student = score after
    the clean prompt, teacher = score after the reference prefix, w = credit_weights, Ahat = A * w * m."""
    policy, batch = _policy_at(gen["state"]), gen["batch"]
    trajs, T = batch.trajectories, gen["out"]["completion_ids"].shape[1]
    summarizer = make_summarizer("offline")
    refs = [summarizer.summarize(g) if g.is_mixed else None for g in batch.groups]
    gids = torch.tensor([k for k, g in enumerate(batch.groups) for _ in g.trajectories])
    adv_B, _ = grpo_advantages(torch.tensor([t.reward for t in trajs]), gids)
    conts = [list(t.token_ids) for t in trajs]
    student = policy.score([list(t.prompt_ids) for t in trajs], conts).logprobs
    prefixes = [p for g, r in zip(batch.groups, refs) for p in teacher_inputs(policy, g, r).prefixes]
    teacher = policy.score(prefixes, conts).logprobs
    mask = torch.zeros(len(trajs), T, dtype=torch.bool)
    for b, (t, keep) in enumerate(zip(trajs, batch.kept_B.tolist())):
        mask[b, : len(t.token_ids)] = torch.tensor(t.action_mask, dtype=torch.bool) & keep
    pad = T - student.shape[1]
    student, teacher = (torch.nn.functional.pad(x, (0, pad)) for x in (student, teacher))
    w_B_T, _ = credit_weights(teacher, student, adv_B, mask, 0.2, 1.0)
    return reshape_advantages(adv_B, w_B_T, mask)[0]


def test_two_trl_steps_train_and_the_loss_receives_sgcd_core_token_advantages(sgcd_run):
    rec = sgcd_run["rec"]
    assert len(rec["gen"]) == 2 and len(rec["loss"]) == 2  # two TRL steps, one generation batch each
    changed = [
        k for k in sgcd_run["initial"] if not torch.equal(sgcd_run["initial"][k], sgcd_run["final"][k])
    ]
    assert changed, "no parameter changed after two SGCD steps"
    for gen, loss_in in zip(rec["gen"], rec["loss"]):
        out = gen["out"]
        assert out["advantages"].dim() == 2 and out["advantages"].shape == out["completion_ids"].shape
        # multi-turn: env tokens are in the completion and masked out through env_mask -> tool_mask
        assert (out["tool_mask"] == 0).any() and (out["tool_mask"] * out["completion_mask"]).sum() > 0
        expected = _independent_token_advantages(gen)
        assert expected.abs().sum() > 0, "the batch had no learning signal; the check would be vacuous"
        w = gen["step"].weights_B_T[gen["step"].mask_B_T]
        assert w.std() > 0, "all weights 1: the teacher did not reshape anything"
        # TRL shuffles rows before the loss: match rows by their tokens
        by_key = dict(zip(H.row_keys(out), expected))
        got = loss_in["advantages"]
        assert got.shape == expected.shape
        for b, key in enumerate(H.row_keys(loss_in)):
            torch.testing.assert_close(got[b], by_key[key], rtol=1e-5, atol=1e-6)


def test_reference_trainer_path_gives_the_same_token_advantages(sgcd_run):
    gen = sgcd_run["rec"]["gen"][0]
    batch, policy = gen["batch"], _policy_at(gen["state"])
    cfg = make_config(None, ["algorithm.name=sgcd", "credit.teacher=pi_old", "algorithm.microbatch_size=8"])
    ctx = StepContext(
        cfg=cfg, policy=policy, domain=None, sampler=None, optimizer=None, scheduler=None, sampling_params=None,
        limits=None, generator=torch.Generator().manual_seed(0), summarizer=make_summarizer("offline"),
    )  # fmt: skip
    mixed = [g for g in batch.groups if g.is_mixed]
    assert mixed, "no mixed group in the batch"
    refs, _ = build_references(ctx, mixed)
    tb = collate(mixed)
    adv_B, _ = ADVANTAGE_ESTIMATORS[cfg.algorithm.advantage](tb.rewards_B, tb.group_index_B)
    old = score_batch(
        policy, tb.prefixes, tb.continuations, tb.T, cfg.algorithm.microbatch_size, with_entropy=True
    )
    _, ref_ahat_B_T, _ = credit(ctx, tb, adv_B, *score_teacher(ctx, tb, refs, old), refs)
    # the subclass's (B, T) advantages for the same rows (mixed groups; rollout order = collate order)
    ours = gen["out"]["advantages"][gen["batch"].kept_B]
    assert ours.shape[0] == ref_ahat_B_T.shape[0]
    torch.testing.assert_close(ours[:, : tb.T], ref_ahat_B_T, rtol=1e-5, atol=1e-6)
    assert torch.count_nonzero(ours[:, tb.T :]) == 0
    assert (
        torch.count_nonzero(gen["out"]["advantages"][~gen["batch"].kept_B]) == 0
    )  # masked groups: no signal


def test_teacher_none_trains_exactly_like_plain_trl_grpo(airline, tmp_path):
    results = {}
    for name in ("plain", "sgcd-none"):
        policy, rollout = H.fresh_policy(), H.make_rollout(airline)
        common = dict(args=H.grpo_args(tmp_path / name, steps=1), processing_class=policy.tokenizer)
        if name == "plain":
            trainer = GRPOTrainer(
                policy.model, reward_funcs=[env_reward], train_dataset=task_dataset(airline), rollout_func=rollout,
                **common,
            )  # fmt: skip
        else:
            trainer = SGCDGRPOTrainer(
                policy.model, rollout=rollout, sgcd=SGCDOptions(teacher="none"), **common
            )
        rec = H.capture(trainer, rollout)
        trainer.train()
        results[name] = (policy.model.state_dict(), rec)
    (plain_w, plain_rec), (ours_w, ours_rec) = results["plain"], results["sgcd-none"]
    # the same batch: identical rows, rewards and masks
    for key in ("prompt_ids", "completion_ids", "completion_mask", "tool_mask"):
        assert torch.equal(plain_rec["gen"][0]["out"][key], ours_rec["gen"][0]["out"][key]), key
    plain_adv, ours_adv = plain_rec["loss"][0]["advantages"], ours_rec["loss"][0]["advantages"]
    assert plain_adv.dim() == 1 and ours_adv.dim() == 2  # TRL's (B,) vs our (B, T): A_i * 1 on loss tokens
    assert plain_adv.abs().sum() > 0, "zero advantages: the comparison would be vacuous"
    mask = (ours_rec["loss"][0]["completion_mask"] * ours_rec["loss"][0]["tool_mask"]).bool()
    assert torch.equal(ours_adv, torch.where(mask, plain_adv[:, None].expand_as(ours_adv), 0.0))
    moved = [k for k in plain_w if not torch.equal(plain_w[k], H.fresh_policy().model.state_dict()[k])]
    assert moved, "plain TRL did not move the parameters"
    for k in plain_w:
        assert torch.equal(plain_w[k], ours_w[k]), f"parameter {k} differs after one step"
