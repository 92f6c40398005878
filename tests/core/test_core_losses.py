"""Hand-computed tests of sgcd.core.losses (algorithm.md §6 and §7)."""

from __future__ import annotations

import math

import pytest
import torch

from sgcd.core.losses import (
    POLICY_LOSS_NEEDS,
    POLICY_LOSSES,
    aggregate,
    kl_k3,
    opd_token_advantages,
    ppo_clip_loss,
    sd_aux_loss,
    sd_replace_loss,
)

LN = math.log


def _ppo_case():
    # old log-probs 0, current log-probs ln r, so the ratios are exactly r = [1.5, 0.5, 1.0, 4.0].
    lp = torch.tensor([[LN(1.5), LN(0.5), 0.0, LN(4.0)]], requires_grad=True)
    old = torch.zeros(1, 4)
    adv = torch.tensor([[1.0, -1.0, 2.0, -1.0]])
    return lp, old, adv


def test_ppo_clip_hand_computed():
    # clip(r, 0.8, 1.28) = [1.28, 0.8, 1.0, 1.28]
    # tok0 A=+1: max(-1.5, -1.28) = -1.28 (clipped high, no gradient)
    # tok1 A=-1: max(0.5, 0.8) = 0.8 (clipped low, no gradient)
    # tok2 A=+2: max(-2, -2) = -2 (d/dlp = -A r = -2)
    # tok3 A=-1: max(4, 1.28) = 4, dual clip min(4, 3 * 1) = 3 (no gradient)
    # token-mean = (-1.28 + 0.8 - 2 + 3) / 4 = 0.13; grad = [0, 0, -2/4, 0]
    lp, old, adv = _ppo_case()
    loss, m = ppo_clip_loss(lp, old, adv, torch.ones(1, 4))
    assert loss.item() == pytest.approx(0.13, abs=1e-6)
    loss.backward()
    torch.testing.assert_close(lp.grad, torch.tensor([[0.0, 0.0, -0.5, 0.0]]))
    assert m["policy/clip_frac_high"] == 0.25 and m["policy/clip_frac_low"] == 0.25
    assert m["policy/dual_clip_frac"] == 0.25 and m["policy/clip_frac"] == 0.5
    # k3 = (r - 1) - ln r: [0.094535, 0.193147, 0, 1.613706], mean 0.475347; k1 = mean(-ln r) = -ln(3)/4
    assert m["policy/approx_kl"] == pytest.approx(0.475347, abs=1e-5)
    assert m["policy/approx_kl_k1"] == pytest.approx(-LN(1.5 * 0.5 * 4.0) / 4, abs=1e-6)


def test_ppo_without_dual_clip_and_symmetric_clip():
    # dual_clip=None: tok3 keeps 4. clip_high = 0.2: tok0 -> -1.2. Mean = (-1.2 + 0.8 - 2 + 4) / 4 = 0.4
    lp, old, adv = _ppo_case()
    loss, m = ppo_clip_loss(lp, old, adv, torch.ones(1, 4), clip_high=0.2, dual_clip=None)
    assert loss.item() == pytest.approx(0.4, abs=1e-6)
    assert m["policy/dual_clip_frac"] == 0.0
    with pytest.raises(ValueError, match="dual_clip"):
        ppo_clip_loss(lp, old, adv, torch.ones(1, 4), dual_clip=0.5)


def test_ppo_masked_tokens_ignored():
    # Token 3 masked (and NaN): mean over tokens 0..2 = (-1.28 + 0.8 - 2) / 3 = -0.826667
    lp = torch.tensor([[LN(1.5), LN(0.5), 0.0, float("nan")]], requires_grad=True)
    adv = torch.tensor([[1.0, -1.0, 2.0, float("nan")]])
    loss, _ = ppo_clip_loss(lp, torch.zeros(1, 4), adv, torch.tensor([[1, 1, 1, 0]]))
    assert loss.item() == pytest.approx(-0.826667, abs=1e-6)
    loss.backward()
    assert torch.isfinite(lp.grad).all() and lp.grad[0, 3] == 0.0


def test_aggregation_modes():
    # l = [[1, 2, 3], [4, 5, 6]], mask [[1, 1, 0], [1, 0, 0]]
    # token-mean = (1 + 2 + 4) / 3 = 7/3; seq-mean-token-mean = ((1 + 2) / 2 + 4 / 1) / 2 = 2.75
    # seq-mean-token-sum-norm = (3 + 4) / (T=3 * B=2) = 7/6; with norm_len = 7: 7 / 14 = 0.5
    loss = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    assert float(aggregate(loss, mask, "token-mean")) == pytest.approx(7 / 3)
    assert float(aggregate(loss, mask, "seq-mean-token-mean")) == pytest.approx(2.75)
    assert float(aggregate(loss, mask, "seq-mean-token-sum-norm")) == pytest.approx(7 / 6)
    assert float(aggregate(loss, mask, "seq-mean-token-sum-norm", norm_len=7)) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="unknown loss aggregation"):
        aggregate(loss, mask, "sum")


def test_seq_mean_skips_empty_sequences():
    # Row 1 has no action token: seq-mean-token-mean averages over row 0 only: (1 + 2) / 2 = 1.5
    loss = torch.tensor([[1.0, 2.0], [9.0, 9.0]])
    assert float(aggregate(loss, torch.tensor([[1, 1], [0, 0]]), "seq-mean-token-mean")) == 1.5


def test_ppo_agg_passed_through():
    # Two rows with r = 1 everywhere: loss_t = -A. A = [[1, 1, 1], [-3, *, *]] with mask [[1,1,1],[1,0,0]]
    # token-mean = (-3 + 3) / 4 = 0; seq-mean-token-mean = (-1 + 3) / 2 = 1
    lp = torch.zeros(2, 3, requires_grad=True)
    adv = torch.tensor([[1.0, 1.0, 1.0], [-3.0, 0.0, 0.0]])
    mask = torch.tensor([[1, 1, 1], [1, 0, 0]])
    assert ppo_clip_loss(lp, torch.zeros(2, 3), adv, mask)[0].item() == pytest.approx(0.0)
    assert ppo_clip_loss(lp, torch.zeros(2, 3), adv, mask, agg="seq-mean-token-mean")[0].item() == 1.0


def test_kl_k3():
    # lp = [ln .5, ln .25], ref = [ln .25, ln .5]: lr = ref - lp = [-ln 2, ln 2]
    # k3 = e^lr - lr - 1 = [0.5 + 0.693147 - 1, 2 - 0.693147 - 1] = [0.193147, 0.306853]; mean 0.25
    lp = torch.tensor([[LN(0.5), LN(0.25)]], requires_grad=True)
    loss, m = kl_k3(lp, torch.tensor([[LN(0.25), LN(0.5)]]), torch.ones(1, 2))
    assert loss.item() == pytest.approx(0.25, abs=1e-6) and m["policy/ref_kl"] == pytest.approx(
        0.25, abs=1e-6
    )
    # d k3 / d lp = -(e^lr) + 1 = [0.5, -1], divided by 2 tokens
    loss.backward()
    torch.testing.assert_close(lp.grad, torch.tensor([[0.25, -0.5]]))
    # Equal policies: exactly 0.
    assert kl_k3(lp.detach(), lp.detach(), torch.ones(1, 2))[0].item() == 0.0


def test_sd_replace_sampled_estimator():
    # lp = [-1, -2], teacher = [-1.5, -1]: k1 = lp - T = [0.5, -1]
    # surrogate = mean(k1 * lp) = (0.5 * -1 + -1 * -2) / 2 = 0.75; grad = k1 / 2 = [0.25, -0.5]
    # reported divergence = mean k1 = -0.25
    lp = torch.tensor([[-1.0, -2.0]], requires_grad=True)
    loss, m = sd_replace_loss(lp, torch.tensor([[-1.5, -1.0]]), torch.ones(1, 2))
    assert loss.item() == pytest.approx(0.75)
    loss.backward()
    torch.testing.assert_close(lp.grad, torch.tensor([[0.25, -0.5]]))
    assert m["loss/sd_div"] == pytest.approx(-0.25) and m["loss/sd_topk"] == 0.0
    with pytest.raises(ValueError, match="jsd"):
        sd_replace_loss(lp, torch.tensor([[-1.5, -1.0]]), torch.ones(1, 2), divergence="jsd")


def test_sd_replace_topk_and_gradient_reaches_student_only():
    # Top-2 + tail, p = [0.5, 0.3], q = [0.25, 0.25]: KL = 0.218012 (see test_core_divergence); JSD 0.055582.
    s = torch.tensor([[[LN(0.5), LN(0.3)]]], requires_grad=True)
    t = torch.tensor([[[LN(0.25), LN(0.25)]]], requires_grad=True)
    lp = torch.zeros(1, 1, requires_grad=True)
    loss, m = sd_replace_loss(lp, torch.zeros(1, 1), torch.ones(1, 1), s, t)
    assert loss.item() == pytest.approx(0.218012, abs=1e-5) and m["loss/sd_topk"] == 1.0
    loss.backward()
    assert s.grad is not None and t.grad is None  # the teacher is detached
    jsd, _ = sd_replace_loss(lp, torch.zeros(1, 1), torch.ones(1, 1), s, t, divergence="jsd")
    assert jsd.item() == pytest.approx(0.055582, abs=1e-5)


def test_sd_aux():
    # r = 1 and Ahat = [1, 1] -> PPO = mean(-1, -1) = -1; sd-replace (sampled) on lp = [-1, -2], T = [-1.5, -1]
    # = 0.75 (see above); beta 0.1 -> -1 + 0.075 = -0.925
    lp = torch.tensor([[-1.0, -2.0]], requires_grad=True)
    loss, m = sd_aux_loss(
        lp, lp.detach(), torch.ones(1, 2), torch.ones(1, 2), torch.tensor([[-1.5, -1.0]]), beta_sd=0.1
    )
    assert loss.item() == pytest.approx(-0.925)
    assert m["loss/sd_beta"] == 0.1 and "policy/clip_frac" in m


def test_opd_token_advantages():
    # A = 1, S = [-1, -2, -0.5], T = [-1.5, -1, -0.5], c = 1: gap S - T = [0.5, -1, 0]
    # Ahat = A - c gap = [0.5, 2, 1]; with c = 0.1: [0.95, 1.1, 1]; masked token -> 0
    adv, _ = opd_token_advantages(
        torch.tensor([1.0]),
        torch.tensor([[-1.0, -2.0, -0.5]]),
        torch.tensor([[-1.5, -1.0, -0.5]]),
        torch.ones(1, 3),
        c=1.0,
    )
    torch.testing.assert_close(adv, torch.tensor([[0.5, 2.0, 1.0]]))
    adv, _ = opd_token_advantages(
        torch.tensor([1.0]),
        torch.tensor([[-1.0, -2.0, -0.5]]),
        torch.tensor([[-1.5, -1.0, -0.5]]),
        torch.tensor([[1, 1, 0]]),
        c=0.1,
    )
    torch.testing.assert_close(adv, torch.tensor([[0.95, 1.1, 0.0]]))


def test_policy_loss_registry():
    # Every loss is callable with the same keyword set; opd-advantage at r = 1 gives mean(-Ahat):
    # Ahat = [0.5, 2] (A = 1, S = old = [-1, -2], T = [-1.5, -1]) -> -(0.5 + 2)/2 = -1.25
    lp = torch.tensor([[-1.0, -2.0]], requires_grad=True)
    common = dict(
        logprobs=lp,
        old_logprobs=lp.detach(),
        token_advantages=torch.ones(1, 2),
        action_mask=torch.ones(1, 2),
        advantages=torch.tensor([1.0]),
        teacher_logprobs=torch.tensor([[-1.5, -1.0]]),
        student_topk_logprobs=None,
        teacher_topk_logprobs=None,
        clip_low=0.2,
    )
    assert set(POLICY_LOSSES) == set(POLICY_LOSS_NEEDS)
    assert POLICY_LOSSES["ppo-clip"](**common)[0].item() == pytest.approx(-1.0)
    assert POLICY_LOSSES["sd-replace"](**common)[0].item() == pytest.approx(0.75)
    assert POLICY_LOSSES["sd-aux"](**common, beta_sd=1.0)[0].item() == pytest.approx(-0.25)
    assert POLICY_LOSSES["opd-advantage"](**common, c=1.0)[0].item() == pytest.approx(-1.25)
    with pytest.raises(ValueError, match="teacher_logprobs"):
        POLICY_LOSSES["sd-replace"](**{**common, "teacher_logprobs": None})


def test_empty_mask_gives_zero_loss_with_graph():
    lp = torch.zeros(2, 3, requires_grad=True)
    loss, m = ppo_clip_loss(lp, torch.zeros(2, 3), torch.ones(2, 3), torch.zeros(2, 3))
    assert loss.item() == 0.0 and m["policy/clip_frac"] == 0.0 and m["policy/approx_kl"] == 0.0
    loss.backward()
    assert torch.equal(lp.grad, torch.zeros(2, 3))


def test_nonfinite_action_logprob_named():
    lp = torch.zeros(3, 2)
    lp[1, 0] = float("-inf")
    with pytest.raises(ValueError, match="logprobs.*trajectory 1"):
        ppo_clip_loss(lp, torch.zeros(3, 2), torch.ones(3, 2), torch.ones(3, 2))
