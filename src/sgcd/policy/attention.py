"""Grouped-query attention for generation's several-token passes, without copying the cache.

SmolLM2 (like Llama, Qwen) has fewer key/value heads than query heads (3 vs 9). For a one-token query
transformers' sdpa path folds the query heads onto their key/value head (`pack_gqa`); for a query of several
tokens with a padding mask (a prefill after a cached prefix, a pass that verifies draft tokens) it repeats every
cached key and value 3x (`repeat_kv`), a copy of the whole cache in every layer and every pass. Measured on the
2-core CPU (scripts/attention_cost.py: SmolLM2-135M, 2,500 cached positions, 8 rows, median of 5): 351 ms for
a one-token pass against 1,338 ms for two tokens; 321 ms for two tokens through `packed_sdpa`.

`packed_sdpa` does for q tokens what `pack_gqa` does for one: the n query heads of a key/value head become n * q
query rows of that head, and the mask is repeated n times along the query axis (q x positions booleans, not the
cache). The arithmetic is the same attention (tested against transformers' path). `packed_attention(model)`
switches a model to it for a block (generation only; scoring and training keep the model's own attention).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch

NAME = "sgcd_packed_sdpa"
_registered = False


def packed_sdpa(
    module: Any,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """transformers' attention-function signature: query (B, H, q, d), key/value (B, H_kv, L, d), a boolean mask
    (B or 1, 1, q, L); returns (B, q, H, d). Anything else (one query token, no key/value groups, a float or
    per-head mask, dropout, soft-capping, position bias) goes to transformers' own sdpa function."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    n = getattr(module, "num_key_value_groups", 1)
    B, H, q, d = query.shape
    plain = (
        n == 1
        or q == 1
        or attention_mask is None
        or attention_mask.dtype != torch.bool
        or attention_mask.shape[1] != 1
        or dropout
        or any(kwargs.get(k) is not None for k in ("softcap", "position_bias", "s_aux", "sliding_window"))
    )
    if plain:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout, scaling, **kwargs)
    # head h = g * n + r reads key/value head g (repeat_kv's layout): (B, H, q, d) -> (B, H_kv, n * q, d)
    q_G = query.reshape(B, H // n, n * q, d)
    mask = attention_mask.repeat(1, 1, n, 1)  # row r * q + i of a head group is query token i
    out = torch.nn.functional.scaled_dot_product_attention(q_G, key, value, attn_mask=mask, scale=scaling)
    return out.reshape(B, H, q, d).transpose(1, 2).contiguous(), None


def _register() -> None:
    global _registered
    if not _registered:
        from transformers import AttentionInterface
        from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

        AttentionInterface.register(NAME, packed_sdpa)
        AttentionMaskInterface.register(NAME, sdpa_mask)  # the same boolean masks as sdpa
        _registered = True


@contextlib.contextmanager
def packed_attention(model: Any) -> Iterator[None]:
    """Within the block, a model whose attention is transformers' sdpa uses `packed_sdpa`; any other attention
    implementation (eager, flash, flex) is left alone."""
    config = getattr(model, "config", None)
    prev = getattr(config, "_attn_implementation", None)
    if prev != "sdpa":
        yield
        return
    _register()
    config._attn_implementation = NAME
    try:
        yield
    finally:
        config._attn_implementation = prev
