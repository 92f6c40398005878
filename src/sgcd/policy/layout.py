"""Linear layers for generation's few-row passes on CPU: the same weights, held a second time in column-major layout.

A decode step multiplies a few rows (one per sequence still sampling, or a verifying pass's few tokens) by every
weight matrix. `F.linear(x, W)` with W stored (out, in) row-major asks the BLAS for x @ W^T, and for 4 to ~48
rows the CPU BLAS torch ships does that at about a fifth of memory bandwidth. The same product with W laid out
column-major (a contiguous (in, out) copy, viewed back as (out, in)) runs about twice as fast. Measured on the
2-core CPU (scripts/linear_layout.py: SmolLM2-135M's 210 block matrices, 2 threads, median of 7):

    rows        2     4     8    16    32    48    64   128   2048
    row-major  22    51    65   109   137   165    99   175   2663 ms
    col-major  34    37    42    55    80    76   127   184   2512 ms

so the copy is used only for 4 <= rows < 64, and the model's own weights everywhere else (prefill, scoring,
training). On a later Xeon (family 6 model 207, with avx512_bf16) the two layouts measure the same (ratios
0.93-1.14 for 2-2048 rows): the copies then cost memory and gain nothing, but no time either. The values are the same; only the order of the BLAS's sums differs (results agree to float32
rounding, and the tests that hold sampled log-probs equal to `score()` run through this path).

`ColumnMajor` keeps the copies while the weights are unchanged (an update in place or a replaced weight
rebuilds that module's copy) and `few_rows(...)` installs them on the model's nn.Linear modules for a block.
The copies cost one more copy of the linear weights in memory (0.54 GB for SmolLM2-135M, tied output head
included), held until `clear()`; HFPolicy drops them with its other caches.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator

import torch

ROWS = (4, 64)  # rows (tokens in a pass) for which the column-major copy is used: lo <= rows < hi


def faster(rows: int) -> bool:
    """True when a product over `rows` rows should use the column-major copy."""
    return ROWS[0] <= rows < ROWS[1]


def column_major(weight: torch.Tensor) -> torch.Tensor:
    """`weight`'s values in column-major layout: same shape, stride (1, out)."""
    return weight.detach().t().contiguous().t()


def _linear(module: torch.nn.Linear, weight_cm: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    rows = x.numel() // x.shape[-1] if x.numel() else 0
    weight = weight_cm if faster(rows) else module.weight
    return torch.nn.functional.linear(x, weight, module.bias)


class ColumnMajor:
    """Column-major copies of a model's float32 nn.Linear weights on CPU, valid while the weights are unchanged.

    A copy is rebuilt when its module's weight was updated in place (its version counter moved) or replaced
    (`.to(...)`, `.data = ...`: another storage). Each record holds the weight it was copied from, so a replaced
    weight's memory cannot be reused at the same address and pass for the old one."""

    def __init__(self) -> None:
        self._records: dict[torch.nn.Module, tuple[torch.Tensor, int, torch.Tensor]] = {}

    def clear(self) -> None:
        self._records = {}

    def copies(self, model: torch.nn.Module) -> dict[torch.nn.Module, torch.Tensor]:
        """The copies for `model`'s current weights (each built on first use and again after it changes)."""
        modules = [
            m
            for m in model.modules()
            if type(m) is torch.nn.Linear
            and m.weight.device.type == "cpu"
            and m.weight.dtype == torch.float32
            and "forward" not in m.__dict__  # a module someone else already patched is left alone
        ]
        old, self._records = self._records, {}
        for m in modules:
            rec = old.pop(m, None)
            w = m.weight
            if (
                rec is None
                or rec[0].data_ptr() != w.data_ptr()
                or rec[1] != w._version
                or rec[0].shape != w.shape
            ):
                rec = None  # drop the stale copy before making its replacement
                rec = (w.detach(), w._version, column_major(w))
            self._records[m] = rec
        return {m: rec[2] for m, rec in self._records.items()}


@contextlib.contextmanager
def few_rows(copies: dict[torch.nn.Module, torch.Tensor]) -> Iterator[None]:
    """Within the block each module in `copies` multiplies few-row inputs by its column-major copy."""
    for module, weight_cm in copies.items():
        module.forward = functools.partial(_linear, module, weight_cm)
    try:
        yield
    finally:
        for module in copies:
            module.__dict__.pop("forward", None)
