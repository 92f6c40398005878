"""KV caches for HFPolicy's generation: buffers reserved for a whole turn, and per-episode caches kept across turns.

- `ReservedLayer` / `reserve_cache`: after the prompt, each layer's keys/values live in a buffer sized for the
  whole turn, so a decode step writes one column in place instead of concatenating (copying) the whole cache,
  which is what transformers' DynamicCache does every step.
- `SessionStore`: multi-turn episodes. After a turn, each row's keys/values (its prompt and the tokens it
  sampled) are kept, keyed by those token ids. The next turn's prompt is that sequence plus the environment's
  answer, so only the answer is prefilled: a rollout's cost grows with its length, not with the square of its
  turns. Entries are bounded in bytes (least recently used dropped first, which only costs a recomputation) and
  tied to the weights they were computed with: any parameter update, or a switch to the reference weights,
  empties the store.
- `drop_rows`: rows that finished their turn leave the batch in place (the last kept rows move into the freed
  rows; nothing is allocated). Buffers are reserved uninitialised (`new_buffer`): every column is written by a
  pass before it is read, and the masked gaps between rows of different lengths are zeroed. A turn's buffers
  are handed back when it ends (`spare_buffers`) and the next turn reuses them instead of mapping fresh pages.
- `row_slice` / `set_filled`: a group of rows of a reserved cache as a cache of its own (views), so rows can be
  prefilled group by group into one shared layout.
- `batch_cache`: rows whose cached lengths differ are laid side by side in one reserved cache, each row's keys
  left-aligned; the gap up to the longest row is masked out by the caller's attention mask. Keys carry their
  rotary positions already, so new tokens continue at each row's own position.

Departure from transformers' generate(): ours keeps the cache of one turn for the next turn; theirs recomputes
the conversation (or asks the caller to carry `past_key_values` by hand, one row at a time).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import torch

try:  # cache layers (transformers >= 4.56); without them generation keeps transformers' own cache
    from transformers.cache_utils import DynamicCache, DynamicLayer

    HAS_LAYERS = True
except ImportError:  # pragma: no cover - old transformers
    HAS_LAYERS = False


HEADROOM = 1.5  # a recycled buffer is reserved this much larger, so the next, slightly longer turn fits too


def new_buffer(
    like: torch.Tensor, shape: tuple[int, ...], spare: list[torch.Tensor] | None = None
) -> torch.Tensor:
    """An uninitialised key or value buffer (the one place reserved buffers are made; tests fill it with NaN
    to prove nothing reads a column before a pass writes it or the caller zeroes it).

    spare: flat buffers an earlier turn handed back (`spare_buffers`), or [] to start recycling. The smallest
    one that is large enough (same dtype and device) is taken out of the list and reused, its old contents left
    in place like any uninitialised memory. When none fits, the spares are let go first (memory peaks no
    higher than without recycling) and a buffer `HEADROOM` times the size is reserved: its pages past what
    this turn writes are never touched, so they cost address space, not memory, until a later turn uses them.
    Why: a fresh allocation of several hundred MB is mapped page by page on first touch; in a 100-task
    evaluation that was about 8 M page faults and 18 s of 232 s."""
    n = math.prod(shape)
    if spare is None:
        return like.new_empty(shape)
    fits = [
        i for i, b in enumerate(spare) if b.numel() >= n and b.dtype == like.dtype and b.device == like.device
    ]
    if fits:
        return spare.pop(min(fits, key=lambda i: spare[i].numel()))[:n].view(shape)
    spare.clear()
    return like.new_empty(int(n * HEADROOM))[:n].view(shape)


def spare_buffers(cache: Any) -> list[torch.Tensor]:
    """The whole buffers (flat, headroom included) behind a reserved cache's layers, to reuse once nothing reads
    the cache any more. Empty for any other cache."""
    layers = getattr(cache, "layers", None) or []
    if not all(isinstance(la, ReservedLayer) for la in layers):
        return []
    # a layer's buffers are views of what was reserved (moving rows keeps a prefix of the rows): recycle the whole
    return [(b if b._base is None else b._base).view(-1) for la in layers for b in (la._k, la._v)]


def reserve_cache(cache: Any, capacity: int, repeat: int = 1, spare: list[torch.Tensor] | None = None) -> Any:
    """A new cache whose layers hold `cache`'s keys/values (each row repeated `repeat` times) in buffers with
    room for `capacity` positions; `cache` itself is left as it was. Returns `cache` unchanged when any of its
    layers is not a plain DynamicLayer (or the transformers release has no cache layers)."""
    if not reservable(cache):
        return cache
    layers = cache.layers
    if repeat == 1 and all(isinstance(la, ReservedLayer) and la.capacity >= capacity for la in layers):
        return cache  # already reserved (a shared prefix): the prompt was written into its buffers
    new = DynamicCache()
    new.layers = [ReservedLayer(layer.keys, layer.values, capacity, repeat, spare) for layer in layers]
    new.layer_class_to_replicate = None
    return new


def reservable(cache: Any) -> bool:
    """True when every layer of `cache` is a plain (full-attention) layer whose buffers we can manage."""
    if not HAS_LAYERS:
        return False
    layers = getattr(cache, "layers", None)
    return bool(layers) and all(
        type(la) in (DynamicLayer, ReservedLayer) and la.is_initialized for la in layers
    )


class ReservedLayer(DynamicLayer if HAS_LAYERS else object):  # type: ignore[misc]
    """A DynamicLayer whose keys/values are views into buffers reserved up front: `update` writes in place.

    Only what generation and scoring use is overridden (update, length, batch selection); `keys`/`values`
    are always the filled part, so everything DynamicLayer derives from them stays right.
    """

    def __init__(
        self,
        keys: torch.Tensor,
        values: torch.Tensor,
        capacity: int,
        repeat: int = 1,
        spare: list[torch.Tensor] | None = None,
    ) -> None:
        super().__init__()
        B, H, n, _ = keys.shape
        if capacity < n:
            raise ValueError(f"ReservedLayer: capacity {capacity} < {n} cached positions")
        k = new_buffer(keys, (B * repeat, H, capacity, keys.shape[-1]), spare)
        v = new_buffer(values, (B * repeat, values.shape[1], capacity, values.shape[-1]), spare)
        k[:, :, :n] = keys.repeat_interleave(repeat, dim=0) if repeat > 1 else keys
        v[:, :, :n] = values.repeat_interleave(repeat, dim=0) if repeat > 1 else values
        self._set(k, v, n)

    @classmethod
    def from_buffers(cls, k: torch.Tensor, v: torch.Tensor, n: int) -> ReservedLayer:
        """A layer over buffers the caller filled (the first `n` columns are in use)."""
        layer = cls.__new__(cls)
        DynamicLayer.__init__(layer)
        layer._set(k, v, n)
        return layer

    def _set(self, k: torch.Tensor, v: torch.Tensor, n: int) -> None:
        self._k, self._v, self.n, self.capacity = k, v, n, k.shape[2]
        self.device, self.dtype, self.is_initialized = k.device, k.dtype, True
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

    def move_rows(self, moves: list[tuple[int, int]], rows: int) -> None:
        """In place: copy row src's filled columns into row dst for each (dst, src), then keep the first
        `rows` rows (views of the same buffers)."""
        for dst, src in moves:
            self._k[dst, :, : self.n] = self._k[src, :, : self.n]
            self._v[dst, :, : self.n] = self._v[src, :, : self.n]
        self._k, self._v = self._k[:rows], self._v[:rows]
        self._views()

    def batch_repeat_interleave(self, repeats: int) -> None:
        self._k = self._k.repeat_interleave(repeats, dim=0)
        self._v = self._v.repeat_interleave(repeats, dim=0)
        self._views()


def drop_rows(cache: Any, keep: list[int]) -> list[int]:
    """Keep the rows `keep` (increasing) of `cache`. Returns, for each row of the new layout, the row it held
    before.

    A reserved cache is compacted in place: each kept row past the new row count moves into the first free row
    below it. Rows are not kept in order (a stable compaction would move every row after the first dropped one),
    and nothing is allocated: `batch_select_indices` copied every kept row's whole reserved buffer into a new
    one, several GB each time a row of a long batch finished its turn. Any other cache (layers we do not
    manage) keeps transformers' `batch_select_indices`, in order."""
    layers = getattr(cache, "layers", None)
    if not layers or not all(isinstance(la, ReservedLayer) for la in layers):
        cache.batch_select_indices(torch.tensor(keep))  # CPU indices select rows on any device
        return list(keep)
    k, kept = len(keep), set(keep)
    order = list(range(k))
    holes = [i for i in range(k) if i not in kept]
    movers = [j for j in keep if j >= k]
    for hole, src in zip(holes, movers):
        order[hole] = src
    moves = list(zip(holes, movers))
    for layer in cache.layers:
        layer.move_rows(moves, k)
    return order


def row_slice(cache: Any, lo: int, hi: int, n: int) -> Any:
    """A cache over rows [lo, hi) of the reserved `cache`, with its first `n` columns in use. Its buffers are
    views: what a forward pass writes into it lands in `cache` (which then needs `set_filled`)."""
    sub = DynamicCache()
    sub.layers = [ReservedLayer.from_buffers(la._k[lo:hi], la._v[lo:hi], n) for la in cache.layers]
    sub.layer_class_to_replicate = None
    return sub


def zero_columns(cache: Any, lo: int, hi: int, start: int, stop: int) -> None:
    """Zero columns [start, stop) of rows [lo, hi) of the reserved `cache` (buffers are reserved uninitialised;
    columns the attention mask hides but no pass writes must still hold finite numbers)."""
    for layer in cache.layers:
        layer._k[lo:hi, :, start:stop] = 0
        layer._v[lo:hi, :, start:stop] = 0


def set_filled(cache: Any, n: int) -> None:
    """Mark the first `n` columns of every row of the reserved `cache` as in use (after `row_slice` writes)."""
    for layer in cache.layers:
        if n > layer.capacity:
            raise ValueError(f"set_filled: {n} positions exceed the reserved {layer.capacity}")
        layer.n = n
        layer._views()


@dataclass
class Entry:
    """One row's cached keys/values: per layer (keys, values), each (heads, n, head_dim), for `tokens`."""

    tokens: tuple[int, ...]
    kv: list[tuple[torch.Tensor, torch.Tensor]]

    @property
    def nbytes(self) -> int:
        return sum(k.numel() * k.element_size() + v.numel() * v.element_size() for k, v in self.kv)


def column_runs(cols: list[int]) -> list[tuple[int, int]]:
    """`cols` as maximal runs of consecutive columns [start, stop), in order: [0, 1, 2, 7, 8] -> [(0, 3), (7, 9)]."""
    runs: list[tuple[int, int]] = []
    for c in cols:
        if runs and runs[-1][1] == c:
            runs[-1] = (runs[-1][0], c + 1)
        else:
            runs.append((c, c + 1))
    return runs


def row_entry(cache: Any, row: int, cols: list[int], tokens: tuple[int, ...]) -> Entry:
    """Row `row`'s keys/values at buffer columns `cols` (in token order) as a compact Entry.

    A row's columns are a few runs (its cached part, its prompt's suffix, the tokens it was fed between lookup
    holes); copying them run by run moves memory at copy speed, where `index_select` on the column axis took
    1.7x as long (17.6 s of a 257 s evaluation under cProfile)."""
    runs = column_runs(cols)

    def gather(x: torch.Tensor) -> torch.Tensor:  # (H, n, d) -> (H, len(cols), d), a new tensor
        return (
            torch.cat([x[:, a:b] for a, b in runs], dim=1)
            if len(runs) > 1
            else x[:, runs[0][0] : runs[0][1]].clone()
        )

    return Entry(tokens, [(gather(la.keys[row]), gather(la.values[row])) for la in cache.layers])


def batch_cache(
    sources: list[Entry | None], capacity: int, like: Entry, spare: list[torch.Tensor] | None = None
) -> tuple[Any, list[int]]:
    """A reserved cache with one row per source (its keys left-aligned, zeros after), and each row's length.

    `like` gives the layer count, shapes, dtype and device (any entry of the same model); `spare`: buffers to
    reuse (`new_buffer`)."""
    B = len(sources)
    lengths = [len(s.tokens) if s is not None else 0 for s in sources]
    C, layers = max(lengths, default=0), []
    for li, (k0, v0) in enumerate(like.kv):
        # empty, not zeros: columns past C are written before anything reads them, so only each row's gap up to
        # C is zeroed (masked, but must be finite). Zeroing the whole reserve touched every page of a buffer
        # of up to several GB on every call.
        k = new_buffer(k0, (B, k0.shape[0], capacity, k0.shape[-1]), spare)
        v = new_buffer(v0, (B, v0.shape[0], capacity, v0.shape[-1]), spare)
        for b, src in enumerate(sources):
            n = lengths[b]
            if src is not None:
                k[b, :, :n] = src.kv[li][0]
                v[b, :, :n] = src.kv[li][1]
            k[b, :, n:C] = 0
            v[b, :, n:C] = 0
        layers.append(ReservedLayer.from_buffers(k, v, C))
    cache = DynamicCache()
    cache.layers = layers
    cache.layer_class_to_replicate = None
    return cache, lengths


class SessionStore:
    """Cached keys/values of unfinished episodes, looked up by the longest stored prefix of a new prompt."""

    def __init__(self, max_bytes: int = 2 * 2**30) -> None:
        self.max_bytes = max_bytes
        self._by_len: dict[int, dict[tuple[int, ...], Entry]] = {}
        self._lru: OrderedDict[tuple[int, ...], int] = OrderedDict()  # tokens -> nbytes, oldest first
        self._bytes = 0
        self.key: Any = None  # the weights these entries were computed with
        self.hits = 0
        self.hit_tokens = 0

    def __len__(self) -> int:
        return len(self._lru)

    def clear(self) -> None:
        self._by_len.clear()
        self._lru.clear()
        self._bytes = 0

    def check(self, key: Any) -> None:
        """Empty the store when the weights changed since its entries were computed."""
        if key != self.key:
            self.clear()
            self.key = key

    def take(self, prompt: list[int]) -> Entry | None:
        """Remove and return the entry with the longest token sequence that is a proper prefix of `prompt`."""
        for n in sorted(self._by_len, reverse=True):
            if n >= len(prompt):
                continue
            entry = self._by_len[n].get(tuple(prompt[:n]))
            if entry is not None:
                self._drop(entry.tokens)
                self.hits += 1
                self.hit_tokens += n
                return entry
        return None

    def discard(self, context: list[int]) -> None:
        """Drop the entry of an episode that ended with `context` (the longest stored prefix of it, itself
        included): nothing will continue it, and stale entries would otherwise fill the store up to max_bytes."""
        for n in sorted(self._by_len, reverse=True):
            if n <= len(context) and tuple(context[:n]) in self._by_len[n]:
                self._drop(tuple(context[:n]))
                return

    def put(self, entry: Entry) -> None:
        if not entry.tokens or entry.tokens in self._lru:
            return
        size = entry.nbytes
        if size > self.max_bytes:
            return
        self._by_len.setdefault(len(entry.tokens), {})[entry.tokens] = entry
        self._lru[entry.tokens] = size
        self._bytes += size
        while self._bytes > self.max_bytes:
            self._drop(next(iter(self._lru)))

    def _drop(self, tokens: tuple[int, ...]) -> None:
        self._bytes -= self._lru.pop(tokens)
        bucket = self._by_len[len(tokens)]
        del bucket[tokens]
        if not bucket:
            del self._by_len[len(tokens)]
