"""Building a summarizer from a spec string, and summarizing a step's groups in parallel.

Specs: `offline` (default; §3's deterministic summarizer), `openai:MODEL` (any OpenAI-compatible endpoint),
`hf:MODEL` (a local transformers model through `sgcd.policy.models.load_policy`, loaded on first use).

Options (keyword arguments; an unknown one is an error naming it):
    openai: base_url, api_key_env, timeout, retries, backoff_base, backoff_max, retry_after_max, json_mode,
            max_output_tokens, max_concurrency, max_requests, max_tokens, cache_dir, seed
    hf:     max_new_tokens, max_requests, max_tokens, cache_dir
`max_requests` / `max_tokens` are the per-run budget (None = unlimited); `cache_dir` enables the on-disk cache.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sgcd.credit_reference.base import GroupLike, OfflineSummarizer, Summarizer, SummarizerStats
from sgcd.credit_reference.schema import CreditReference

_COMMON = {"max_requests", "max_tokens", "cache_dir"}


def _check(spec: str, opts: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(opts) - allowed)
    if unknown:
        raise ValueError(f"summarizer {spec!r}: unknown option(s) {unknown}; allowed: {sorted(allowed)}")


def make_summarizer(spec: str = "offline", **opts: Any) -> Summarizer:
    """A summarizer for `spec` (see the module docstring); options set to None are ignored."""
    from sgcd.credit_reference.backends import Budget, HFBackend, OpenAIBackend, OpenAIConfig
    from sgcd.credit_reference.cache import ReferenceCache
    from sgcd.credit_reference.llm import LLMSummarizer

    opts = {k: v for k, v in opts.items() if v is not None}
    kind, _, model = spec.partition(":")
    if kind == "offline" and not model:
        _check(spec, opts, set())
        return OfflineSummarizer()
    if kind not in ("openai", "hf") or not model:
        raise ValueError(f"unknown summarizer {spec!r}; use offline, openai:MODEL or hf:MODEL")
    stats = SummarizerStats()
    budget = Budget(opts.pop("max_requests", None), opts.pop("max_tokens", None))
    cache_dir = opts.pop("cache_dir", None)
    cache = ReferenceCache(cache_dir) if cache_dir else None
    if kind == "openai":
        fields = {f.name for f in dataclasses.fields(OpenAIConfig)} - {"model"}
        _check(spec, opts, fields | {"seed"} | _COMMON)
        seed = opts.pop("seed", 0)
        backend: Any = OpenAIBackend(OpenAIConfig(model=model, **opts), budget, stats.count, seed=seed)
    else:
        _check(spec, opts, {"max_new_tokens"} | _COMMON)
        backend = HFBackend(model, budget, stats.count, **opts)
    summarizer = LLMSummarizer(backend, model, stats, cache, name=spec)
    return summarizer


def summarize_groups(
    summarizer: Summarizer, groups: Sequence[GroupLike], max_concurrency: int = 4
) -> list[CreditReference]:
    """References for a step's groups, in order; up to `max_concurrency` groups are summarized at once."""
    if max_concurrency <= 1 or len(groups) <= 1:
        return [summarizer.summarize(g) for g in groups]
    with ThreadPoolExecutor(max_workers=min(max_concurrency, len(groups))) as pool:
        return list(pool.map(summarizer.summarize, groups))
