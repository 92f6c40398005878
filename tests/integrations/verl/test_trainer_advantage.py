"""Trainer mode `sgcd`: `_compute_advantage` on a hand-built batch equals sgcd.core on the same tensors.

The batch: two tasks x G = 3 siblings, played by scripted agents through the `sgcd_agent` loop on the tiny
model's tokenizer, stored in an in-memory TransferQueue (`FakeTQ`) exactly as verl's agent loop stores them
(prompts, responses, response_mask, rm_scores with the reward on the last token, extra_fields, input_ids,
position_ids) plus old_log_probs = the tiny policy's log-probs of the responses after the clean prompt.

    u0: airline-lite/train/00014  gold, gold, read-only   R = [1, 1, 0]   mixed   -> reference + teacher
    u1: airline-lite/train/00000  gold, gold, gold        R = [1, 1, 1]   unmixed -> A = 0, own prompt

Expected, from sgcd.core and sgcd.credit_reference directly:
    A = grpo_advantages(R, group)          u0: mean 2/3, unbiased std 1/sqrt(3): A = [+0.577, +0.577, -1.155]
    teacher = tiny.score(teacher prefix of u0's offline reference, responses) for u0; the clean prompt for u1
    w = credit_weights(teacher, old, A, mask);  Ahat = reshape_advantages(A, w, mask)
The trainer runs verl's real `super()._compute_advantage` (verl's GRPO) first, and gets the teacher log-probs by
putting teacher rows into the queue and calling `actor_rollout_wg.compute_log_prob` (here `FakeActorWG`, the tiny
model), so the test also checks that verl's GRPO equals ours and that the teacher log-probs are aligned.
"""

from __future__ import annotations

import json
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf
from tensordict import NonTensorStack, TensorDict
from transfer_queue import KVBatchMeta
from verl_helpers import FakeActorWG, FakeTQ, run_scripted

from sgcd.core.advantages import grpo_advantages
from sgcd.core.credit import credit_weights, reshape_advantages
from sgcd.credit_reference import make_summarizer, teacher_prefixes
from sgcd.credit_reference.group_io import group_from_json
from sgcd.integrations.verl import trainer as sgcd_trainer
from sgcd.integrations.verl.codec import TokenizerCodec
from sgcd.integrations.verl.credit import SGCDOptions, outcome_advantages, sgcd_token_advantages

GROUPS = [("u0", 14, ["gold", "gold", "read-only"]), ("u1", 0, ["gold", "gold", "gold"])]


@pytest.fixture(scope="module")
def outputs(tiny, domain):
    """[(uid, AgentLoopOutput)] in row order."""
    tasks = domain.tasks("train")
    rows = []
    for uid, index, specs in GROUPS:
        for spec in specs:
            rows.append((uid, run_scripted(tiny.tokenizer, domain, tasks[index], spec)[0]))
    return rows


def _jag(rows, dtype):
    return torch.nested.as_nested_tensor([torch.tensor(r, dtype=dtype) for r in rows], layout=torch.jagged)


def build_batch(tiny, outputs, tq):
    """Put the rows into the fake queue as verl's agent loop does; the KVBatchMeta the trainer receives."""
    keys, tags = [], []
    sessions: dict[str, int] = {}
    prompts = [o.prompt_ids for _, o in outputs]
    responses = [o.response_ids for _, o in outputs]
    old = tiny.score(prompts, responses).logprobs
    for uid, o in outputs:
        s = sessions[uid] = sessions.get(uid, -1) + 1
        keys.append(f"{uid}_{s}_0")
        n = len(o.prompt_ids) + len(o.response_ids)
        tags.append({"status": "success", "prompt_len": len(o.prompt_ids), "seq_len": n})
    rm = []
    for _, o in outputs:
        r = [0.0] * len(o.response_ids)
        r[-1] = o.reward_score
        rm.append(r)
    fields = TensorDict(
        {
            "uid": NonTensorStack(*[u for u, _ in outputs]),
            "prompts": _jag(prompts, torch.int64),
            "responses": _jag(responses, torch.int64),
            "response_mask": _jag([o.response_mask for _, o in outputs], torch.int64),
            "rm_scores": _jag(rm, torch.float32),
            "old_log_probs": _jag(
                [old[i, : len(r)].tolist() for i, r in enumerate(responses)], torch.float32
            ),
            "input_ids": _jag([p + r for p, r in zip(prompts, responses)], torch.int64),
            "position_ids": _jag(
                [list(range(len(p) + len(r))) for p, r in zip(prompts, responses)], torch.int64
            ),
            "extra_fields": NonTensorStack(*[dict(o.extra_fields) for _, o in outputs]),
        },
        batch_size=len(outputs),
    )
    tq.kv_batch_put(keys, "train", fields=fields, tags=tags)
    return KVBatchMeta(keys=keys, tags=tags, partition_id="train", extra_info={"temperature": 1.0})


def make_trainer(tiny, tq, monkeypatch, sgcd_block):
    import verl.trainer.ppo.v1.trainer_base as base

    monkeypatch.setattr(base, "tq", tq)
    monkeypatch.setattr(sgcd_trainer, "tq", tq)
    trainer = sgcd_trainer.SGCDTrainer.__new__(
        sgcd_trainer.SGCDTrainer
    )  # no Ray workers: set what the hook reads
    trainer.config = OmegaConf.create(
        {
            "algorithm": {
                "adv_estimator": "grpo",
                "gamma": 1.0,
                "lam": 1.0,
                "norm_adv_by_std_in_grpo": True,
                "use_kl_in_reward": False,
            },
            "actor_rollout_ref": {"rollout": {"n": 3, "temperature": 1.0}},
            "sgcd": sgcd_block,
        }
    )
    trainer.tokenizer = tiny.tokenizer
    trainer.actor_rollout_wg = FakeActorWG(tiny, tq)
    trainer.global_steps = 1
    return trainer


def padded(tq, keys, field):
    data = tq.kv_batch_get(keys, "train", select_fields=[field])
    return data[field].to_padded_tensor(0.0)


def expected(tiny, outputs, teacher: bool):
    rewards = torch.tensor([o.reward_score for _, o in outputs])
    group_B = torch.tensor([0, 0, 0, 1, 1, 1])
    a_B, _ = grpo_advantages(rewards, group_B)
    prompts = [o.prompt_ids for _, o in outputs]
    responses = [o.response_ids for _, o in outputs]
    T = max(len(r) for r in responses)
    mask = torch.zeros(len(outputs), T, dtype=torch.bool)
    for i, (_, o) in enumerate(outputs):
        mask[i, : len(o.response_mask)] = torch.tensor(o.response_mask, dtype=torch.bool)
    old = tiny.score(prompts, responses).logprobs[:, :T]
    if not teacher:
        w = torch.ones_like(old)
    else:
        w, _ = credit_weights(_teacher_scores(tiny, outputs, T), old, a_B, mask)
    ahat, _ = reshape_advantages(a_B, w, mask)
    return a_B, w, ahat, mask


def real_group(outputs):
    """u0 as the reference trainer holds it: the episodes, the clean prompt *and* the task's instruction, taken
    from the domain (not from the record the agent loop wrote), so a lossy record shows up as a difference."""
    from sgcd.envs.base import get_domain

    recs = [json.loads(o.extra_fields["sgcd"]) for _, o in outputs[:3]]
    task = get_domain("airline-lite").tasks("train")[GROUPS[0][1]]
    return group_from_json(
        {"task_id": task.task_id, "instruction": task.instruction, "prompt": recs[0]["prompt"],
         "siblings": [{"episode": r["episode"]} for r in recs]}
    )  # fmt: skip


def _teacher_scores(tiny, outputs, T):
    """Teacher log-probs: u0 after the offline reference's prefix (from the real group), u1 its own prompt."""
    group = real_group(outputs)
    ref = make_summarizer("offline").summarize(group)
    prefix = teacher_prefixes(TokenizerCodec(tiny.tokenizer), group, ref)
    prompts = [o.prompt_ids for _, o in outputs]
    heads = [prefix] * 3 + prompts[3:]
    return tiny.score(heads, [o.response_ids for _, o in outputs]).logprobs[:, :T]


def test_sgcd_advantages_equal_core(tiny, outputs, monkeypatch):
    tq = FakeTQ()
    batch = build_batch(tiny, outputs, tq)
    trainer = make_trainer(tiny, tq, monkeypatch, {"variant": "sgcd", "summarizer": "offline"})
    metrics: dict = {}
    out = trainer._compute_advantage(batch, metrics)
    assert out.keys == batch.keys
    a_B, w, ahat, mask = expected(tiny, outputs, teacher=True)
    # GRPO by hand for u0: R = [1, 1, 0], mean 2/3, unbiased std sqrt(1/3); u1 all equal -> 0
    s = math.sqrt(1 / 3)
    assert torch.allclose(a_B, torch.tensor([(1 / 3) / s, (1 / 3) / s, (-2 / 3) / s, 0, 0, 0]), atol=1e-5)
    got = padded(tq, batch.keys, "advantages")
    assert got.shape == ahat.shape
    assert torch.allclose(got, ahat, atol=1e-5), (got - ahat).abs().max()
    assert torch.equal(padded(tq, batch.keys, "returns"), got)
    # the reference moved the teacher: weights differ from 1 on u0, and are exactly 1 on u1 (A = 0)
    assert (w[:3][mask[:3]] - 1).abs().max() > 1e-3
    assert torch.all(w[3:][mask[3:]] == 1)
    # one compute_log_prob call on teacher rows (the reference in the prefix for u0), cleared afterwards
    (call,) = trainer.actor_rollout_wg.calls
    assert [k.removesuffix(sgcd_trainer.TEACHER_SUFFIX) for k in call.keys] == batch.keys
    assert not any(k.endswith(sgcd_trainer.TEACHER_SUFFIX) for _, k in tq.store)
    assert call.tags[0]["prompt_len"] > len(outputs[0][1].prompt_ids)  # u0: clean prompt + reference
    assert call.tags[3]["prompt_len"] == len(outputs[3][1].prompt_ids)  # u1 (not mixed): its own prompt
    assert metrics["sgcd/reference/mixed_groups"] == 1.0
    assert metrics["sgcd/credit/w_mean"] == pytest.approx(1.0, abs=0.05)


def test_grpo_variant_is_verl_grpo_and_needs_no_teacher(tiny, outputs, monkeypatch):
    tq = FakeTQ()
    batch = build_batch(tiny, outputs, tq)
    trainer = make_trainer(tiny, tq, monkeypatch, {"variant": "grpo"})
    trainer._compute_advantage(batch, {})
    _, _, ahat, _ = expected(tiny, outputs, teacher=False)
    assert torch.allclose(padded(tq, batch.keys, "advantages"), ahat, atol=1e-5)
    assert trainer.actor_rollout_wg.calls == []


def test_per_token_advantages_are_refused():
    mask = torch.tensor([[1, 1, 0]], dtype=torch.bool)
    assert outcome_advantages(torch.tensor([[0.5, 0.5, 9.0]]), mask).tolist() == [
        0.5
    ]  # off-mask value ignored
    with pytest.raises(ValueError, match="adv_estimator"):
        outcome_advantages(torch.tensor([[0.5, 0.4, 0.0]]), mask)


def test_bad_sgcd_block_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown key"):
        SGCDOptions.from_config(OmegaConf.create({"sgcd": {"epsilon": 0.2}}))
    with pytest.raises(ValueError, match="sgcd.variant='sgcd-topk'"):
        SGCDOptions.from_config(OmegaConf.create({"sgcd": {"variant": "sgcd-topk"}}))
    assert SGCDOptions.from_config(OmegaConf.create({})) == SGCDOptions()


@settings(max_examples=60, deadline=None)
@given(
    B=st.integers(1, 5),
    T=st.integers(1, 12),
    seed=st.integers(0, 2**16),
    variant=st.sampled_from(["sgcd", "unsigned", "failures-only", "shuffle"]),
)
def test_reshaped_advantages_keep_sign_and_reduce_to_grpo(B, T, seed, variant):
    """Invariants 1 and 2 through the verl path: sign(Ahat) = sign(A) on action tokens, 0 off them; a teacher
    equal to the student gives Ahat = A * mask exactly; verl's broadcast advantages are read back as A."""
    g = torch.Generator().manual_seed(seed)
    mask = torch.rand(B, T, generator=g) < 0.7
    a_B = torch.randn(B, generator=g)
    adv_B_T = a_B.unsqueeze(-1) * mask  # what verl's outcome estimators write
    old = -torch.rand(B, T, generator=g) * 3
    teacher = -torch.rand(B, T, generator=g) * 3
    opts = SGCDOptions(variant=variant)
    ahat, _ = sgcd_token_advantages(
        adv_B_T, mask, old, teacher, opts, generator=torch.Generator().manual_seed(0)
    )
    assert torch.all(ahat[~mask] == 0)
    assert torch.equal(torch.sign(ahat)[mask], torch.sign(a_B.unsqueeze(-1).expand(B, T))[mask])
    same, _ = sgcd_token_advantages(
        adv_B_T, mask, old, old.clone(), opts, generator=torch.Generator().manual_seed(0)
    )
    assert torch.allclose(same, adv_B_T, atol=1e-6)


# ---- issue 18: the seams between verl's batch and the algorithm -------------------------------------------------


class SpySummarizer:
    """The offline summarizer, recording the groups it was given."""

    def __init__(self) -> None:
        self.inner, self.groups = make_summarizer("offline"), []

    def summarize(self, group):
        self.groups.append(group)
        return self.inner.summarize(group)

    def metrics(self, reset: bool = False):
        return self.inner.metrics(reset=reset)


def _with_reward(output, reward: float):
    """An AgentLoopOutput whose reward (score and record) is `reward`; its own success flag stays as played."""
    import dataclasses

    rec = json.loads(output.extra_fields["sgcd"])
    rec["episode"]["reward"] = reward
    extra = {**output.extra_fields, "sgcd": json.dumps(rec)}
    return (
        dataclasses.replace(output, reward_score=reward, extra_fields=extra)
        if dataclasses.is_dataclass(output)
        else output.model_copy(update={"reward_score": reward, "extra_fields": extra})
    )


def test_sgcd_turn_variant_runs_and_equals_core_with_turn_ids(tiny, outputs, monkeypatch):
    """sgcd-turn: the turn ids the agent loop ships reach the credit weights (it used to crash)."""
    tq = FakeTQ()
    batch = build_batch(tiny, outputs, tq)
    trainer = make_trainer(tiny, tq, monkeypatch, {"variant": "sgcd-turn", "summarizer": "offline"})
    trainer._compute_advantage(batch, {})
    a_B, _, _, mask = expected(tiny, outputs, teacher=True)
    T = mask.shape[1]
    turns = torch.full(mask.shape, -1, dtype=torch.long)
    for i, (_, o) in enumerate(outputs):
        ids = json.loads(o.extra_fields["sgcd"])["turn_ids"]
        turns[i, : len(ids)] = torch.tensor(ids)
    teach = _teacher_scores(tiny, outputs, T)
    old = tiny.score([o.prompt_ids for _, o in outputs], [o.response_ids for _, o in outputs]).logprobs[:, :T]
    w, _ = credit_weights(teach, old, a_B, mask, turn_ids=torch.where(mask, turns, 0))
    want, _ = reshape_advantages(a_B, w, mask)
    got = padded(tq, batch.keys, "advantages")
    assert torch.allclose(got, want, atol=1e-5), (got - want).abs().max()


def test_group_record_carries_the_task_instruction(tiny, outputs, domain, monkeypatch):
    """The summarizer sees the task as the agent was given it, so the reference (and its leakage guard) has it."""
    tq = FakeTQ()
    batch = build_batch(tiny, outputs, tq)
    trainer = make_trainer(tiny, tq, monkeypatch, {"variant": "sgcd", "summarizer": "offline"})
    spy = SpySummarizer()
    trainer._sgcd_summarizer = spy
    trainer._compute_advantage(batch, {})
    (group,) = spy.groups
    task = domain.tasks("train")[14]
    assert group.instruction == task.instruction and group.instruction
    assert group.task_id == task.task_id


def test_evidence_is_labelled_by_success_threshold(tiny, outputs, monkeypatch):
    """success_threshold picks the mixed groups *and* labels the evidence: a 0.6 sibling at threshold 0.5 is a
    success in the reference, whatever flag the environment gave it."""
    rows = [(u, o) for u, o in outputs]
    rows[2] = (rows[2][0], _with_reward(rows[2][1], 0.6))  # u0: [1, 1, 0.6]
    rows[5] = (rows[5][0], _with_reward(rows[5][1], 0.0))  # u1: [1, 1, 0]
    tq = FakeTQ()
    batch = build_batch(tiny, rows, tq)
    trainer = make_trainer(
        tiny, tq, monkeypatch, {"variant": "sgcd", "summarizer": "offline", "success_threshold": 0.5}
    )
    spy = SpySummarizer()
    trainer._sgcd_summarizer = spy
    trainer._compute_advantage(batch, {})
    (group,) = spy.groups  # u0 is all-success at 0.5, u1 mixed
    assert [t.success for t in group.trajectories] == [True, True, False]
    assert [t.reward for t in group.trajectories] == [1.0, 1.0, 0.0]
    spy.groups.clear()
    trainer.config.sgcd.success_threshold = 0.65  # now u0 is mixed too; its 0.6 sibling is a failure
    trainer._compute_advantage(build_batch(tiny, rows, tq), {})
    assert [[t.success for t in g.trajectories] for g in spy.groups] == [[True, True, False]] * 2
    spy.groups.clear()
    trainer.config.sgcd.success_threshold = 0.55
    trainer._compute_advantage(build_batch(tiny, rows, tq), {})
    assert [[t.success for t in g.trajectories] for g in spy.groups] == [[True, True, False]]
