"""Column-major weight copies for generation's few-row products (sgcd.policy.layout)."""

from __future__ import annotations

import torch

from sgcd.policy.base import SamplingParams
from sgcd.policy.layout import ColumnMajor, column_major, faster, few_rows
from sgcd.types import Message


def test_rows_that_use_the_copy_by_hand():
    # ROWS = (4, 64): 4 <= rows < 64 (the measured range where the copy is faster)
    assert [faster(r) for r in (1, 3, 4, 63, 64, 2048)] == [False, False, True, True, False, False]


def test_column_major_copy_has_the_same_values_in_the_other_layout():
    w = torch.randn(5, 3)
    cm = column_major(w)
    assert cm.shape == (5, 3) and cm.stride() == (1, 5)  # element (i, j) at i + 5 j
    assert torch.equal(cm, w)


def test_few_rows_dispatches_by_rows_and_restores_the_module():
    """A doubled copy shows which weight a call used: 8 rows (4 <= 8 < 64) go through the copy, 2 rows and 64
    rows through the module's own weight; after the block the module's forward is nn.Linear's again."""
    torch.manual_seed(0)
    lin = torch.nn.Linear(6, 4)
    doubled = column_major(lin.weight) * 2  # not the real copy: makes the dispatch visible
    x8, x2, x64 = torch.randn(8, 6), torch.randn(2, 6), torch.randn(2, 32, 6)  # x64: 64 rows in a 3-d input
    with torch.no_grad(), few_rows({lin: doubled}):
        y8, y2, y64 = lin(x8), lin(x2), lin(x64)
    with torch.no_grad():
        torch.testing.assert_close(y8, x8 @ (2 * lin.weight).T + lin.bias)
        torch.testing.assert_close(y2, x2 @ lin.weight.T + lin.bias)
        torch.testing.assert_close(y64, x64 @ lin.weight.T + lin.bias)
    assert "forward" not in lin.__dict__


def test_copies_are_rebuilt_when_a_weight_changes_and_kept_otherwise():
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    a, b = model[0], model[2]
    store = ColumnMajor()
    first = store.copies(model)
    assert set(first) == {a, b}
    again = store.copies(model)
    assert again[a] is first[a] and again[b] is first[b]  # unchanged weights: the same copies
    with torch.no_grad():
        a.weight.add_(1.0)  # an optimizer step: in place, the version counter moves
    after_step = store.copies(model)
    assert after_step[a] is not first[a] and torch.equal(after_step[a], a.weight)
    assert after_step[b] is first[b]
    b.weight.data = torch.zeros(2, 4)  # replaced storage, fresh version counter
    after_swap = store.copies(model)
    assert torch.equal(after_swap[b], torch.zeros(2, 4))
    store.clear()
    assert store.copies(model)[a] is not after_swap[a]


def test_generation_uses_the_copies_and_leaves_the_model_as_it_was(tiny_policy):
    """generate() installs the copies only while it runs; the sampled log-probs still equal score() (the
    scoring path never uses the copies), and clear_caches() drops them."""
    prompts = [
        tiny_policy.encode_prompt([Message("user", t)], []) for t in ("a b c", "d e", "f g h", "j", "k l")
    ]
    seen = []
    lin = next(m for m in tiny_policy.causal_lm().modules() if type(m) is torch.nn.Linear)
    hook = lin.register_forward_pre_hook(lambda m, a: seen.append("forward" in m.__dict__))
    try:
        out = tiny_policy.generate(prompts, SamplingParams(0.0, 1.0, 6))
    finally:
        hook.remove()
    assert seen and all(seen)
    assert all("forward" not in m.__dict__ for m in tiny_policy.causal_lm().modules())
    scored = tiny_policy.score(prompts, [list(c.token_ids) for c in out])
    for b, c in enumerate(out):
        assert max(abs(scored.logprobs[b, t].item() - lp) for t, lp in enumerate(c.logprobs)) < 1e-5
    assert tiny_policy._column_major._records
    tiny_policy.clear_caches()
    assert not tiny_policy._column_major._records
