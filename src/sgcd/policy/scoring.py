"""Scoring rows of (prefix, continuation) token ids with a policy, in fixed micro-batches, padded to T columns.

`score_batch` calls `policy.score(prefixes, continuations, ...)` on fixed micro-batches of rows and pads each result
to T, so a forward over the same rows with the same prefixes always sees the same shapes (bit-identical on CPU).
The reference trainer and the TRL integration both score through it (one scores type, `Scores`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch


@dataclass
class Scores:
    """Per-token scores of a batch's rows, (B, T) (topk: (B, T, k)); None where not asked for."""

    logprobs_B_T: torch.Tensor
    entropy_B_T: torch.Tensor | None = None
    topk_logprobs_B_T_K: torch.Tensor | None = None
    topk_ids_B_T_K: torch.Tensor | None = None


def _pad_to(x: torch.Tensor | None, T: int) -> torch.Tensor | None:
    if x is None or x.shape[1] == T:
        return x
    pad = [0, 0] * (x.dim() - 2) + [0, T - x.shape[1]]
    return torch.nn.functional.pad(x, pad)


def score_rows(
    policy: Any,
    prefixes: list[list[int]],
    continuations: list[list[int]],
    T: int,
    *,
    topk: int = 0,
    with_entropy: bool = False,
    grad: bool = False,
    select: list[Any] | None = None,
    share_prefix: bool | None = None,
    pad_to: int | None = None,
) -> Scores:
    """One `policy.score` call over these rows, padded to T columns (on the policy's device)."""
    kw: dict[str, Any] = {"topk": topk, "with_entropy": with_entropy, "grad": grad}
    if pad_to is not None:
        kw["pad_to"] = pad_to
    if select is not None:
        kw["select"] = select
    if share_prefix is not None:
        kw["share_prefix"] = share_prefix
    out = policy.score(prefixes, continuations, **kw)
    return Scores(
        logprobs_B_T=_pad_to(out.logprobs, T),
        entropy_B_T=_pad_to(out.entropy, T) if with_entropy else None,
        topk_logprobs_B_T_K=_pad_to(out.topk_logprobs, T) if topk else None,
        topk_ids_B_T_K=_pad_to(out.topk_ids, T) if topk else None,
    )


@torch.no_grad()
def score_batch(
    policy: Any,
    prefixes: list[list[int]],
    continuations: list[list[int]],
    T: int,
    micro: int,
    *,
    topk: int = 0,
    with_entropy: bool = False,
    select: list[Any] | None = None,
    share_prefix: bool | None = None,
    pad_to: int | None = None,
) -> Scores:
    """Score all rows without gradient, `micro` rows per forward; results on CPU, (B, T).

    select / share_prefix: as `policy.score` (positions to score; reuse a shared prompt prefix)."""
    parts: list[Scores] = []
    for s in range(0, len(prefixes), micro):
        sc = score_rows(
            policy,
            prefixes[s : s + micro],
            continuations[s : s + micro],
            T,
            topk=topk,
            with_entropy=with_entropy,
            select=None if select is None else select[s : s + micro],
            share_prefix=share_prefix,
            pad_to=pad_to,
        )
        parts.append(sc)

    def cat(name: str) -> torch.Tensor | None:
        vals = [getattr(p, name) for p in parts]
        return None if not vals or vals[0] is None else torch.cat([v.detach().cpu() for v in vals], dim=0)

    if not parts:
        return Scores(logprobs_B_T=torch.zeros(0, T))
    return Scores(cat("logprobs_B_T"), cat("entropy_B_T"), cat("topk_logprobs_B_T_K"), cat("topk_ids_B_T_K"))
