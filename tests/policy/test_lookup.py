"""Prompt-lookup drafts (sgcd.policy.lookup) and their verification in HFPolicy.generate: greedy tokens equal plain
one-token-at-a-time decoding, log-probs equal score(), holes left by rejected drafts are masked, and the keys/values
kept for the next turn are the right columns."""

from __future__ import annotations

import pytest

from sgcd.policy import hf
from sgcd.policy.base import SamplingParams
from sgcd.policy.lookup import accept_greedy, lookup_draft, tokens_kept
from sgcd.types import Message


def test_lookup_draft_by_hand():
    # The last 3 tokens (5 6 7) occurred at 0..2; what followed them there is 1 2 5 (k = 3).
    assert lookup_draft([5, 6, 7, 1, 2, 5, 6, 7], 3) == [1, 2, 5]
    # (1 2) occurred at 0 and at 3: the latest one wins, followed by 8 1 (k = 2). No 3-gram (8 1 2) before.
    assert lookup_draft([1, 2, 9, 1, 2, 8, 1, 2], 2) == [8, 1]
    # No earlier (9 1 2), so the 2-gram (1 2) at 1 is used: 3 9 1.
    assert lookup_draft([4, 1, 2, 3, 9, 1, 2], 3) == [3, 9, 1]
    # A match may overlap the suffix: (7 7 7) at 0 is followed by the one 7 after it.
    assert lookup_draft([7, 7, 7, 7], 4) == [7]
    assert lookup_draft([1, 2, 3, 4], 3) == []  # nothing repeats
    assert lookup_draft([5, 6, 7, 1, 5, 6, 7], 0) == []  # k = 0 drafts nothing
    assert lookup_draft([3, 1, 3], 2, min_ngram=1) == [1, 3]  # a 1-gram only when asked for


def test_accept_greedy_by_hand():
    # greedy[i] is the model's choice after the draft's first i tokens: 1 and 2 agree, 3 vs 4 does not.
    assert accept_greedy([1, 2, 3], [1, 2, 4, 5]) == 2
    assert accept_greedy([1, 2], [1, 2, 3]) == 2  # all confirmed; the pass yields 1 2 3
    assert accept_greedy([5], [1, 2]) == 0  # the first guess is wrong; the pass yields 1 only
    assert accept_greedy([], [9]) == 0


def test_tokens_kept_by_hand():
    # Draft 5 2 7 fully confirmed (greedy 5 2 7 9): the row keeps the 3 draft tokens and the model's 9.
    assert tokens_kept([5, 2, 7], [5, 2, 7, 9], frozenset()) == 4
    # With 2 an end-of-turn token, the turn ends at the confirmed 2: 5 2 kept, nothing after it.
    assert tokens_kept([5, 2, 7], [5, 2, 7, 9], frozenset({2})) == 2
    # An end of turn that is the model's own next token is kept like any next token (the row then stops).
    assert tokens_kept([5], [5, 2], frozenset({2})) == 2
    # A stop token in the unconfirmed part changes nothing: 5 confirmed, 3 (not 2) is the model's next.
    assert tokens_kept([5, 2], [5, 3, 2], frozenset({2})) == 2


def _prompts(policy):
    system = Message("system", "You are an airline agent. Use the tools.")
    users = ["Cancel R1 and R2 and R1 and R2.", "hi", "Book flight HAT170 then HAT170 again, HAT170!"]
    return [policy.encode_prompt([system, Message("user", u)], []) for u in users]


def _oracle(monkeypatch, prompts, reference, wrong_rows):
    """Replace the lookup with drafts read from `reference` (the plain run's tokens): exact for most rows, off by
    one token id for the prompts in `wrong_rows`, so one pass has rows that keep all and rows that keep one."""

    def draft(ctx, k, **_):
        for b, p in enumerate(prompts):
            if ctx[: len(p)] == p:
                done = len(ctx) - len(p)
                d = list(reference[b][done : done + k])
                return [t + 1 for t in d] if b in wrong_rows else d
        raise AssertionError("a context that starts with no prompt")

    monkeypatch.setattr(hf, "lookup_draft", draft)


def _close(a, b, tol=1e-5):
    assert [c.token_ids for c in a] == [c.token_ids for c in b]
    for x, y in zip(a, b):
        assert max(abs(p - q) for p, q in zip(x.logprobs, y.logprobs)) < tol


def _plain_then_drafted(policy, monkeypatch, wrong_rows):
    """12 greedy tokens for each of 3 prompts, plainly and then with the oracle's drafts (4 a row, 16 a pass,
    so 3 rows x (1 + 4) query tokens fit in one pass); each run starts with no kept keys/values."""
    prompts, params = _prompts(policy), SamplingParams(0.0, 1.0, 12)
    monkeypatch.setattr(policy, "lookup_draft", 0)
    policy.sessions.clear()
    plain = policy.generate(prompts, params)
    policy.sessions.clear()
    monkeypatch.setattr(policy, "lookup_draft", 4)
    monkeypatch.setattr(policy, "lookup_tokens", 16)
    monkeypatch.setattr(policy, "lookup_stats", {"passes": 0, "drafted": 0, "accepted": 0})
    _oracle(monkeypatch, prompts, [c.token_ids for c in plain], wrong_rows)
    return prompts, params, plain, policy.generate(prompts, params)


@pytest.mark.parametrize("wrong_rows", [(), (1,)])
def test_verified_drafts_equal_plain_greedy(tiny_policy, monkeypatch, wrong_rows):
    """Same greedy tokens as plain decoding, log-probs within 1e-5 of it and equal to score(), in fewer passes;
    with one row's drafts always wrong, its rejected columns become holes the other rows' passes must not see."""
    prompts, params, plain, drafted = _plain_then_drafted(tiny_policy, monkeypatch, wrong_rows)
    _close(drafted, plain)
    # 12 tokens per row, the first from the prefill. A row's draft is at most 4 tokens (16 query tokens // 3 rows
    # - 1) and at most cap - len - 1, so a right draft yields 5 tokens a pass: len 1 -> 6 -> 11, then its
    # draft is empty (11 + 1 = the cap) and the 12th token comes from a pass of its own.
    #   all right: 2 verify passes (then one plain pass), 3 rows x 8 confirmed draft tokens = 24.
    #   row 1 wrong: it gains one token a pass, so passes 1-3 carry all rows (row 1: len 1 -> 4; the right
    #   rows' third pass has empty drafts and yields their 12th token); row 1 alone then verifies a wrong draft
    #   at len 4..10 (7 passes) and decodes its 12th token plainly: 3 + 7 = 10 passes, 2 x 8 = 16 confirmed.
    assert (tiny_policy.lookup_stats["passes"], tiny_policy.lookup_stats["accepted"]) == {
        (): (2, 24),
        (1,): (10, 16),
    }[wrong_rows], tiny_policy.lookup_stats
    out = tiny_policy.score(prompts, [list(c.token_ids) for c in drafted])
    for b, c in enumerate(drafted):
        assert max(abs(out.logprobs[b, t].item() - lp) for t, lp in enumerate(c.logprobs)) < 1e-4


def test_next_turn_after_drafts_reuses_the_right_columns(tiny_policy, monkeypatch):
    """The keys/values kept after a drafted turn with holes are the fed tokens' columns: the next turn, prefilling
    only the environment's answer, equals re-prefilling the whole conversation."""
    prompts, params, _, first = _plain_then_drafted(tiny_policy, monkeypatch, wrong_rows=(1,))
    answer = tiny_policy.encode_delta([Message("tool", '{"status": "ok", "id": "R1"}')])
    nxt = [p + list(c.token_ids) + answer for p, c in zip(prompts, first)]
    monkeypatch.setattr(tiny_policy, "lookup_draft", 0)  # the second turn decodes plainly in both legs
    hits = tiny_policy.sessions.hits
    reused = tiny_policy.generate(nxt, params)
    assert tiny_policy.sessions.hits == hits + 3  # every row continued from its kept keys/values
    tiny_policy.sessions.clear()
    monkeypatch.setattr(tiny_policy, "reuse_kv", False)
    fresh = tiny_policy.generate(nxt, params)
    _close(reused, fresh)


def test_real_lookup_drafts_on_a_repeating_row(tiny_policy, monkeypatch):
    """Without the oracle: a random tiny model falls into loops under greedy decoding, which is what prompt lookup
    catches. Tokens equal plain decoding and some drafts are confirmed."""
    prompts, params = _prompts(tiny_policy)[:1], SamplingParams(0.0, 1.0, 40)
    monkeypatch.setattr(tiny_policy, "lookup_draft", 0)
    tiny_policy.sessions.clear()
    plain = tiny_policy.generate(prompts, params)
    tiny_policy.sessions.clear()
    monkeypatch.setattr(tiny_policy, "lookup_draft", 8)
    monkeypatch.setattr(tiny_policy, "lookup_stats", {"passes": 0, "drafted": 0, "accepted": 0})
    drafted = tiny_policy.generate(prompts, params)
    _close(drafted, plain)
    assert tiny_policy.lookup_stats["accepted"] > 0, (tiny_policy.lookup_stats, plain[0].token_ids)


def test_sampling_never_drafts(tiny_policy, monkeypatch):
    """At temperature > 0 generation keeps one token per pass (drafts would change the random draws)."""
    monkeypatch.setattr(tiny_policy, "lookup_stats", {"passes": 0, "drafted": 0, "accepted": 0})
    tiny_policy.seed(1)
    tiny_policy.generate(_prompts(tiny_policy), SamplingParams(1.0, 1.0, 12))
    assert tiny_policy.lookup_stats["passes"] == 0


def test_packed_attention_equals_transformers_sdpa():
    """Several query tokens over a cache with holes: folding the 3 query heads of each key/value head into query
    rows gives transformers' repeat_kv result (same arithmetic, no copy of the keys/values)."""
    import torch
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    from sgcd.policy.attention import packed_sdpa

    g = torch.Generator().manual_seed(0)
    B, H, Hkv, q, L, d = 2, 9, 3, 5, 40, 16
    module = type("Attn", (), {"num_key_value_groups": H // Hkv, "is_causal": True})()
    query = torch.randn(B, H, q, d, generator=g)
    key, value = torch.randn(B, Hkv, L, d, generator=g), torch.randn(B, Hkv, L, d, generator=g)
    mask = torch.ones(B, 1, q, L, dtype=torch.bool).tril(diagonal=L - q)  # causal over the last q columns
    mask[0, :, :, 3:7] = False  # row 0 has holes
    ours, _ = packed_sdpa(module, query, key, value, mask, scaling=0.25)
    theirs, _ = sdpa_attention_forward(module, query, key, value, mask, scaling=0.25)
    assert ours.shape == theirs.shape == (B, q, H, d)
    assert torch.allclose(ours, theirs, atol=1e-6)


def test_generation_attends_through_the_packed_path(tiny_policy, monkeypatch):
    """Generation's several-token passes use packed_sdpa (the tiny model has key/value groups), and the model's
    own attention is back in place afterwards (scoring and training never see the switch)."""
    from sgcd.policy import attention

    lm = tiny_policy.causal_lm()
    assert lm.config._attn_implementation == "sdpa"
    assert getattr(lm.model.layers[0].self_attn, "num_key_value_groups", 1) > 1
    seen = []
    real = attention.packed_sdpa

    def spy(module, query, *a, **kw):
        seen.append(query.shape[2])
        return real(module, query, *a, **kw)

    monkeypatch.setattr(attention, "packed_sdpa", spy)
    monkeypatch.setattr(attention, "_registered", False)  # register the spy
    tiny_policy.sessions.clear()
    tiny_policy.generate(_prompts(tiny_policy), SamplingParams(0.0, 1.0, 6))
    assert seen and max(seen) > 1  # the prefill's several-token queries went through it
    assert lm.config._attn_implementation == "sdpa"
    monkeypatch.undo()
    attention._registered = False  # the real function back in transformers' registry
    attention._register()
