"""Trainer test fixtures: the coin test domain (registered for every trainer test) and run helpers."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import coin_domain  # noqa: E402

coin_domain.register()


@pytest.fixture
def coin_overrides() -> list[str]:
    return list(coin_domain.FAST)
