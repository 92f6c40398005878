"""Hand-computed tests of sgcd.core.credit (algorithm.md §5): every step and every option on 3-10 tokens.

Notation: eps = 0.2 unless stated, so the u bound is [log 0.8, log 1.2] = [-0.223144, 0.182322] and the final
clamp is [0.6, 1.4]. w = exp(clamp(u_centred)) / masked_mean(exp(clamp(u_centred))).
"""

from __future__ import annotations

import math

import pytest
import torch

from sgcd.core.credit import CREDIT_VARIANT_NEEDS, CREDIT_VARIANTS, credit_weights, reshape_advantages
from sgcd.core.credit_stats import polarity_agreement, weight_stats_by_token_type

ATOL = 1e-5


def _w(delta, adv, mask=None, **kw):
    """credit_weights with student = 0 and teacher = delta, so delta_t is exactly the given numbers."""
    delta_B_T = torch.tensor(delta, dtype=torch.float32)
    mask_B_T = torch.ones_like(delta_B_T) if mask is None else torch.tensor(mask, dtype=torch.float32)
    return credit_weights(
        teacher_logprobs=delta_B_T,
        student_logprobs=torch.zeros_like(delta_B_T),
        advantages=torch.tensor(adv, dtype=torch.float32),
        action_mask=mask_B_T,
        **kw,
    )


def test_success_row_follows_teacher():
    # A = +1, delta = [0.1, -0.1, 0.3, -0.3]; u = delta, masked mean 0, so centring changes nothing.
    # clamp: [0.1, -0.1, 0.182322, -0.223144]; exp: [1.105171, 0.904837, 1.2, 0.8]; mean = 1.002502
    # w = exp / 1.002502 = [1.102413, 0.902579, 1.197005, 0.798003]
    w, m = _w([[0.1, -0.1, 0.3, -0.3]], [1.0])
    torch.testing.assert_close(w, torch.tensor([[1.102413, 0.902579, 1.197005, 0.798003]]), atol=ATOL, rtol=0)
    assert m["credit/w_mean"] == pytest.approx(1.0, abs=1e-6)
    # Two of four tokens hit the u bound: 0.3 -> high, -0.3 -> low.
    assert m["credit/u_frac_at_high"] == pytest.approx(0.25)
    assert m["credit/u_frac_at_low"] == pytest.approx(0.25)


def test_failure_row_flips_sign():
    # A = -1: u = -delta = [-0.1, 0.1, -0.3, 0.3]; same numbers as above, mirrored token by token.
    w, m = _w([[0.1, -0.1, 0.3, -0.3]], [-2.5])
    torch.testing.assert_close(w, torch.tensor([[0.902579, 1.102413, 0.798003, 1.197005]]), atol=ATOL, rtol=0)
    assert m["credit/w_neg_n"] == 4.0 and m["credit/w_pos_n"] == 0.0


def test_centring_removes_the_shift():
    # delta = [0.5, 0.5, 0.7, 0.3], mean 0.5 -> u = [0, 0, 0.2, -0.2]; clamp -> [0, 0, 0.182322, -0.2]
    # exp -> [1, 1, 1.2, 0.818731]; mean 1.004683; w = [0.995339, 0.995339, 1.194407, 0.814915]
    w, m = _w([[0.5, 0.5, 0.7, 0.3]], [1.0])
    torch.testing.assert_close(w, torch.tensor([[0.995339, 0.995339, 1.194407, 0.814915]]), atol=ATOL, rtol=0)
    assert m["credit/delta_mean"] == pytest.approx(0.5, abs=1e-6)
    assert m["credit/u_centred_mean"] == pytest.approx(0.0, abs=1e-6)


def test_masked_token_is_ignored_and_gets_one():
    # mask [1, 1, 0, 1]; delta at the masked slot is NaN and must not matter.
    # u over action tokens [0.2, -0.2, 0.0], mean 0; clamp -> [0.182322, -0.2, 0]; exp -> [1.2, 0.818731, 1]
    # mean 1.006244; w = [1.192554, 0.813651, (masked) 1, 0.993795]
    w, _ = _w([[0.2, -0.2, float("nan"), 0.0]], [1.0], mask=[[1, 1, 0, 1]])
    torch.testing.assert_close(w, torch.tensor([[1.192554, 0.813651, 1.0, 0.993795]]), atol=ATOL, rtol=0)


def test_final_clamp_binds():
    # T = 10, delta = [9, -1 x 9], mean 0: clamp -> [0.182322, -0.223144 x 9]; exp -> [1.2, 0.8 x 9]
    # mean 0.84 -> w = [1.428571, 0.952381 x 9]; the final clamp [0.6, 1.4] cuts the first to 1.4.
    w, m = _w([[9.0] + [-1.0] * 9], [1.0])
    torch.testing.assert_close(w, torch.tensor([[1.4] + [0.952381] * 9]), atol=ATOL, rtol=0)
    assert m["credit/w_frac_at_high"] == pytest.approx(0.1)
    assert m["credit/w_frac_at_low"] == 0.0
    # The mean is no longer 1 (invariant 5 holds only when the clamp does not bind): (1.4 + 9 * 0.952381) / 10
    assert m["credit/w_mean"] == pytest.approx(0.997143, abs=1e-5)


def test_eps_changes_the_bound():
    # eps = 0.5: bound [log 0.5, log 1.5] = [-0.693147, 0.405465]; delta = [0.3, -0.3] stays unclamped.
    # exp -> [1.349859, 0.740818], mean 1.045339; w = [1.291310, 0.708690]
    w, _ = _w([[0.3, -0.3]], [1.0], eps=0.5)
    torch.testing.assert_close(w, torch.tensor([[1.291310, 0.708690]]), atol=ATOL, rtol=0)


def test_lambda_mixes_with_one():
    # lam = 0.5 on the first example: w = 0.5 + 0.5 * [1.102413, 0.902579, 1.197005, 0.798003]
    w, _ = _w([[0.1, -0.1, 0.3, -0.3]], [1.0], lam=0.5)
    torch.testing.assert_close(w, torch.tensor([[1.051206, 0.951290, 1.098502, 0.899002]]), atol=ATOL, rtol=0)
    # The same binding clamp as test_final_clamp_binds, seen through lam = 0.5: 0.5 + 0.5 * 1.4 = 1.2 is the
    # mixed upper bound, so the bound fraction is still 1 of 10.
    _, m = _w([[9.0] + [-1.0] * 9], [1.0], lam=0.5)
    assert m["credit/w_frac_at_high"] == pytest.approx(0.1) and m["credit/w_max"] == pytest.approx(1.2)
    w0, _ = _w([[0.1, -0.1, 0.3, -0.3]], [1.0], lam=0.0)  # lam = 0 is exactly GRPO
    assert torch.equal(w0, torch.ones(1, 4))


def test_zero_advantage_and_empty_rows_get_one():
    # Row 0: A = 0 -> w = 1. Row 1: no action token -> w = 1. Row 2: normal (delta all equal -> centred 0 -> 1).
    w, m = _w([[0.3, -0.3], [0.3, -0.3], [0.4, 0.4]], [0.0, 1.0, 1.0], mask=[[1, 1], [0, 0], [1, 1]])
    assert torch.equal(w, torch.ones(3, 2))
    assert m["credit/active_traj_frac"] == pytest.approx(1 / 3)


def test_turn_level_aggregation():
    # delta = [0.1, 0.3, -0.2, 0.0], turns [0, 0, 1, 1], A = +1.
    # Turn means: turn 0 = 0.2, turn 1 = -0.1 -> u = [0.2, 0.2, -0.1, -0.1]; centre (mean 0.05) ->
    # [0.15, 0.15, -0.15, -0.15] (inside the bound); exp -> [1.161834 x2, 0.860708 x2], mean 1.011271
    # w = [1.148885, 1.148885, 0.851115, 0.851115]
    turns = torch.tensor([[0, 0, 1, 1]])
    w, _ = _w([[0.1, 0.3, -0.2, 0.0]], [1.0], turn_ids=turns)
    torch.testing.assert_close(w, torch.tensor([[1.148885, 1.148885, 0.851115, 0.851115]]), atol=ATOL, rtol=0)


def test_turn_level_ignores_observation_tokens():
    # Observation token (mask 0, turn id -1) between turns holds NaN: not read. Action tokens as above.
    turns = torch.tensor([[0, 0, -1, 1, 1]])
    w, _ = _w([[0.1, 0.3, float("nan"), -0.2, 0.0]], [1.0], mask=[[1, 1, 0, 1, 1]], turn_ids=turns)
    torch.testing.assert_close(
        w, torch.tensor([[1.148885, 1.148885, 1.0, 0.851115, 0.851115]]), atol=ATOL, rtol=0
    )


def test_entropy_gate():
    # H_T = [0, 1, 2, 4], h0 = 2, g_min = 0.25: g = clamp(1 - H/2, 0.25, 1) = [1, 0.5, 0.25, 0.25].
    # delta = [0.1, -0.1, 0.1, -0.1] (mean 0) -> gated u = [0.1, -0.05, 0.025, -0.025]
    # exp -> [1.105171, 0.951229, 1.025315, 0.975310], mean 1.014256; w = [1.089637, 0.937859, 1.010903, 0.961601]
    h = torch.tensor([[0.0, 1.0, 2.0, 4.0]])
    w, _ = _w([[0.1, -0.1, 0.1, -0.1]], [1.0], teacher_entropy=h, gate_h0=2.0, gate_min=0.25)
    torch.testing.assert_close(w, torch.tensor([[1.089637, 0.937859, 1.010903, 0.961601]]), atol=ATOL, rtol=0)


def test_topk_magnitude_with_sampled_sign():
    # delta = [0.1, -0.2, 0.05, -0.01] gives the signs (+, -, +, -); topk_kl = [0.3, 0.1, 0.0, 0.2] the sizes.
    # u = [0.3, -0.1, 0.0, -0.2], mean 0; clamp -> [0.182322, -0.1, 0, -0.2]; exp -> [1.2, 0.904837, 1, 0.818731]
    # mean 0.980892; w = [1.223376, 0.922464, 1.019480, 0.834680]
    kl = torch.tensor([[0.3, 0.1, 0.0, 0.2]])
    w, _ = _w([[0.1, -0.2, 0.05, -0.01]], [1.0], topk_kl=kl)
    torch.testing.assert_close(w, torch.tensor([[1.223376, 0.922464, 1.019480, 0.834680]]), atol=ATOL, rtol=0)


def test_unsigned_ignores_the_sign_of_a():
    # signed=False, A = -1: u = delta (not -delta), so the weights equal the A = +1 example.
    w, _ = _w([[0.1, -0.1, 0.3, -0.3]], [-1.0], signed=False)
    torch.testing.assert_close(w, torch.tensor([[1.102413, 0.902579, 1.197005, 0.798003]]), atol=ATOL, rtol=0)


def test_failures_only():
    # Row 0 (A > 0) keeps w = 1; row 1 (A < 0) gets the mirrored weights of test_failure_row_flips_sign.
    w, _ = _w([[0.1, -0.1, 0.3, -0.3]] * 2, [1.0, -1.0], failures_only=True)
    torch.testing.assert_close(
        w, torch.tensor([[1.0, 1.0, 1.0, 1.0], [0.902579, 1.102413, 0.798003, 1.197005]]), atol=ATOL, rtol=0
    )


def test_shuffle_permutes_within_action_tokens():
    # Shuffling keeps each row's multiset of weights on action tokens, leaves masked tokens at 1, and is
    # reproducible with the same seed.
    delta = [[0.1, -0.1, 0.3, -0.3, 0.0, 0.2], [0.05, 0.0, -0.05, 0.15, -0.15, 0.0]]
    mask = [[1, 1, 0, 1, 1, 1], [1, 1, 1, 1, 1, 1]]
    base, _ = _w(delta, [1.0, -1.0], mask=mask)
    seen = set()
    for seed in range(6):
        out, _ = _w(
            delta, [1.0, -1.0], mask=mask, shuffle=True, generator=torch.Generator().manual_seed(seed)
        )
        again, _ = _w(
            delta, [1.0, -1.0], mask=mask, shuffle=True, generator=torch.Generator().manual_seed(seed)
        )
        assert torch.equal(out, again)
        assert out[0, 2] == 1.0
        m = torch.tensor(mask, dtype=torch.bool)
        for i in range(2):
            torch.testing.assert_close(out[i][m[i]].sort().values, base[i][m[i]].sort().values)
        seen.add(tuple(out.flatten().tolist()))
    assert len(seen) > 1, "six seeds gave one order: the shuffle does not shuffle"


def test_reshape_advantages():
    # A = [2, -1], w = [[1.1, 0.9, 1.0], [0.8, 1.2, 1.0]], mask [[1, 1, 0], [1, 1, 1]]
    # Ahat = A * w on action tokens: [[2.2, 1.8, 0], [-0.8, -1.2, -1.0]]
    a, m = reshape_advantages(
        torch.tensor([2.0, -1.0]),
        torch.tensor([[1.1, 0.9, 1.0], [0.8, 1.2, 1.0]]),
        torch.tensor([[1, 1, 0], [1, 1, 1]]),
    )
    torch.testing.assert_close(a, torch.tensor([[2.2, 1.8, 0.0], [-0.8, -1.2, -1.0]]))
    assert m["credit/token_adv_mean"] == pytest.approx((2.2 + 1.8 - 0.8 - 1.2 - 1.0) / 5)


def test_percentiles_match_linear_interpolation():
    # Weights on 5 action tokens of one row with A = 1; the reported percentiles interpolate linearly:
    # sorted w = s0..s4, p50 = s2, p1 = s0 + 0.04 (s1 - s0), p99 = s3 + 0.96 (s4 - s3).
    w, m = _w([[0.1, -0.1, 0.05, -0.05, 0.0]], [1.0])
    s = w[0].sort().values.double()
    assert m["credit/w_p50"] == pytest.approx(float(s[2]))
    assert m["credit/w_p1"] == pytest.approx(float(s[0] + 0.04 * (s[1] - s[0])))
    assert m["credit/w_p99"] == pytest.approx(float(s[3] + 0.96 * (s[4] - s[3])))


def test_weight_stats_by_token_type():
    # Action tokens: types [1, 2, 2, 3] with w [0.9, 1.2, 1.0, 0.8]; the observation token (type 0) is masked.
    # tool_call mean = (1.2 + 1.0) / 2 = 1.1, std = 0.1; reasoning = 0.9; answer = 0.8; observation: none.
    w = torch.tensor([[0.9, 1.2, 5.0, 1.0, 0.8]])
    mask = torch.tensor([[1, 1, 0, 1, 1]])
    types = torch.tensor([[1, 2, 0, 2, 3]])
    selected, m = weight_stats_by_token_type(w, mask, types)
    assert m["credit/w_tool_call_mean"] == pytest.approx(1.1)
    assert m["credit/w_tool_call_std"] == pytest.approx(0.1)
    assert m["credit/w_reasoning_mean"] == pytest.approx(0.9)
    assert m["credit/w_answer_mean"] == pytest.approx(0.8)
    assert m["credit/w_observation_n"] == 0.0 and m["credit/w_observation_mean"] == 0.0
    assert selected["tool_call"].numel() == 2


def test_polarity_agreement():
    # polarity [+1, +1, -1, -1, 0], w [1.2, 0.9, 0.8, 1.1, 1.3]: +1 agrees where w > 1 (1 of 2),
    # -1 agrees where w < 1 (1 of 2); the neutral token is not counted: overall 2 / 4.
    w = torch.tensor([[1.2, 0.9, 0.8, 1.1, 1.3]])
    pol = torch.tensor([[1, 1, -1, -1, 0]])
    agree, m = polarity_agreement(w, pol, torch.ones(1, 5))
    assert agree.tolist() == [[True, False, True, False, False]]
    assert m["credit/agree"] == 0.5 and m["credit/agree_helpful"] == 0.5 and m["credit/agree_harmful"] == 0.5


def test_registry_names_and_needs():
    delta = torch.tensor([[0.1, -0.1, 0.3, -0.3]])
    base = dict(
        teacher_logprobs=delta,
        student_logprobs=torch.zeros_like(delta),
        advantages=torch.tensor([1.0]),
        action_mask=torch.ones_like(delta),
    )
    assert set(CREDIT_VARIANTS) == set(CREDIT_VARIANT_NEEDS)
    assert torch.equal(CREDIT_VARIANTS["grpo"](**base)[0], torch.ones(1, 4))
    w, _ = CREDIT_VARIANTS["sgcd"](**base)
    torch.testing.assert_close(w, torch.tensor([[1.102413, 0.902579, 1.197005, 0.798003]]), atol=ATOL, rtol=0)
    for name, needs in CREDIT_VARIANT_NEEDS.items():
        if needs:
            with pytest.raises(ValueError, match=needs[0]):
                CREDIT_VARIANTS[name](**base)


@pytest.mark.parametrize("eps,lam", [(0.0, 1.0), (1.0, 1.0), (0.2, -0.1), (0.2, 1.5)])
def test_bad_eps_or_lambda_is_refused(eps, lam):
    with pytest.raises(ValueError, match="eps|lam"):
        _w([[0.1, 0.2]], [1.0], eps=eps, lam=lam)


def test_u_bound_log_values():
    # The u bound really is log(1 -/+ eps): a delta of exactly log(1.2) is not clipped, one above is.
    w_at, _ = _w([[math.log(1.2), -math.log(1.2)]], [1.0])
    w_above, _ = _w([[1.0, -1.0]], [1.0])
    # At the bound: exp(+-0.182322) = [1.2, 0.833333]; above: [1.2, 0.8]. Renormalised they differ.
    assert not torch.allclose(w_at, w_above)


def test_token_type_codes_match_shared_types():
    # credit_stats keeps its own copy so core imports torch only; this guards against drift.
    from sgcd.core.credit_stats import TOKEN_TYPE_NAMES
    from sgcd.types import TOKEN_TYPES

    assert TOKEN_TYPE_NAMES == TOKEN_TYPES
