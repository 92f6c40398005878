"""One lookup over the core's three registries, so callers pick a function by name with a clear error.

The registries themselves live next to their functions: advantages.ADVANTAGE_ESTIMATORS,
credit.CREDIT_VARIANTS (+ CREDIT_VARIANT_NEEDS), losses.POLICY_LOSSES (+ POLICY_LOSS_NEEDS).
"""

from __future__ import annotations

from collections.abc import Callable

from sgcd.core.advantages import ADVANTAGE_ESTIMATORS
from sgcd.core.credit import CREDIT_VARIANTS
from sgcd.core.losses import POLICY_LOSSES

FAMILIES: dict[str, dict[str, Callable]] = {
    "advantage": ADVANTAGE_ESTIMATORS,
    "credit": CREDIT_VARIANTS,
    "loss": POLICY_LOSSES,
}


def get(family: str, name: str) -> Callable:
    """The function registered as `name` in `family` (advantage | credit | loss); ValueError lists the choices."""
    if family not in FAMILIES:
        raise ValueError(f"unknown registry family {family!r}; choose one of {sorted(FAMILIES)}")
    table = FAMILIES[family]
    if name not in table:
        raise ValueError(f"unknown {family} {name!r}; choose one of {sorted(table)}")
    return table[name]
