"""Degenerate input (issue 2, Must show 6): a clear outcome, never NaN.

Groups of size 1 and all-equal rewards -> A = 0 (test_core_advantages_sampling); here: empty action masks,
all-masked trajectories, a whole batch of A = 0, and NaN/inf in log-probs -> ValueError naming the trajectory,
while NaN/inf at masked positions are ignored, for every core function that reads log-probs.
"""

from __future__ import annotations

import pytest
import torch

from sgcd.core.advantages import grpo_advantages
from sgcd.core.credit import credit_weights, reshape_advantages
from sgcd.core.divergence import logratio, topk_jsd, topk_reverse_kl
from sgcd.core.losses import kl_k3, opd_token_advantages, ppo_clip_loss, sd_aux_loss, sd_replace_loss

B, T = 3, 4


def _calls():
    """name -> f(teacher, student, mask) for every function that reads (B, T) log-probs."""
    adv_B = torch.tensor([1.0, -1.0, 0.5])
    ones = torch.ones(B, T)

    def topk(x):
        return torch.stack([x - 0.1, x - 2.0], dim=-1)

    return {
        "logratio": lambda t, s, m: logratio(t, s, m),
        "credit_weights": lambda t, s, m: credit_weights(t, s, adv_B, m),
        "credit_weights_turn_gate": lambda t, s, m: credit_weights(
            t, s, adv_B, m, turn_ids=torch.zeros(B, T, dtype=torch.long), teacher_entropy=ones
        ),
        "ppo_clip_loss": lambda t, s, m: ppo_clip_loss(t, s, ones, m),
        "kl_k3": lambda t, s, m: kl_k3(s, t, m),
        "sd_replace_sampled": lambda t, s, m: sd_replace_loss(s, t, m),
        "sd_replace_topk": lambda t, s, m: sd_replace_loss(s, t, m, topk(s), topk(t)),
        "sd_aux": lambda t, s, m: sd_aux_loss(s, s, ones, m, t),
        "opd": lambda t, s, m: opd_token_advantages(adv_B, s, t, m),
        "topk_reverse_kl": lambda t, s, m: topk_reverse_kl(topk(s), topk(t), m),
        "topk_jsd": lambda t, s, m: topk_jsd(topk(s), topk(t), m),
    }


def _inputs():
    g = torch.Generator().manual_seed(3)
    s = -torch.rand(B, T, generator=g) - 0.5
    return s + 0.1 * torch.randn(B, T, generator=g), s


@pytest.mark.parametrize("name", list(_calls()))
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_nonfinite_on_action_token_names_the_trajectory(name, bad):
    t, s = _inputs()
    t[1, 2] = bad
    s[1, 2] = bad
    with pytest.raises(ValueError, match="trajectory 1"):
        _calls()[name](t, s, torch.ones(B, T))


@pytest.mark.parametrize("name", list(_calls()))
def test_nonfinite_on_masked_token_is_ignored(name):
    t, s = _inputs()
    t[1, 2], s[1, 2], t[0, 0], s[2, 3] = float("nan"), float("inf"), -float("inf"), float("nan")
    m = torch.ones(B, T)
    m[1, 2] = m[0, 0] = m[2, 3] = 0
    out, metrics = _calls()[name](t, s, m)
    assert torch.isfinite(out).all()
    assert all(v == v for v in metrics.values()), f"NaN metric from {name}: {metrics}"


@pytest.mark.parametrize("name", list(_calls()))
def test_empty_action_mask_everywhere(name):
    t, s = _inputs()
    out, metrics = _calls()[name](t, s, torch.zeros(B, T))
    assert torch.isfinite(out).all()
    assert all(v == v for v in metrics.values()), f"NaN metric from {name}: {metrics}"


def test_all_masked_trajectory_gets_weight_one_and_zero_advantage():
    t, s = _inputs()
    m = torch.ones(B, T)
    m[1] = 0
    w, metrics = credit_weights(t, s, torch.tensor([1.0, -1.0, 0.5]), m)
    assert torch.equal(w[1], torch.ones(T))
    ahat, _ = reshape_advantages(torch.tensor([1.0, -1.0, 0.5]), w, m)
    assert torch.equal(ahat[1], torch.zeros(T))
    assert metrics["credit/w_mean"] == pytest.approx(1.0, abs=1e-6)


def test_batch_of_zero_advantages_is_grpo_and_metrics_zero():
    # All-equal rewards -> A = 0 everywhere -> w = 1, Ahat = 0, the PPO loss is exactly 0 (no NaN metric).
    t, s = _inputs()
    adv, _ = grpo_advantages(torch.ones(B), torch.zeros(B, dtype=torch.long))
    w, metrics = credit_weights(t, s, adv, torch.ones(B, T))
    assert torch.equal(w, torch.ones(B, T)) and metrics["credit/w_n"] == 0.0
    ahat, _ = reshape_advantages(adv, w, torch.ones(B, T))
    loss, _ = ppo_clip_loss(s.clone().requires_grad_(), s, ahat, torch.ones(B, T))
    assert loss.item() == 0.0


def test_zero_length_batch():
    w, metrics = credit_weights(torch.zeros(0, 0), torch.zeros(0, 0), torch.zeros(0), torch.zeros(0, 0))
    assert w.shape == (0, 0) and all(v == v for v in metrics.values())


def test_nonfinite_advantage_named():
    t, s = _inputs()
    with pytest.raises(ValueError, match="advantages.*trajectory 2"):
        credit_weights(t, s, torch.tensor([1.0, 0.0, float("nan")]), torch.ones(B, T))


def test_shape_mismatches_are_named():
    t, s = _inputs()
    with pytest.raises(ValueError, match="advantages must be"):
        credit_weights(t, s, torch.zeros(B + 1), torch.ones(B, T))
    with pytest.raises(ValueError, match="teacher_logprobs shape"):
        credit_weights(t[:, :2], s, torch.zeros(B), torch.ones(B, T))
    with pytest.raises(ValueError, match="action_mask"):
        credit_weights(t, s, torch.zeros(B), torch.ones(B, T + 1))
    with pytest.raises(ValueError, match="turn_ids must be >= 0"):
        credit_weights(t, s, torch.ones(B), torch.ones(B, T), turn_ids=-torch.ones(B, T, dtype=torch.long))
