"""Hand-computed tests of sgcd.core.divergence (algorithm.md §4)."""

from __future__ import annotations

import math

import pytest
import torch

from sgcd.core.divergence import logratio, token_entropy, topk_jsd, topk_logprobs, topk_reverse_kl

LN = math.log


def test_logratio():
    # delta = T - S on action tokens: [-1 - (-2), -0.5 - (-0.5), (masked)] = [1, 0, 0]; mean 0.5, std 0.5.
    d, m = logratio(
        torch.tensor([[-1.0, -0.5, float("inf")]]),
        torch.tensor([[-2.0, -0.5, 0.0]]),
        torch.tensor([[1, 1, 0]]),
    )
    assert d.tolist() == [[1.0, 0.0, 0.0]]
    assert m["credit/div_logratio_mean"] == 0.5 and m["credit/div_logratio_std"] == 0.5


def _one(p):
    return torch.tensor([[[LN(x) for x in p]]])


def test_topk_reverse_kl_with_tail():
    # Student top-2 p = [0.5, 0.3] (tail 0.2); teacher at the same ids q = [0.25, 0.25] (tail 0.5).
    # KL = 0.5 ln 2 + 0.3 ln 1.2 + 0.2 ln 0.4 = 0.346574 + 0.054696 - 0.183258 = 0.218012
    kl, _ = topk_reverse_kl(_one([0.5, 0.3]), _one([0.25, 0.25]), torch.ones(1, 1))
    assert float(kl) == pytest.approx(0.218012, abs=1e-5)
    # Without the tail bucket: 0.5 ln 2 + 0.3 ln 1.2 = 0.401270
    kl, _ = topk_reverse_kl(_one([0.5, 0.3]), _one([0.25, 0.25]), torch.ones(1, 1), tail=False)
    assert float(kl) == pytest.approx(0.401270, abs=1e-5)


def test_topk_reverse_kl_full_vocab_is_exact():
    # k = V: the tail is empty (floored at 1e-8 on both sides, contributing ~0), so the value is the exact KL.
    # p = [0.7, 0.2, 0.1], q = [0.2, 0.5, 0.3]: KL = 0.7 ln 3.5 + 0.2 ln 0.4 + 0.1 ln(1/3) = 0.876934 - 0.183258
    # - 0.109861 = 0.583815
    kl, _ = topk_reverse_kl(_one([0.7, 0.2, 0.1]), _one([0.2, 0.5, 0.3]), torch.ones(1, 1))
    assert float(kl) == pytest.approx(0.583815, abs=1e-5)


def test_topk_teacher_minus_inf_is_floored():
    # The teacher gives a student top token -inf: floored at p = 1e-8 instead of an infinite KL.
    kl, _ = topk_reverse_kl(_one([0.5, 0.5]), torch.tensor([[[0.0, -float("inf")]]]), torch.ones(1, 1))
    # 0.5 ln(0.5 / 1) + 0.5 ln(0.5 / 1e-8), tail (1e-8 vs floor) contributes ~0
    assert float(kl) == pytest.approx(0.5 * LN(0.5) + 0.5 * LN(0.5 / 1e-8), abs=1e-4)


def test_topk_jsd():
    # P = [0.5, 0.3, 0.2], Q = [0.25, 0.25, 0.5], M = [0.375, 0.275, 0.35]
    # JSD = 0.5 KL(P||M) + 0.5 KL(Q||M) = 0.055582
    j, _ = topk_jsd(_one([0.5, 0.3]), _one([0.25, 0.25]), torch.ones(1, 1))
    assert float(j) == pytest.approx(0.055582, abs=1e-5)
    with pytest.raises(ValueError, match="beta"):
        topk_jsd(_one([0.5]), _one([0.5]), torch.ones(1, 1), beta=1.0)


def test_topk_masked_positions_zero_and_ignored():
    s = torch.cat([_one([0.5, 0.3]), torch.full((1, 1, 2), float("nan"))], dim=1)  # (1, 2, 2)
    t = torch.cat([_one([0.25, 0.25]), torch.full((1, 1, 2), float("nan"))], dim=1)
    kl, _ = topk_reverse_kl(s, t, torch.tensor([[1, 0]]))
    assert kl[0, 1] == 0.0 and float(kl[0, 0]) == pytest.approx(0.218012, abs=1e-5)


def test_topk_logprobs_gathers_teacher_at_student_ids():
    # Student logits [2, 1, 0] -> top-2 ids [0, 1]; teacher logits [0, 0, 0] -> ln(1/3) at each.
    (s, t, ids), _ = topk_logprobs(torch.tensor([[[2.0, 1.0, 0.0]]]), torch.zeros(1, 1, 3), k=2)
    assert ids.tolist() == [[[0, 1]]]
    torch.testing.assert_close(t, torch.full((1, 1, 2), LN(1 / 3)))
    z = LN(math.exp(2) + math.exp(1) + 1)
    torch.testing.assert_close(s, torch.tensor([[[2 - z, 1 - z]]]))


def test_token_entropy():
    # Uniform over 4 -> ln 4 = 1.386294; [0, -inf] -> one-hot -> 0 (not NaN); [0, 0] (+ -inf) -> ln 2.
    logits = torch.tensor(
        [
            [
                [0.0, 0.0, 0.0, 0.0],
                [0.0, -float("inf"), -float("inf"), -float("inf")],
                [0.0, 0.0, -float("inf"), -float("inf")],
            ]
        ]
    )
    h, m = token_entropy(logits, chunk_size=2)
    torch.testing.assert_close(h, torch.tensor([[LN(4), 0.0, LN(2)]]))
    # With a mask, masked tokens read 0 and the mean is over action tokens: (ln 4 + ln 2) / 2.
    h, m = token_entropy(logits, torch.tensor([[1, 0, 1]]))
    assert h[0, 1] == 0.0 and m["credit/div_entropy_mean"] == pytest.approx((LN(4) + LN(2)) / 2)


def test_token_entropy_chunking_is_exact():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 7, 11, generator=g)
    full, _ = token_entropy(logits, chunk_size=100)
    for chunk in (1, 3, 7):
        torch.testing.assert_close(token_entropy(logits, chunk_size=chunk)[0], full)


def test_nonfinite_on_action_token_is_named():
    s = torch.zeros(3, 2)
    t = torch.zeros(3, 2)
    t[2, 1] = float("nan")
    with pytest.raises(ValueError, match="teacher_logprobs.*trajectory 2"):
        logratio(t, s, torch.ones(3, 2))
    with pytest.raises(ValueError, match="same shape"):
        logratio(torch.zeros(3, 3), s, torch.ones(3, 2))
