"""Bugs found in the trainer step's seams (issue 18), each on a hand-built batch and the tiny model.

The batch: two groups x 2 siblings with made-up trajectory tokens (success / failure), a two-turn action mask
(turn ids 0 and 1, env tokens between), scored by the tiny model. Nothing is sampled, so every run is exact.
"""

from __future__ import annotations

import torch

from sgcd.credit_reference import make_summarizer
from sgcd.policy.models import load_policy
from sgcd.trainer.config import make_config
from sgcd.trainer.loop import step as step_mod
from sgcd.trainer.loop.collect import Collected
from sgcd.trainer.loop.step import StepContext, train_on
from sgcd.trainer.setup import make_optimizer
from sgcd.types import Episode, Message, Observation, Step, Trajectory, TrajectoryGroup

MASK = (1, 1, 1, 0, 0, 1, 1, 1, 1)
TURNS = (0, 0, 0, -1, -1, 1, 1, 1, 1)


def make_groups(policy, n_groups: int = 2) -> list[TrajectoryGroup]:
    groups = []
    g = torch.Generator().manual_seed(7)
    for k in range(n_groups):
        prompt = Observation(messages=(Message("system", "Be brief."), Message("user", f"Task {k}: say ok.")))
        prompt_ids = tuple(policy.encode_prompt(prompt.messages, prompt.tools))
        trajs = []
        for j, reward in enumerate((1.0, 0.0)):
            n = len(MASK) - j  # rows of different lengths: padding in the batch
            ids = tuple(int(x) for x in torch.randint(5, 200, (n,), generator=g))
            ep = Episode(f"t{k}", (), (Step(0, "ok", final=True),), reward, reward >= 1.0)
            trajs.append(Trajectory(ep, prompt_ids, ids, MASK[:n], TURNS[:n], (0.0,) * n, group_id=k))
        groups.append(TrajectoryGroup(f"t{k}", tuple(trajs), prompt, f"Task {k}: say ok."))
    return groups


def make_ctx(overrides: list[str], policy=None, ref_policy=None) -> StepContext:
    cfg = make_config(
        None,
        [
            "model.name=tiny",
            "algorithm.minibatch_size=4",
            "algorithm.microbatch_size=2",
            "sampling.max_tokens=64",
            *overrides,
        ],
    )
    policy = policy or load_policy("tiny")
    optimizer, scheduler = make_optimizer(cfg, policy.model)
    return StepContext(
        cfg=cfg, policy=policy, domain=None, sampler=None, optimizer=optimizer, scheduler=scheduler,
        sampling_params=None, limits=None, generator=torch.Generator().manual_seed(0),
        summarizer=make_summarizer("offline"), ref_policy=ref_policy,
    )  # fmt: skip


def _step(ctx: StepContext):
    groups = make_groups(ctx.policy)
    return train_on(ctx, Collected(mixed=groups, all_groups=groups))


def test_k3_kl_in_seq_mean_token_sum_norm_uses_max_tokens_like_the_ppo_term(monkeypatch):
    """Both terms of the loss are normalised by sampling.max_tokens, not by the padded batch length T."""
    seen = []
    real = step_mod.kl_k3

    def spy(*args, **kwargs):
        seen.append(args[4] if len(args) > 4 else kwargs.get("norm_len"))
        return real(*args, **kwargs)

    monkeypatch.setattr(step_mod, "kl_k3", spy)
    ref = load_policy("tiny")
    ctx = make_ctx(
        ["algorithm.loss_agg=seq-mean-token-sum-norm", "algorithm.kl_beta=0.1", "algorithm.name=grpo"],
        ref_policy=ref,
    )
    _step(ctx)
    assert seen and all(n == 64.0 for n in seen), seen


def test_reference_teacher_scores_both_sides_with_the_reference_model(monkeypatch):
    """teacher=reference: with the teacher prompt equal to the clean prompt, delta must be 0 exactly (w = 1),
    however far the policy has drifted from the reference."""
    policy, ref = load_policy("tiny"), load_policy("tiny")
    with torch.no_grad():  # the policy has drifted from the frozen reference
        for p in policy.model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    monkeypatch.setattr(
        step_mod, "teacher_prefix_rows", lambda ctx, batch, refs: [list(p) for p in batch.prefixes]
    )
    ctx = make_ctx(["credit.teacher=reference"], policy=policy, ref_policy=ref)
    out = _step(ctx)
    w = out.weights_B_T[out.batch.action_mask_B_T]
    assert torch.equal(w, torch.ones_like(w)), f"w spread {float((w - 1).abs().max()):.3g}"


def test_shuffle_control_does_not_change_the_minibatch_order(monkeypatch):
    """credit.shuffle changes one thing only: the weights' positions. The minibatch order stays the same."""
    orders: dict[bool, list] = {}
    for shuffle in (False, True):
        seen: list = []
        real = torch.randperm

        def spy(n, *args, _seen=seen, _real=real, **kwargs):
            out = _real(n, *args, **kwargs)
            _seen.append(out.tolist())
            return out

        monkeypatch.setattr(step_mod.torch, "randperm", spy)
        ctx = make_ctx([f"credit.shuffle={str(shuffle).lower()}", "algorithm.minibatch_size=2",
                        "algorithm.microbatch_size=1", "algorithm.ppo_epochs=2"])  # fmt: skip
        _step(ctx)
        monkeypatch.setattr(step_mod.torch, "randperm", real)
        orders[shuffle] = seen
    assert orders[False] and orders[True] == orders[False]
