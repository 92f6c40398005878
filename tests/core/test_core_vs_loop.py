"""Each vectorised core function equals a plain per-token Python reference on random data.

The references below use Python floats and loops only (math, no tensor ops beyond indexing), written from the
formulas in algorithm.md, so a broadcasting or masking slip in the vectorised code shows up here.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sgcd.core.advantages import grpo_advantages, rloo_advantages
from sgcd.core.credit import credit_weights, reshape_advantages
from sgcd.core.divergence import token_entropy, topk_reverse_kl
from sgcd.core.losses import kl_k3, ppo_clip_loss
from sgcd.core.sampling import mixed_groups

SETTINGS = settings(max_examples=50, deadline=None)


def _data(seed: int, B: int, T: int):
    g = torch.Generator().manual_seed(seed)
    student = (-torch.rand(B, T, generator=g) * 4).double()
    teacher = student + 0.4 * torch.randn(B, T, generator=g).double()
    mask = torch.rand(B, T, generator=g) < 0.7
    adv = torch.randn(B, generator=g).double()
    adv[torch.rand(B, generator=g) < 0.2] = 0.0
    turns = torch.cumsum((torch.rand(B, T, generator=g) < 0.3).long(), dim=-1)
    entropy = (torch.rand(B, T, generator=g) * 3).double()
    topk = torch.rand(B, T, generator=g).double()
    return g, student, teacher, mask, adv, turns, entropy, topk


def ref_credit(
    t, s, a, m, eps, lam, turns=None, ent=None, h0=2.0, gmin=0.0, topk=None, signed=True, fail=False
):
    """Per-token Python reference of algorithm.md §5 (no shuffle)."""
    B, T = len(t), len(t[0])
    out = [[1.0] * T for _ in range(B)]
    lo, hi = math.log(1 - eps), math.log(1 + eps)
    for i in range(B):
        idx = [j for j in range(T) if m[i][j]]
        if a[i] == 0 or not idx or (fail and a[i] > 0):
            continue
        sign = (1.0 if a[i] > 0 else -1.0) if signed else 1.0
        u = {}
        for j in idx:
            d = t[i][j] - s[i][j]
            if topk is not None:
                d = (1.0 if d > 0 else -1.0 if d < 0 else 0.0) * abs(topk[i][j])
            u[j] = sign * d
        if turns is not None:
            by_turn: dict[int, list[float]] = {}
            for j in idx:
                by_turn.setdefault(turns[i][j], []).append(u[j])
            u = {j: sum(by_turn[turns[i][j]]) / len(by_turn[turns[i][j]]) for j in idx}
        mean_u = sum(u.values()) / len(idx)
        u = {j: u[j] - mean_u for j in idx}
        if ent is not None:
            u = {j: u[j] * min(max(1 - ent[i][j] / h0, gmin), 1.0) for j in idx}
        w = {j: math.exp(min(max(u[j], lo), hi)) for j in idx}
        mean_w = sum(w.values()) / len(idx)
        for j in idx:
            wj = min(max(w[j] / mean_w, 1 - 2 * eps), 1 + 2 * eps)
            out[i][j] = (1 - lam) + lam * wj
    return out


@SETTINGS
@given(
    st.integers(0, 10_000),
    st.integers(1, 5),
    st.integers(1, 12),
    st.sampled_from([0.1, 0.2, 0.5]),
    st.sampled_from([0.5, 1.0]),
    st.booleans(),
    st.booleans(),
    st.booleans(),
    st.booleans(),
    st.booleans(),
)
def test_credit_weights_match_loop(seed, B, T, eps, lam, use_turns, use_gate, use_topk, signed, fail):
    _, s, t, m, a, turns, ent, topk = _data(seed, B, T)
    kw = dict(eps=eps, lam=lam, signed=signed, failures_only=fail)
    if use_turns:
        kw["turn_ids"] = turns
    if use_gate:
        kw.update(teacher_entropy=ent, gate_h0=1.5, gate_min=0.2)
    if use_topk:
        kw["topk_kl"] = topk
    w, _ = credit_weights(t, s, a, m, **kw)
    expected = ref_credit(
        t.tolist(), s.tolist(), a.tolist(), m.tolist(), eps, lam,
        turns.tolist() if use_turns else None, ent.tolist() if use_gate else None, 1.5, 0.2,
        topk.tolist() if use_topk else None, signed, fail,
    )  # fmt: skip
    torch.testing.assert_close(w, torch.tensor(expected, dtype=w.dtype), atol=1e-9, rtol=1e-9)
    ahat, _ = reshape_advantages(a, w, m)
    ref_ahat = [[a[i].item() * expected[i][j] if m[i][j] else 0.0 for j in range(T)] for i in range(B)]
    torch.testing.assert_close(ahat, torch.tensor(ref_ahat, dtype=ahat.dtype))


@SETTINGS
@given(st.integers(0, 10_000), st.integers(1, 12), st.booleans())
def test_grpo_and_rloo_match_loop(seed, B, norm):
    g = torch.Generator().manual_seed(seed)
    r = torch.rand(B, generator=g).double().round(decimals=1)
    gid = torch.randint(0, 4, (B,), generator=g)
    a, _ = grpo_advantages(r, gid, norm_by_std=norm)
    a_rloo, _ = rloo_advantages(r, gid)
    for i in range(B):
        members = [r[j].item() for j in range(B) if gid[j] == gid[i]]
        n = len(members)
        mean = sum(members) / n
        std = math.sqrt(sum((x - mean) ** 2 for x in members) / (n - 1)) if n > 1 else 0.0
        want = 0.0 if n == 1 else (r[i].item() - mean) / ((std + 1e-6) if norm else 1.0)
        assert a[i].item() == pytest.approx(want, abs=1e-9)
        others = [members[k] for k in range(n)]
        others.remove(r[i].item())
        want_rloo = 0.0 if n == 1 else r[i].item() - sum(others) / (n - 1)
        assert a_rloo[i].item() == pytest.approx(want_rloo, abs=1e-9)


@SETTINGS
@given(st.integers(0, 10_000), st.integers(1, 12))
def test_mixed_groups_match_loop(seed, B):
    g = torch.Generator().manual_seed(seed)
    s = torch.rand(B, generator=g) < 0.5
    gid = torch.randint(0, 4, (B,), generator=g)
    (keep, mixed), _ = mixed_groups(s, gid)
    for i in range(B):
        flags = {bool(s[j]) for j in range(B) if gid[j] == gid[i]}
        assert bool(keep[i]) == (flags == {True, False})
    assert sorted(mixed.tolist()) == sorted({int(gid[i]) for i in range(B) if keep[i]})


def ref_ppo(lp, old, adv, m, cl, ch, dc, agg):
    B, T = len(lp), len(lp[0])
    rows = []
    for i in range(B):
        row = []
        for j in range(T):
            if not m[i][j]:
                continue
            r = math.exp(lp[i][j] - old[i][j])
            a = adv[i][j]
            loss = max(-a * r, -a * min(max(r, 1 - cl), 1 + ch))
            if dc and a < 0:
                loss = min(loss, -a * dc)
            row.append(loss)
        rows.append(row)
    if agg == "token-mean":
        flat = [x for row in rows for x in row]
        return sum(flat) / len(flat) if flat else 0.0
    if agg == "seq-mean-token-mean":
        per = [sum(row) / len(row) for row in rows if row]
        return sum(per) / len(per) if per else 0.0
    return sum(sum(row) for row in rows) / (T * B)


@SETTINGS
@given(
    st.integers(0, 10_000),
    st.integers(1, 5),
    st.integers(1, 12),
    st.sampled_from(["token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm"]),
    st.sampled_from([None, 3.0]),
)
def test_ppo_and_k3_match_loop(seed, B, T, agg, dc):
    g, s, t, m, _, _, _, _ = _data(seed, B, T)
    lp = s + 0.5 * torch.randn(B, T, generator=g).double()
    adv = torch.randn(B, T, generator=g).double()
    loss, _ = ppo_clip_loss(lp, s, adv, m, dual_clip=dc, agg=agg)
    want = ref_ppo(lp.tolist(), s.tolist(), adv.tolist(), m.tolist(), 0.2, 0.28, dc, agg)
    assert loss.item() == pytest.approx(want, abs=1e-9)
    k3, _ = kl_k3(lp, t, m)
    lp_l, t_l, m_l = lp.tolist(), t.tolist(), m.tolist()
    vals = [
        math.exp(t_l[i][j] - lp_l[i][j]) - (t_l[i][j] - lp_l[i][j]) - 1
        for i in range(B)
        for j in range(T)
        if m_l[i][j]
    ]
    assert k3.item() == pytest.approx(sum(vals) / len(vals) if vals else 0.0, abs=1e-9)


@SETTINGS
@given(st.integers(0, 10_000), st.integers(1, 3), st.integers(1, 5), st.integers(1, 4))
def test_topk_kl_and_entropy_match_loop(seed, B, T, k):
    g = torch.Generator().manual_seed(seed)
    V = 6
    s_lp = torch.log_softmax(torch.randn(B, T, V, generator=g).double() * 2, -1)
    t_lp = torch.log_softmax(torch.randn(B, T, V, generator=g).double() * 2, -1)
    s_top, ids = s_lp.topk(k, dim=-1)
    t_at = t_lp.gather(-1, ids)
    m = torch.rand(B, T, generator=g) < 0.8
    kl, _ = topk_reverse_kl(s_top, t_at, m, min_prob=1e-12)
    h, _ = token_entropy(s_lp, chunk_size=2)
    for i in range(B):
        for j in range(T):
            p = [math.exp(x) for x in s_top[i, j].tolist()]
            q = [math.exp(x) for x in t_at[i, j].tolist()]
            p.append(max(1 - sum(p), 1e-12))
            q.append(max(1 - sum(q), 1e-12))
            want = sum(pi * math.log(pi / qi) for pi, qi in zip(p, q)) if m[i, j] else 0.0
            assert kl[i, j].item() == pytest.approx(want, abs=1e-7)
            probs = [math.exp(x) for x in s_lp[i, j].tolist()]
            assert h[i, j].item() == pytest.approx(-sum(pp * math.log(pp) for pp in probs), abs=1e-5)
