"""HFPolicy: sampling log-probs equal score(), chunked scoring is exact, batching and seeding behave."""

from __future__ import annotations

import pytest
import torch

from sgcd.policy import hf
from sgcd.policy.base import SamplingParams
from sgcd.policy.hf import HFPolicy, inverse_cdf, top_p_filter
from sgcd.policy.kvcache import ReservedLayer, column_runs, drop_rows, reserve_cache, row_entry
from sgcd.types import Message

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_user_details",
            "description": "Look up a user.",
            "parameters": {
                "type": "object",
                "properties": {"user_id": {"type": "string"}},
                "required": ["user_id"],
            },
        },
    }
]


def _prompts(policy):
    a = policy.encode_prompt(
        [Message("system", "You are an airline agent."), Message("user", "Cancel R1.")], TOOLS
    )
    b = policy.encode_prompt([Message("user", "hi")], [])
    return [a, b, a]  # different lengths -> left padding; a twice -> two samples of one prompt


def _max_diff(policy, prompts, params):
    completions = policy.generate(prompts, params)
    out = policy.score(prompts, [list(c.token_ids) for c in completions])
    diffs = [
        abs(out.logprobs[b, t].item() - lp)
        for b, c in enumerate(completions)
        for t, lp in enumerate(c.logprobs)
    ]
    assert out.mask.sum().item() == sum(len(c.token_ids) for c in completions)
    return max(diffs), completions


@pytest.mark.parametrize("temperature,top_p", [(1.0, 1.0), (0.7, 0.9)])
def test_sampling_logprobs_equal_score_tiny(tiny_policy, temperature, top_p):
    """Recorded log-probs are the untempered policy's, so they equal score() at any temperature / top-p."""
    diff, _ = _max_diff(tiny_policy, _prompts(tiny_policy), SamplingParams(temperature, top_p, 24))
    print(f"tiny T={temperature} top_p={top_p}: max |sampling logprob - score| = {diff:.2e}")
    assert diff < 1e-4


@pytest.mark.slow
def test_sampling_logprobs_equal_score_smollm2(smol_policy):
    diff, completions = _max_diff(smol_policy, _prompts(smol_policy)[:2], SamplingParams(1.0, 1.0, 12))
    print(f"smollm2-135m fp32: max |sampling logprob - score| = {diff:.2e}")
    assert diff < 1e-4


def test_stops_each_row_at_its_own_end_of_turn(tiny_policy):
    """With many stop ids rows finish at different steps (the cache is compacted); each ends at its first stop."""
    policy = HFPolicy(tiny_policy.model, tiny_policy.tokenizer, seed=3)
    policy.stop_ids = frozenset(range(300, 646))  # about half the vocabulary ends a turn
    prompts = _prompts(policy) * 2
    diff, completions = _max_diff(policy, prompts, SamplingParams(1.0, 1.0, 16))
    assert diff < 1e-4
    for c in completions:
        stops = [i for i, t in enumerate(c.token_ids) if t in policy.stop_ids]
        assert c.finished == bool(stops) and (not stops or stops == [len(c.token_ids) - 1])
    assert len({len(c.token_ids) for c in completions}) > 1  # rows really finished at different steps


def test_seeded_and_batch_independent(tiny_policy):
    p = _prompts(tiny_policy)
    params = SamplingParams(1.0, 1.0, 8)
    tiny_policy.seed(7)
    first = tiny_policy.generate(p, params)
    tiny_policy.seed(7)
    assert tiny_policy.generate(p, params) == first
    # greedy: a row's tokens do not depend on what else is in the batch (padding is masked)
    greedy = SamplingParams(0.0, 1.0, 8)
    together = tiny_policy.generate(p, greedy)
    alone = [tiny_policy.generate([q], greedy)[0] for q in p]
    assert [c.token_ids for c in together] == [c.token_ids for c in alone]


def test_chunked_score_matches_full_logsoftmax(tiny_policy):
    """Chunks of 3 positions give the log-probs, entropies and top-k of one full log_softmax."""
    prefixes = [[1, 5, 9, 40], [1, 7]]
    conts = [[50, 51, 52, 53, 54, 55, 56], [60, 61]]
    policy = HFPolicy(tiny_policy.model, tiny_policy.tokenizer)
    policy.score_chunk = 3
    out = policy.score(prefixes, conts, topk=4, with_entropy=True)
    for b, (p, c) in enumerate(zip(prefixes, conts)):
        ids = torch.tensor([p + c])
        logp = torch.log_softmax(tiny_policy.model(input_ids=ids).logits[0].float(), -1)  # (L, V)
        rows = logp[len(p) - 1 : len(p) - 1 + len(c)]  # the row before token t predicts token t
        ref = rows.gather(-1, torch.tensor(c)[:, None]).squeeze(-1)
        torch.testing.assert_close(out.logprobs[b, : len(c)], ref, atol=1e-5, rtol=0)
        torch.testing.assert_close(out.entropy[b, : len(c)], -(rows.exp() * rows).sum(-1), atol=1e-5, rtol=0)
        torch.testing.assert_close(out.topk_logprobs[b, : len(c)], rows.topk(4).values, atol=1e-5, rtol=0)
    assert out.mask.tolist() == [[True] * 7, [True] * 2 + [False] * 5]
    assert out.logprobs[1, 2:].abs().sum() == 0  # padded positions are zero


def test_score_grad_matches_unchunked(tiny_policy):
    """grad=True: checkpointed chunks give the same gradient as the plain computation."""
    model = tiny_policy.model
    policy = HFPolicy(model, tiny_policy.tokenizer)
    policy.score_chunk = 2
    prefix, cont = [1, 5, 9], [50, 51, 52, 53, 54]
    model.zero_grad()
    policy.score([prefix], [cont], grad=True).logprobs.sum().backward()
    g_chunked = model.model.embed_tokens.weight.grad.clone()
    model.zero_grad()
    logp = torch.log_softmax(model(input_ids=torch.tensor([prefix + cont])).logits[0].float(), -1)
    logp[2:7].gather(-1, torch.tensor(cont)[:, None]).sum().backward()
    torch.testing.assert_close(model.model.embed_tokens.weight.grad, g_chunked, atol=1e-5, rtol=1e-4)
    model.zero_grad()
    assert policy.score([prefix], [cont]).logprobs.requires_grad is False


def test_bfloat16_scores_close_to_float32(tiny_policy):
    bf = HFPolicy(tiny_policy.model.to(torch.bfloat16), tiny_policy.tokenizer)
    try:
        low = bf.score([[1, 5, 9]], [[50, 51, 52]]).logprobs
        assert low.dtype == torch.float32  # upcast before the softmax
    finally:
        tiny_policy.model.to(torch.float32)
    high = tiny_policy.score([[1, 5, 9]], [[50, 51, 52]]).logprobs
    assert (low - high).abs().max() < 0.1


@pytest.mark.gpu
def test_cuda_sampling_matches_score(tiny_policy):
    policy = HFPolicy(tiny_policy.model.to("cuda"), tiny_policy.tokenizer)
    try:
        diff, _ = _max_diff(policy, _prompts(policy), SamplingParams(1.0, 1.0, 16))
        assert diff < 1e-4
    finally:
        tiny_policy.model.to("cpu")


def test_top_p_filter_by_hand():
    """probs (0.5, 0.3, 0.2): top_p 0.6 keeps 0.5+0.3 -> (0.625, 0.375, 0); top_p 0.5 keeps the top one only."""
    probs = torch.tensor([[0.5, 0.3, 0.2], [0.2, 0.3, 0.5]])
    torch.testing.assert_close(
        top_p_filter(probs, 0.6), torch.tensor([[0.625, 0.375, 0.0], [0.0, 0.375, 0.625]])
    )
    torch.testing.assert_close(top_p_filter(probs, 0.5), torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]))


def test_inverse_cdf_by_hand():
    """probs (0.2, 0, 0.5, 0.3) have cdf (0.2, 0.2, 0.7, 1.0); the token is the first with cdf > u * total.
    u=0.1 -> 0; u=0.2 -> cdf 0.2 is not > 0.2, and the zero-mass token 1 shares it, so 2; u=0.69 -> 2;
    u=0.7 -> 3; u just below 1 -> 3. Unnormalised (x2) gives the same, and a zero-mass tail is never chosen."""
    probs = torch.tensor([[0.2, 0.0, 0.5, 0.3]]).expand(5, 4)
    u = torch.tensor([0.1, 0.2, 0.69, 0.7, 1 - 2**-53], dtype=torch.float64)
    assert inverse_cdf(probs, u).tolist() == [0, 2, 2, 3, 3]
    assert inverse_cdf(2 * probs, u).tolist() == [0, 2, 2, 3, 3]
    tail = torch.tensor([[0.25, 0.75, 0.0, 0.0]]).expand(2, 4)
    assert inverse_cdf(tail, torch.tensor([0.0, 1 - 2**-53], dtype=torch.float64)).tolist() == [0, 1]


def test_sampling_frequencies_match_the_probabilities(tiny_policy):
    """40,000 draws from (0.2, 0, 0.5, 0.3): each frequency within 0.01 (4 standard errors of at most
    sqrt(0.25 / 40000) = 0.0025), token 1 never drawn; the same seed gives the same draws."""
    probs = torch.tensor([[0.2, 0.0, 0.5, 0.3]]).expand(40_000, 4)
    draws = hf.sample_inverse_cdf(probs, torch.Generator().manual_seed(1))
    freq = torch.bincount(draws, minlength=4).double() / 40_000
    assert freq[1] == 0
    torch.testing.assert_close(
        freq, torch.tensor([0.2, 0.0, 0.5, 0.3], dtype=torch.float64), atol=0.01, rtol=0
    )
    again = hf.sample_inverse_cdf(probs, torch.Generator().manual_seed(1))
    assert torch.equal(draws, again)


def test_reserved_cache_writes_in_place_and_leaves_the_source():
    """reserve_cache copies a DynamicCache's keys/values (repeated per row) into buffers; updates write in place."""
    from transformers.cache_utils import DynamicCache

    src = DynamicCache()
    k, v = torch.randn(1, 2, 3, 4), torch.randn(1, 2, 3, 4)
    src.update(k, v, 0)
    res = reserve_cache(src, capacity=5, repeat=2)
    layer = res.layers[0]
    assert isinstance(layer, ReservedLayer) and res.get_seq_length() == 3
    torch.testing.assert_close(layer.keys, k.expand(2, -1, -1, -1))
    ptr = layer._k.data_ptr()
    k2, v2 = torch.randn(2, 2, 2, 4), torch.randn(2, 2, 2, 4)
    keys, values = res.update(k2, v2, 0)
    assert layer._k.data_ptr() == ptr and keys.shape == (2, 2, 5, 4)
    torch.testing.assert_close(keys[:, :, 3:], k2)
    torch.testing.assert_close(values[:, :, :3], v.expand(2, -1, -1, -1))
    assert src.get_seq_length() == 3  # the source (a memoised prefix) is untouched
    res.batch_select_indices(torch.tensor([1]))
    torch.testing.assert_close(res.layers[0].keys[0, :, 3:], k2[1])
    with pytest.raises(RuntimeError, match="exceed the reserved 5"):
        res.update(torch.randn(1, 2, 1, 4), torch.randn(1, 2, 1, 4), 0)


def test_drop_rows_moves_the_last_kept_rows_into_the_holes_in_place():
    """drop_rows by hand. Rows 0..4, keep [1, 3, 4]: the new batch has 3 rows; rows 0 and 2 are the holes below
    3, and the kept rows at or past 3 (rows 3 and 4) move into them in order: new row 0 <- old 3, row 1 stays,
    new row 2 <- old 4. So the order is [3, 1, 4], the filled columns moved, and the buffers are the same
    memory (nothing allocated)."""
    from transformers.cache_utils import DynamicCache

    src = DynamicCache()
    k = torch.arange(5.0)[:, None, None, None].expand(5, 2, 3, 4).clone()  # row r holds the value r
    src.update(k, -k, 0)
    res = reserve_cache(src, capacity=6)
    ptr = res.layers[0]._k.data_ptr()
    order = drop_rows(res, [1, 3, 4])
    assert order == [3, 1, 4]
    layer = res.layers[0]
    assert layer._k.data_ptr() == ptr and layer.keys.shape == (3, 2, 3, 4)
    assert layer.keys[:, 0, 0, 0].tolist() == [3.0, 1.0, 4.0]
    assert layer.values[:, 1, 2, 3].tolist() == [-3.0, -1.0, -4.0]
    assert drop_rows(res, [0, 1]) == [0, 1]  # dropping only the last row moves nothing
    assert layer.keys[:, 0, 0, 0].tolist() == [3.0, 1.0]


def test_column_runs_by_hand():
    # 0 1 2 | 7 8 | 10: three runs; a lone column is a run of one; order is kept, not sorted.
    assert column_runs([0, 1, 2, 7, 8, 10]) == [(0, 3), (7, 9), (10, 11)]
    assert column_runs([5]) == [(5, 6)]
    assert column_runs([4, 5, 0, 1]) == [(4, 6), (0, 2)]
    assert column_runs([]) == []


def test_row_entry_copies_the_columns_in_token_order():
    """row_entry gathers one row's columns run by run: the same values as index_select over those columns, for a
    row with a gap, a lookup hole and a single column, and for one run; the entry is a copy, not a view."""
    from transformers.cache_utils import DynamicCache

    src = DynamicCache()
    k = torch.randn(3, 2, 12, 4)
    src.update(k, k * 2, 0)
    cache = reserve_cache(src, capacity=16)
    for cols in ([0, 1, 2, 6, 7, 9, 11], [3, 4, 5], [8]):
        entry = row_entry(cache, 1, cols, tuple(range(len(cols))))
        idx = torch.tensor(cols)
        assert torch.equal(entry.kv[0][0], k[1].index_select(1, idx))
        assert torch.equal(entry.kv[0][1], (k * 2)[1].index_select(1, idx))
    entry.kv[0][0].zero_()  # a copy: the cache is untouched
    assert torch.equal(cache.layers[0].keys[1, :, 8], k[1, :, 8])


def test_new_buffer_reuses_the_smallest_spare_that_fits():
    """48 float32 elements are needed: of the spares (100 and 50 float32, 60 float64) the 50 is the smallest that
    fits with the right dtype; it leaves the list and the buffer is a view of its memory. 200 fit none: the
    spares are let go and a new buffer of 1.5 x 200 = 300 elements is reserved (headroom for a longer turn).
    Without a spare list, a plain buffer of the exact size."""
    from sgcd.policy import kvcache

    big, small, wide = torch.zeros(100), torch.zeros(50), torch.zeros(60, dtype=torch.float64)
    spare = [big, small, wide]
    buf = kvcache.new_buffer(torch.zeros(1), (2, 3, 8), spare)
    assert buf.shape == (2, 3, 8) and buf.data_ptr() == small.data_ptr()
    assert [id(t) for t in spare] == [id(big), id(wide)]
    fresh = kvcache.new_buffer(torch.zeros(1), (200,), spare)
    assert spare == [] and fresh.shape == (200,) and fresh._base.numel() == 300
    plain = kvcache.new_buffer(torch.zeros(1), (4, 5))
    assert plain._base is None and plain.numel() == 20


def test_generation_recycles_the_last_turns_buffers(tiny_policy):
    """A turn hands its key/value buffers back and the next turn of the same size reuses all of them (the test
    fixture fills them with NaN again, so nothing may read what the last turn left); the tokens are the same
    as the first turn's on fresh buffers, and clear_caches lets the buffers go."""
    prompts = _shared_system_prompts(tiny_policy)
    greedy = SamplingParams(0.0, 1.0, 8)
    tiny_policy.clear_caches()
    first = tiny_policy.generate(prompts, greedy)
    ptrs = sorted(b.data_ptr() for b in tiny_policy._spare)
    assert len(ptrs) == 2 * len(tiny_policy.causal_lm().model.layers)  # keys and values of every layer
    tiny_policy.sessions.clear()  # the same prompts again, from the shared prefix (same sizes)
    again = tiny_policy.generate(prompts, greedy)
    assert sorted(b.data_ptr() for b in tiny_policy._spare) == ptrs
    assert [c.token_ids for c in again] == [c.token_ids for c in first]
    for a, b in zip(again, first):
        assert max(abs(x - y) for x, y in zip(a.logprobs, b.logprobs)) < 1e-6
    tiny_policy.clear_caches()
    assert tiny_policy._spare == []


def test_reserved_cache_generation_equals_transformers_cache(tiny_policy, monkeypatch):
    """Generation with reserved buffers equals the plain DynamicCache path, also when rows stop at different
    steps and leave the batch (the buffers are compacted): same seeded samples, log-probs within 1e-5."""
    prompts = _shared_system_prompts(tiny_policy) + _prompts(tiny_policy)
    params = SamplingParams(1.0, 1.0, 12)

    def run():
        tiny_policy.seed(7)
        return tiny_policy.generate(prompts, params)

    saved = tiny_policy.stop_ids
    tiny_policy.stop_ids = frozenset({run()[0].token_ids[2]})  # row 0 ends at its third token at the latest
    try:
        reserved = run()
        # Identity: generate keeps transformers' cache, nothing is shared, no episode cache is kept.
        monkeypatch.setattr(hf, "reserve_cache", lambda cache, capacity, repeat=1, spare=None: cache)
        monkeypatch.setattr(hf, "reservable", lambda cache: False)
        tiny_policy._memo.clear()
        plain = run()
    finally:
        tiny_policy.stop_ids = saved
    lengths = sorted(len(c.token_ids) for c in reserved)
    assert lengths[0] <= 3 and lengths[-1] > lengths[0], lengths  # rows really left the batch early
    assert [c.token_ids for c in reserved] == [c.token_ids for c in plain]
    for a, b in zip(reserved, plain):
        assert max(abs(x - y) for x, y in zip(a.logprobs, b.logprobs)) < 1e-5


def test_bad_inputs_are_clear(tiny_policy):
    with pytest.raises(ValueError, match="prefixes"):
        tiny_policy.score([[1]], [[2], [3]])
    with pytest.raises(ValueError, match="at least one token"):
        tiny_policy.generate([[]], SamplingParams())


def _shared_system_prompts(policy):
    system = Message("system", "You are an airline agent. Follow the rules R1 to R7 and use the tools.")
    users = ["Cancel R1.", "What is my baggage allowance for reservation R22?", "hi"]
    return [policy.encode_prompt([system, Message("user", u)], TOOLS) for u in users]


def test_shared_prefix_cache_is_exact(tiny_policy):
    """Prompts sharing a system prompt reuse one prefix KV cache; results equal the unshared path and score()."""
    prompts = _shared_system_prompts(tiny_policy)
    assert tiny_policy._shared_prefix_len(prompts) > 100
    diff, _ = _max_diff(tiny_policy, prompts, SamplingParams(1.0, 1.0, 12))
    assert diff < 1e-4
    greedy = SamplingParams(0.0, 1.0, 12)
    shared = tiny_policy.generate(prompts, greedy)
    plain = HFPolicy(tiny_policy.model, tiny_policy.tokenizer)
    plain.min_shared_prefix = 10**9  # never share
    assert [c.token_ids for c in plain.generate(prompts, greedy)] == [c.token_ids for c in shared]
    for c, d in zip(plain.generate(prompts, greedy), shared):
        assert max(abs(x - y) for x, y in zip(c.logprobs, d.logprobs)) < 1e-4


def test_prefix_cache_invalidated_by_a_weight_update(tiny_policy):
    """An in-place parameter update (what optimizer.step does) must not reuse the old prefix keys/values."""
    model = tiny_policy.model
    prompts = _shared_system_prompts(tiny_policy)[:2]
    greedy = SamplingParams(0.0, 1.0, 6)
    tiny_policy.generate(prompts, greedy)
    key_before = list(tiny_policy._memo)[-1][1]
    w = model.model.layers[0].self_attn.k_proj.weight
    saved = w.detach().clone()
    try:
        with torch.no_grad():
            w.mul_(3.0)
        after = tiny_policy.generate(prompts, greedy)
        assert list(tiny_policy._memo)[-1][1] != key_before
        fresh = HFPolicy(model, tiny_policy.tokenizer)
        fresh.min_shared_prefix = 10**9
        expect = [lp for c in fresh.generate(prompts, greedy) for lp in c.logprobs]
        assert expect == pytest.approx([lp for c in after for lp in c.logprobs], abs=1e-4)
    finally:
        with torch.no_grad():
            w.copy_(saved)


def test_score_with_shared_prefix_equals_unshared(tiny_policy):
    """No-grad scoring reuses the shared-prefix cache; grad scoring does not. Both give the same numbers."""
    prompts = _shared_system_prompts(tiny_policy)
    conts = [[50, 51, 52], [60], [70, 71, 72, 73, 74]]
    shared = tiny_policy.score(prompts, conts, topk=2, with_entropy=True)
    assert len(list(tiny_policy._memo)[-1][0]) == tiny_policy._shared_prefix_len(prompts)
    full = tiny_policy.score(prompts, conts, topk=2, with_entropy=True, grad=True)
    for name in ("logprobs", "entropy", "topk_logprobs"):
        torch.testing.assert_close(getattr(shared, name), getattr(full, name).detach(), atol=1e-5, rtol=0)
    assert torch.equal(shared.mask, full.mask) and torch.equal(shared.topk_ids, full.topk_ids)


def test_prefill_groups_by_hand():
    # Rows prefill 100, 90, 10 and 5 tokens; a call costs 32 on top of rows * its longest row.
    #   one call:                 32 + 4 * 100                      = 432
    #   {100, 90} {10, 5}:        (32 + 2 * 100) + (32 + 2 * 10)     = 284  <- the minimum
    #   {100} {90} {10, 5}:       132 + 122 + 52                     = 306
    #   {100, 90} {10} {5}:       232 + 42 + 37                      = 311
    assert hf.prefill_groups([100, 90, 10, 5], 32) == [(0, 2), (2, 4)]
    assert hf.prefill_groups([50, 50, 50], 32) == [(0, 3)]  # equal rows: a second call only adds its cost
    assert hf.prefill_groups([100, 90, 10, 5], None) == [(0, 4)]
    assert hf.prefill_groups([300, 4], 0) == [(0, 1), (1, 2)]  # free calls: every distinct length alone
    with pytest.raises(ValueError, match="decreasing"):
        hf.prefill_groups([5, 10], 32)


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_grouped_prefill_equals_one_padded_call(tiny_policy, temperature, monkeypatch):
    """Rows whose new tokens differ a lot are prefilled in groups (cache rows reordered); tokens equal the one
    padded call's (seeded sampling too: each row keeps its own random draw), log-probs within 1e-5, and they
    still equal score()."""
    monkeypatch.setattr(
        tiny_policy, "lookup_draft", 0
    )  # greedy drafts' passes would count as prefill calls here
    system = Message("system", "You are an airline agent. Follow the rules R1 to R7 and use the tools.")
    long = "Please look up reservation {} and tell me " + "every detail of it " * 12
    users = ["hi", long.format("R22"), "Cancel R1.", long.format("R23")]  # two long rows, two short ones
    prompts = [tiny_policy.encode_prompt([system, Message("user", u)], TOOLS) for u in users]
    params = SamplingParams(temperature, 1.0, 10)
    tiny_policy.generate(prompts, params)  # the shared prefix's keys/values are memoised from here on
    calls: list[tuple[int, int]] = []
    body = tiny_policy.body()
    hook = body.register_forward_pre_hook(
        lambda m, a, kw: calls.append(tuple(kw["input_ids"].shape)), with_kwargs=True
    )
    try:
        tiny_policy.seed(3)
        grouped = tiny_policy.generate(prompts, params)
        prefills = [c for c in calls if c[1] > 1]
        calls.clear()
        tiny_policy.prefill_overhead = None
        tiny_policy.seed(3)
        padded = tiny_policy.generate(prompts, params)
    finally:
        tiny_policy.prefill_overhead = 32
        hook.remove()
    assert len(prefills) == 2 and sorted(b for b, _ in prefills) == [2, 2], prefills  # long pair, short pair
    longest = max(s for _, s in prefills)
    assert [c[1] for c in calls if c[1] > 1] == [longest]  # without groups: one padded call
    assert [c.token_ids for c in grouped] == [c.token_ids for c in padded]
    for a, b in zip(grouped, padded):
        assert max(abs(x - y) for x, y in zip(a.logprobs, b.logprobs)) < 1e-5
    out = tiny_policy.score(prompts, [list(c.token_ids) for c in grouped])
    for b, c in enumerate(grouped):
        assert max(abs(out.logprobs[b, t].item() - lp) for t, lp in enumerate(c.logprobs)) < 1e-4


@pytest.mark.parametrize("q", [1, 4])
def test_shared_columns_attention_equals_one_softmax(q):
    """Attending to the shared columns once (row 0's) and to each row's own columns, joined through the two
    log-sum-exps, is the softmax over all columns: equal to transformers' sdpa to float rounding. Row 0 has
    holes in its own columns; with q = 4, one padding query of row 2 sees none of its own columns (the kernel
    then reports a log-sum-exp of 0, which must not count)."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    from sgcd.policy import attention

    g = torch.Generator().manual_seed(0)
    B, H, Hkv, L, d, P = 5, 9, 3, 60, 16, 20
    module = type("Attn", (), {"num_key_value_groups": H // Hkv, "is_causal": True})()
    query = torch.randn(B, H, q, d, generator=g)
    key, value = torch.randn(B, Hkv, L, d, generator=g), torch.randn(B, Hkv, L, d, generator=g)
    key[1:, :, :P], value[1:, :, :P] = key[:1, :, :P], value[:1, :, :P]  # the same prefix in every row
    mask = torch.ones(B, 1, q, L, dtype=torch.bool).tril(diagonal=L - q)  # causal over the last q columns
    mask[0, :, :, 30:37] = False
    if q > 1:
        mask[2, :, 0, P:] = False
    theirs, _ = sdpa_attention_forward(module, query, key, value, mask, scaling=0.25)
    calls = []
    real = attention._cascade

    def spy(*a, **kw):
        calls.append(1)
        return real(*a, **kw)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(attention, "MIN_ROWS", 2)
        mp.setattr(attention, "MIN_SHARED", 8)
        mp.setattr(attention, "_cascade", spy)
        with attention.shared_columns() as shared:
            shared.columns = P
            ours, _ = attention.packed_sdpa(module, query, key, value, mask, scaling=0.25)
    assert calls == [1]
    assert ours.shape == theirs.shape == (B, q, H, d)
    assert torch.isfinite(ours).all()
    assert torch.allclose(ours, theirs, atol=1e-6)


def test_generation_reads_the_shared_prefix_once(tiny_policy, monkeypatch):
    """With the thresholds lowered so the tiny batch qualifies, generation attends to the shared system prompt
    once per pass (first turn from the memoised prefix, second from the kept episodes' caches): the same greedy
    tokens as attending row by row, log-probs within 1e-5, and still equal to score()."""
    from sgcd.policy import attention

    prompts = _shared_system_prompts(tiny_policy)
    greedy = SamplingParams(0.0, 1.0, 8)
    calls = []
    real = attention._cascade

    def spy(q_G, key, *a, **kw):
        calls.append(key.shape[0])
        return real(q_G, key, *a, **kw)

    monkeypatch.setattr(attention, "_cascade", spy)
    monkeypatch.setattr(attention, "MIN_ROWS", 2)
    runs = {}
    for name, min_shared in (("once", 8), ("per-row", 10**9)):
        monkeypatch.setattr(attention, "MIN_SHARED", min_shared)
        tiny_policy.clear_caches()
        first = tiny_policy.generate(prompts, greedy)
        nxt = [
            p + list(c.token_ids) + tiny_policy.encode_delta([Message("user", "and R2?")])
            for p, c in zip(prompts, first)
        ]
        hits = tiny_policy.sessions.hits
        second = tiny_policy.generate(nxt, greedy)
        assert tiny_policy.sessions.hits == hits + len(prompts)  # the second turn continued the kept caches
        runs[name] = (first + second, nxt)
        if name == "once":
            assert calls and min(calls) >= 2
            calls.clear()
    assert not calls  # the per-row run never took the shared path
    (once, nxt), (rowwise, _) = runs["once"], runs["per-row"]
    assert [c.token_ids for c in once] == [c.token_ids for c in rowwise]
    for a, b in zip(once, rowwise):
        assert max(abs(x - y) for x, y in zip(a.logprobs, b.logprobs)) < 1e-5
    out = tiny_policy.score(nxt, [list(c.token_ids) for c in once[len(prompts) :]])
    for b, c in enumerate(once[len(prompts) :]):
        assert max(abs(out.logprobs[b, t].item() - lp) for t, lp in enumerate(c.logprobs)) < 1e-4
