"""Fixtures for the TRL integration tests (helpers live in trl_helpers.py, next to this file)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

pytest.importorskip("trl", reason="the TRL integration needs the trl extra: pip install 'sgcd[trl]'")
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
sys.path.insert(0, str(Path(__file__).parent))

from sgcd.envs import get_domain  # noqa: E402


@pytest.fixture(scope="session")
def airline():
    """airline-lite restricted to short tasks (one tool call + the answer), 8 training tasks."""
    return get_domain("airline-lite", train_size=8, max_horizon=2)
