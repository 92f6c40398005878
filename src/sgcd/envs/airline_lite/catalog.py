"""The airline-lite family catalogue: name -> Family (kind, setup, gold solver), in the order tasks cycle through.

The read and hand-over families are in `families.py` (with the contract and the helpers all families share), the
write families in `families_write.py`; this module joins them, so neither imports the other's families.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from sgcd.envs.airline_lite import families as R
from sgcd.envs.airline_lite import families_write as W
from sgcd.envs.airline_lite.db import DB
from sgcd.envs.airline_lite.families import Gold, Intent


@dataclass(frozen=True)
class Family:
    name: str
    kind: str  # read | write | multi-write (a write family's instances may be refusals)
    setup: Callable[[random.Random, DB], tuple[str, Intent]]
    solve: Callable[[Gold, Intent], None]


def _families() -> dict[str, Family]:
    return {
        f.name: f
        for f in (
            Family("res_info", "read", R.setup_res_info, R.solve_res_info),
            Family("flight_status", "read", R.setup_flight_status, R.solve_flight_status),
            Family("allowance", "read", R.setup_allowance, R.solve_allowance),
            Family("transfer", "write", R.setup_transfer, R.solve_transfer),
            Family("cancel", "write", W.setup_cancel, W.solve_cancel),
            Family("add_bags", "write", W.setup_add_bags, W.solve_add_bags),
            Family("compensation", "write", W.setup_compensation, W.solve_compensation),
            Family("change_flight", "write", W.setup_change_flight, W.solve_change_flight),
            Family("book", "write", W.setup_book, W.solve_book),
            Family("multi_cancel", "multi-write", W.setup_multi_cancel, W.solve_multi_cancel),
        )
    }


FAMILIES = _families()
