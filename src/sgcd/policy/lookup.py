"""Prompt-lookup drafts for greedy decoding: guess a row's next tokens from its own context, verify them in one pass.

A tool-use agent repeats itself: it copies ids and arguments out of tool answers, and a stuck agent re-sends the
same 80-token call turn after turn. When the last few tokens of a row already occurred earlier in its context, the
tokens that followed them there are a cheap guess (a *draft*) for what comes next. `HFPolicy.generate` feeds the
last sampled token and the draft in one forward pass; position i's greedy choice is accepted while the draft
agrees with it (`accept_greedy`), so one pass yields 1 to k+1 tokens. On a CPU a decode step with few rows costs
about what reading the weights costs, whatever the handful of query tokens, so the tail of an evaluation (the last
few long episodes) runs several tokens per pass.

Exactness: the accepted tokens are the greedy tokens one-token-at-a-time decoding would choose (each is the argmax
given the same prefix); their log-probs come from the same float32 head. Only float reordering between a
several-token and a one-token pass differs (tested within 1e-5 against `score()`). Greedy only: at temperature > 0
the draws would need rejection sampling and would consume the generator differently.

Departure from transformers' `prompt_lookup_num_tokens`: that one runs a single row; ours verifies several rows of
different lengths in one pass, the rejected columns of a row becoming masked holes in the shared cache.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence


def lookup_draft(context: Sequence[int], k: int, ngram: int = 3, min_ngram: int = 2) -> list[int]:
    """Up to `k` tokens that followed the latest earlier occurrence of the context's last n tokens (n from
    `ngram` down to `min_ngram`, longest first); [] when none occurred or k < 1.

    The match may overlap the suffix itself (a run like a a a a drafts more a's). Cost: at most one backward
    scan of the context per n, a few hundred microseconds for 3,000 tokens."""
    if k < 1:
        return []
    ctx = list(context)
    L = len(ctx)
    for n in range(min(ngram, L - 1), max(min_ngram, 1) - 1, -1):
        tail, t0 = ctx[L - n :], ctx[L - n]
        for s in range(L - n - 1, -1, -1):  # the latest start s < L - n with ctx[s : s + n] == tail
            if ctx[s] == t0 and ctx[s : s + n] == tail:
                return ctx[s + n : s + n + k]
    return []


def accept_greedy(draft: Sequence[int], greedy: Sequence[int]) -> int:
    """How many draft tokens the verifying pass confirms: greedy[i] is the model's choice after the last sampled
    token and draft[:i]; draft[i] stands while it equals greedy[i]. The pass then yields greedy[: n + 1]: the
    confirmed draft tokens plus the model's own next token."""
    n = 0
    while n < len(draft) and n < len(greedy) - 1 and draft[n] == greedy[n]:
        n += 1
    return n


def tokens_kept(draft: Sequence[int], greedy: Sequence[int], stop_ids: Collection[int]) -> int:
    """How many of a verifying pass's greedy tokens a row keeps: its confirmed draft tokens and the model's next
    one, cut right after the first end-of-turn token among the confirmed ones (the turn ends there)."""
    m = accept_greedy(draft, greedy)
    return next((i + 1 for i, t in enumerate(greedy[:m]) if t in stop_ids), m + 1)
