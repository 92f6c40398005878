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

Shared columns (cascade attention, CPU). A batch of generation rows usually starts with the same system prompt,
whose keys/values every row holds at the same columns; each pass then reads that prompt once per row. Inside
`shared_columns()`, with `handle.columns = P` (the caller guarantees columns [0, P) hold the same keys/values in
every row and no mask hides them), a pass of `MIN_ROWS` rows or more attends in two parts: every row's queries
against row 0's first P columns in one call, and each row against its own columns from P on; the two are joined
through their log-sum-exps (softmax over the union). The shared part is read once instead of once per row. The
result equals one softmax over all columns up to float rounding (tested); it needs the CPU flash kernel's
log-sum-exp (`_scaled_dot_product_flash_attention_for_cpu`), so other devices keep the one-call path.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

NAME = "sgcd_packed_sdpa"
_registered = False
MIN_ROWS = 8  # fewer rows re-read little of the shared part; the split's extra calls are not worth it
MIN_SHARED = 64  # shared columns below this are not worth the split either


@dataclass
class Shared:
    """Columns [0, columns) hold the same keys/values in every row of the current cache (0 = unknown)."""

    columns: int = 0


_SHARED: contextvars.ContextVar[Shared | None] = contextvars.ContextVar("sgcd_shared_columns", default=None)


@contextlib.contextmanager
def shared_columns() -> Iterator[Shared]:
    """A handle for the block's passes: set `.columns` once the cache's layout is known (generation does)."""
    token = _SHARED.set(handle := Shared())
    try:
        yield handle
    finally:
        _SHARED.reset(token)


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
    (B or 1, 1, q, L); returns (B, q, H, d). Inside `shared_columns` with enough rows and shared columns, the
    shared part is attended once (`_cascade`, any q). Otherwise, anything but several query tokens over key/value
    groups with a boolean mask (one query token, no groups, a float or per-head mask, dropout, soft-capping,
    position bias) goes to transformers' own sdpa function."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    n = getattr(module, "num_key_value_groups", 1)
    B, H, q, d = query.shape
    own_mask = attention_mask is None or (attention_mask.dtype == torch.bool and attention_mask.shape[1] == 1)
    per_row = attention_mask is None or attention_mask.shape[0] == B
    extras = dropout or any(
        kwargs.get(k) is not None for k in ("softcap", "position_bias", "s_aux", "sliding_window")
    )
    shared = _SHARED.get()
    P = shared.columns if shared is not None else 0
    if (
        own_mask
        and per_row
        and not extras
        and P >= MIN_SHARED
        and B >= MIN_ROWS
        and key.shape[0] == B
        and key.shape[2] > P
        and query.device.type == "cpu"
        and query.dtype == key.dtype == value.dtype
        and hasattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu")
    ):
        out = _cascade(query.reshape(B, H // n, n * q, d), key, value, attention_mask, n, P, scaling)
        return out.reshape(B, H, q, d).transpose(1, 2).contiguous(), None
    if n == 1 or q == 1 or attention_mask is None or not own_mask or extras:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout, scaling, **kwargs)
    # head h = g * n + r reads key/value head g (repeat_kv's layout): (B, H, q, d) -> (B, H_kv, n * q, d)
    q_G = query.reshape(B, H // n, n * q, d)
    mask = attention_mask.repeat(1, 1, n, 1)  # row r * q + i of a head group is query token i
    out = torch.nn.functional.scaled_dot_product_attention(q_G, key, value, attn_mask=mask, scale=scaling)
    return out.reshape(B, H, q, d).transpose(1, 2).contiguous(), None


def _flash(q_G: torch.Tensor, key: torch.Tensor, value: torch.Tensor, mask_f: torch.Tensor | None, scale):
    """(out, log-sum-exp) of the CPU flash kernel, the one F.scaled_dot_product_attention runs here."""
    return torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(
        q_G, key, value, 0.0, False, attn_mask=mask_f, scale=scale
    )


def _cascade(q_G, key, value, attention_mask, n, P, scale) -> torch.Tensor:
    """Packed queries q_G (B, H_kv, n * q, d) over shared columns [0, P) (row 0's, read once) and each row's
    own columns [P, L); returns (B, H_kv, n * q, d). With s1, s2 the two parts' log-sum-exps and o1, o2 their
    outputs, the softmax over all columns is o2 + (o1 - o2) * sigmoid(s1 - s2)."""
    B, G, Q, d = q_G.shape
    # part 1: the B rows' queries as one row of B * Q queries, against the shared columns (nothing masked)
    o1, s1 = _flash(
        q_G.transpose(0, 1).reshape(1, G, B * Q, d), key[:1, :, :P], value[:1, :, :P], None, scale
    )
    o1, s1 = o1.view(G, B, Q, d).transpose(0, 1), s1.view(G, B, Q).transpose(0, 1)
    mask = None
    if attention_mask is not None:  # (B, 1, q, L) booleans -> the own columns', query rows repeated n times
        own = attention_mask[..., P:]
        mask = torch.zeros(own.shape, dtype=q_G.dtype).masked_fill_(~own, float("-inf")).repeat(1, 1, n, 1)
    o2, s2 = _flash(q_G, key[:, :, P:], value[:, :, P:], mask, scale)
    if mask is not None and Q > n:  # a padding query may see no own column (the kernel gives s2 = 0, o2 = 0)
        s2 = s2.masked_fill(~own.any(-1).repeat(1, 1, n), float("-inf"))
    return torch.lerp(o2, o1, torch.sigmoid(s1 - s2).unsqueeze(-1).to(o2.dtype))


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
