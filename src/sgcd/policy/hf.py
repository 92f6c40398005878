"""A transformers causal LM as a TokenPolicy: chat encoding, batched sampling, and chunked per-token scoring.

- `generate`: one batched sampling loop with a KV cache over left-padded prompts; each row stops at its own
  end-of-turn token (`<|im_end|>`), finished rows leave the batch (the cache is compacted), temperature and
  top-p, seeded by the policy's torch.Generator. Ids come back verbatim, never re-tokenized.
- Reserved KV cache: after the prompt, each layer's keys/values move into a buffer sized for the whole turn,
  so a decode step writes one column in place instead of concatenating (copying) the whole cache, which is
  what transformers' DynamicCache does every step. Falls back to the plain DynamicCache for layer kinds it
  does not know (sliding windows, linear attention) and for transformers releases without cache layers.
- Shared-prefix cache: rows that share a long prompt prefix (the system prompt and tool schemas of one
  environment) prefill it once; its keys/values are memoised across calls and keyed by every parameter's
  in-place version counter, so any optimizer step invalidates them. Rows are left-padded *after* the shared
  prefix (padding masked, positions contiguous), which is exact up to float rounding (tested).
- Sampling log-probs are of the **untempered** policy: log softmax(logits) at temperature 1, before top-p,
  whatever the sampling temperature. That is pi_old as PPO's ratio and the teacher's divergence need it, and it
  equals `score()` on the same tokens (tested). Departure from samplers that report the tempered/truncated
  distribution (vLLM's default): those log-probs are *not* what the trainer would recompute.
- `score`: one forward of the transformer body, then log-softmax over the vocabulary in chunks of positions, so
  memory is O(B * chunk * V) rather than O(B * T * V); with `grad=True` each chunk is checkpointed, so the
  backward pass recomputes its logits instead of storing them. Logits are upcast to float32 before softmax
  (the body may run in bfloat16).
Supported: models whose logits are `lm_head(last_hidden_state)` (optionally soft-capped), e.g. Llama, Qwen, SmolLM.
"""

from __future__ import annotations

import copy
import inspect
from pathlib import Path
from typing import Any

import torch
from torch.utils.checkpoint import checkpoint

from sgcd.policy.base import Completion, SamplingParams, ScoreOutput
from sgcd.policy.chat import ChatCodec

try:  # cache layers (transformers >= 4.56); without them generation keeps transformers' own cache
    from transformers.cache_utils import DynamicCache, DynamicLayer

    _HAS_LAYERS = True
except ImportError:
    _HAS_LAYERS = False

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class HFPolicy(ChatCodec):
    """TokenPolicy over a transformers model. `.model` is what the trainer optimises; `.tokenizer`, `.device`.

    The encoding (encode_prompt, encode_delta, decode, eot_id) is ChatCodec's; this class adds the model.
    """

    def __init__(self, model: Any, tokenizer: Any, *, seed: int = 0, score_chunk: int = 256) -> None:
        super().__init__(tokenizer)
        self.model = model
        self.score_chunk = score_chunk  # positions per log-softmax chunk in score()
        self.pad_id: int = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eot_id
        self.stop_ids: frozenset[int] = frozenset({self.eot_id})
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        self.min_shared_prefix = 16  # shorter common prefixes are not worth a separate cache
        # transformers >= 5.2x names the KV-cache argument `cache`; older releases `past_key_values`.
        self._cache_kw = (
            "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
        )
        self._memo: tuple[tuple, Any] | None = None  # (key, KV cache of one shared prefix)

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str = "cpu", dtype: str = "float32", seed: int = 0):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if dtype not in DTYPES:
            raise ValueError(f"dtype {dtype!r} not supported; choose one of {', '.join(DTYPES)}")
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=DTYPES[dtype]).to(device)
        model.eval()
        return cls(model, tokenizer, seed=seed)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def seed(self, seed: int) -> None:
        """Reset the sampling generator (same seed + same prompts + same params = same samples)."""
        self.generator = torch.Generator(device=self.device).manual_seed(seed)

    # ---- sampling --------------------------------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, prompts: list[list[int]], params: SamplingParams) -> list[Completion]:
        """Sample one assistant turn per prompt, all rows together; see the module docstring for log-probs."""
        if not prompts:
            return []
        if any(len(p) == 0 for p in prompts):
            raise ValueError("generate: every prompt needs at least one token")
        dev, B = self.device, len(prompts)
        P = self._shared_prefix_len(prompts)
        S = max(len(p) - P for p in prompts)
        capacity = P + S + params.max_new_tokens
        cache = self._prefix_cache(prompts[0][:P], B, capacity) if P else None
        ids_B_S = torch.full((B, S), self.pad_id, dtype=torch.long)
        attn_B_S = torch.zeros((B, S), dtype=torch.long)
        for b, p in enumerate(prompts):  # left padding after the shared prefix: the next token is at column S
            ids_B_S[b, S - (len(p) - P) :] = torch.tensor(p[P:])
            attn_B_S[b, S - (len(p) - P) :] = 1
        ids_B_S, attn_B_S = ids_B_S.to(dev), attn_B_S.to(dev)
        pos_B_S = (P + attn_B_S.cumsum(-1) - 1).clamp(min=0)
        attn_B_C = attn_B_S.new_ones((B, capacity))  # generated columns are all 1; L columns are in use
        attn_B_C[:, P : P + S] = attn_B_S
        L = P + S
        out = self.model(
            input_ids=ids_B_S,
            attention_mask=attn_B_C[:, :L],
            position_ids=pos_B_S,
            use_cache=True,
            logits_to_keep=1,
            **({self._cache_kw: cache} if cache is not None else {}),
        )
        cache, pos_B = reserve_cache(out[self._cache_kw], capacity), pos_B_S[:, -1]
        alive = list(range(B))  # original row of each cache row
        toks: list[list[int]] = [[] for _ in range(B)]
        lps: list[list[float]] = [[] for _ in range(B)]
        done = [False] * B
        for _ in range(params.max_new_tokens):
            logits_A_V = out.logits[:, -1, :].float()
            tok_A, lp_A = self._sample(logits_A_V, params)
            for a, (t, lp) in enumerate(zip(tok_A.tolist(), lp_A.tolist())):
                b = alive[a]
                toks[b].append(t)
                lps[b].append(lp)
                done[b] = t in self.stop_ids
            keep = [a for a, b in enumerate(alive) if not done[b]]
            if not keep or len(toks[alive[keep[0]]]) >= params.max_new_tokens:
                break
            if len(keep) < len(alive):  # drop finished rows from the batch and the cache
                idx = torch.tensor(keep, device=dev)
                cache.batch_select_indices(idx)
                tok_A, attn_B_C, pos_B = tok_A[idx], attn_B_C[idx], pos_B[idx]
                alive = [alive[a] for a in keep]
            L, pos_B = L + 1, pos_B + 1
            out = self.model(
                input_ids=tok_A[:, None],
                attention_mask=attn_B_C[:, :L],
                position_ids=pos_B[:, None],
                use_cache=True,
                **{self._cache_kw: cache},
            )
        return [self._completion(t, lp) for t, lp in zip(toks, lps)]

    def _shared_prefix_len(self, prompts: list[list[int]]) -> int:
        """Length of the prefix all prompts share (each keeps >= 1 own token); 0 when too short to matter."""
        first, n = prompts[0], min(len(p) for p in prompts) - 1
        for p in prompts[1:]:
            n = next((i for i in range(n) if p[i] != first[i]), n)
        return n if n >= self.min_shared_prefix else 0

    def _prefix_cache(self, prefix: list[int], batch: int, capacity: int) -> Any:
        """A fresh KV cache of `prefix` repeated `batch` times, with room for `capacity` positions in all;
        the prefix itself is computed once per prefix and weights version.

        The key holds every parameter's in-place version counter, so an optimizer step (or load_state_dict)
        invalidates it: a stale prefix is never reused after the weights change.
        """
        key = (tuple(prefix), tuple(p._version for p in self.model.parameters()), str(self.device))
        if self._memo is None or self._memo[0] != key:
            ids = torch.tensor([prefix], device=self.device)
            out = self.model(input_ids=ids, use_cache=True, logits_to_keep=1)
            self._memo = (key, out[self._cache_kw])
        cache = reserve_cache(self._memo[1], capacity, repeat=batch)
        if cache is self._memo[1]:  # not reservable: copy, so the memo stays the prefix alone
            cache = copy.deepcopy(cache)
            if batch > 1:
                cache.batch_repeat_interleave(batch)
        return cache

    def _completion(self, toks: list[int], lps: list[float]) -> Completion:
        finished = bool(toks) and toks[-1] in self.stop_ids
        text = self.decode(toks[:-1] if finished else toks)
        return Completion(token_ids=tuple(toks), logprobs=tuple(lps), text=text, finished=finished)

    def _sample(self, logits_A_V: torch.Tensor, params: SamplingParams) -> tuple[torch.Tensor, torch.Tensor]:
        """Next token per row, and its log-prob under the untempered, untruncated policy."""
        logp_A_V = torch.log_softmax(logits_A_V, dim=-1)
        if params.temperature <= 0:
            tok_A = logits_A_V.argmax(-1)
        else:
            probs_A_V = torch.softmax(logits_A_V / params.temperature, dim=-1)
            if params.top_p < 1.0:
                probs_A_V = top_p_filter(probs_A_V, params.top_p)
            tok_A = sample_inverse_cdf(probs_A_V, self.generator)
        return tok_A, logp_A_V.gather(-1, tok_A[:, None]).squeeze(-1)

    # ---- scoring ---------------------------------------------------------------------------------------------
    def score(
        self,
        prefixes: list[list[int]],
        continuations: list[list[int]],
        *,
        topk: int = 0,
        with_entropy: bool = False,
        grad: bool = False,
    ) -> ScoreOutput:
        """log p(continuation_t | prefix, continuation_<t) per token, right-padded to (B, T_max)."""
        if len(prefixes) != len(continuations):
            raise ValueError(f"score: {len(prefixes)} prefixes but {len(continuations)} continuations")
        if any(len(p) == 0 for p in prefixes):
            raise ValueError(
                "score: every prefix needs at least one token (the first token has no prediction)"
            )
        with torch.set_grad_enabled(grad):
            return self._score(prefixes, continuations, topk, with_entropy, grad)

    def _score(self, prefixes, continuations, topk, with_entropy, grad) -> ScoreOutput:
        dev, B = self.device, len(prefixes)
        # Without gradients a shared prompt prefix is exact to reuse (the same cache generate() uses); with
        # gradients it is recomputed so the gradient through the prompt's keys/values is kept.
        P = 0 if grad else self._shared_prefix_len(prefixes)
        T = max((len(c) for c in continuations), default=0)
        L = max(len(p) + len(c) for p, c in zip(prefixes, continuations)) - P
        cache = self._prefix_cache(list(prefixes[0][:P]), B, P + L) if P else None
        ids_B_L = torch.full((B, L), self.pad_id, dtype=torch.long)
        attn_B_L = torch.zeros((B, L), dtype=torch.long)
        tgt_B_T = torch.full((B, T), self.pad_id, dtype=torch.long)
        src_B_T = torch.zeros((B, T), dtype=torch.long)  # column whose hidden state predicts target t
        mask_B_T = torch.zeros((B, T), dtype=torch.bool)
        for b, (p, c) in enumerate(zip(prefixes, continuations)):  # right padding after the shared prefix
            row = list(p[P:]) + list(c)
            ids_B_L[b, : len(row)] = torch.tensor(row)
            attn_B_L[b, : len(row)] = 1
            tgt_B_T[b, : len(c)] = torch.tensor(c, dtype=torch.long)
            src_B_T[b] = (torch.arange(T) + len(p) - P - 1).clamp(max=L - 1)
            mask_B_T[b, : len(c)] = True
        ids_B_L, attn_B_L, tgt_B_T, src_B_T = (
            ids_B_L.to(dev),
            attn_B_L.to(dev),
            tgt_B_T.to(dev),
            src_B_T.to(dev),
        )
        attn_full = torch.cat([attn_B_L.new_ones((B, P)), attn_B_L], dim=1)
        pos_B_L = (P + torch.arange(L, device=dev))[None].expand(B, L)
        body = getattr(self.model, self.model.base_model_prefix)
        kwargs = {self._cache_kw: cache, "use_cache": True} if cache is not None else {}
        hidden_B_L_H = body(input_ids=ids_B_L, attention_mask=attn_full, position_ids=pos_B_L, **kwargs)
        hidden_B_L_H = hidden_B_L_H.last_hidden_state
        h_B_T_H = hidden_B_L_H.gather(1, src_B_T[..., None].expand(-1, -1, hidden_B_L_H.shape[-1]))
        parts = [
            self._score_chunk(
                h_B_T_H[:, s : s + self.score_chunk],
                tgt_B_T[:, s : s + self.score_chunk],
                topk,
                with_entropy,
                grad,
            )
            for s in range(0, T, self.score_chunk)
        ]
        if not parts:
            empty = torch.zeros((B, 0), device=dev)
            return ScoreOutput(logprobs=empty, mask=mask_B_T.to(dev))
        cat = [torch.cat([p[i] for p in parts], dim=1) if parts[0][i] is not None else None for i in range(4)]
        mask = mask_B_T.to(dev)
        return ScoreOutput(
            logprobs=cat[0] * mask, mask=mask, entropy=cat[1], topk_logprobs=cat[2], topk_ids=cat[3]
        )

    def _score_chunk(self, h_B_C_H, tgt_B_C, topk, with_entropy, grad):
        def fn(h):
            logp_B_C_V = torch.log_softmax(self._logits(h).float(), dim=-1)
            lp = logp_B_C_V.gather(-1, tgt_B_C[..., None]).squeeze(-1)
            ent = -(logp_B_C_V.exp() * logp_B_C_V).sum(-1) if with_entropy else None
            top = logp_B_C_V.topk(topk, dim=-1) if topk else None
            return lp, ent, (top.values if top else None), (top.indices if top else None)

        if grad and h_B_C_H.requires_grad:
            return checkpoint(fn, h_B_C_H, use_reentrant=False)
        return fn(h_B_C_H)

    def _logits(self, h: torch.Tensor) -> torch.Tensor:
        logits = self.model.get_output_embeddings()(h)
        cap = getattr(self.model.config, "final_logit_softcapping", None)
        return torch.tanh(logits / cap) * cap if cap else logits


def reserve_cache(cache: Any, capacity: int, repeat: int = 1) -> Any:
    """A new cache whose layers hold `cache`'s keys/values (each row repeated `repeat` times) in buffers with
    room for `capacity` positions; `cache` itself is left as it was. Returns `cache` unchanged when any of its
    layers is not a plain DynamicLayer (or the transformers release has no cache layers)."""
    if not _HAS_LAYERS:
        return cache
    layers = getattr(cache, "layers", None)
    if not layers or any(type(layer) not in (DynamicLayer, ReservedLayer) for layer in layers):
        return cache
    if repeat == 1 and all(isinstance(la, ReservedLayer) and la.capacity >= capacity for la in layers):
        return cache  # already reserved (a shared prefix): the prompt was written into its buffers
    if any(not layer.is_initialized for layer in layers):
        return cache
    new = DynamicCache()
    new.layers = [ReservedLayer(layer.keys, layer.values, capacity, repeat) for layer in layers]
    new.layer_class_to_replicate = None
    return new


class ReservedLayer(DynamicLayer if _HAS_LAYERS else object):  # type: ignore[misc]
    """A DynamicLayer whose keys/values are views into buffers reserved up front: `update` writes in place.

    Only what generation and scoring use is overridden (update, length, batch selection); `keys`/`values`
    are always the filled part, so everything DynamicLayer derives from them stays right.
    """

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, capacity: int, repeat: int = 1) -> None:
        super().__init__()
        B, H, n, _ = keys.shape
        if capacity < n:
            raise ValueError(f"ReservedLayer: capacity {capacity} < {n} cached positions")
        self._k = keys.new_empty((B * repeat, H, capacity, keys.shape[-1]))
        self._v = values.new_empty((B * repeat, values.shape[1], capacity, values.shape[-1]))
        self._k[:, :, :n] = keys.repeat_interleave(repeat, dim=0) if repeat > 1 else keys
        self._v[:, :, :n] = values.repeat_interleave(repeat, dim=0) if repeat > 1 else values
        self.n, self.capacity = n, capacity
        self.device, self.dtype, self.is_initialized = keys.device, keys.dtype, True
        self._views()

    def _views(self) -> None:
        self.keys, self.values = self._k[:, :, : self.n], self._v[:, :, : self.n]

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        m = self.n + key_states.shape[-2]
        if m > self.capacity:
            raise RuntimeError(f"ReservedLayer: {m} positions exceed the reserved {self.capacity}")
        self._k[:, :, self.n : m] = key_states
        self._v[:, :, self.n : m] = value_states
        self.n = m
        self._views()
        return self.keys, self.values

    def get_seq_length(self, *args, **kwargs) -> int:
        return self.n

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        self._k, self._v = self._k[indices], self._v[indices]
        self._views()

    def batch_repeat_interleave(self, repeats: int) -> None:
        self._k = self._k.repeat_interleave(repeats, dim=0)
        self._v = self._v.repeat_interleave(repeats, dim=0)
        self._views()


def sample_inverse_cdf(probs_A_V: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """One token per row from (unnormalised) probabilities by inverse transform: the first index whose
    cumulative mass exceeds u * total, u ~ U[0, 1). An exact categorical sample that draws one uniform per row,
    where torch.multinomial draws an exponential per vocabulary entry (8 ms vs 0.2 ms a step on CPU at B=8,
    V=49,152). The sum runs in float64 so the tail of a large vocabulary is not lost to rounding, and the
    target stays strictly below the total, so a zero-probability token is never chosen."""
    u_A = torch.rand(probs_A_V.shape[0], generator=generator, device=probs_A_V.device, dtype=torch.float64)
    return inverse_cdf(probs_A_V, u_A)


def inverse_cdf(probs_A_V: torch.Tensor, u_A: torch.Tensor) -> torch.Tensor:
    """The first index per row whose cumulative mass exceeds u * total (u in [0, 1), float64)."""
    cdf_A_V = probs_A_V.double().cumsum(-1)
    total_A_1 = cdf_A_V[:, -1:]
    target_A_1 = torch.minimum(
        u_A[:, None] * total_A_1, torch.nextafter(total_A_1, torch.zeros_like(total_A_1))
    )
    return torch.searchsorted(cdf_A_V, target_A_1, right=True).squeeze(-1)


def top_p_filter(probs_A_V: torch.Tensor, top_p: float) -> torch.Tensor:
    """Keep the smallest set of tokens whose mass reaches top_p (the top token always kept); renormalise."""
    sorted_p, order = probs_A_V.sort(dim=-1, descending=True)
    cum = sorted_p.cumsum(-1)
    drop_sorted = (cum - sorted_p) >= top_p  # mass before this token already reaches top_p
    drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
    kept = probs_A_V.masked_fill(drop, 0.0)
    return kept / kept.sum(-1, keepdim=True)
