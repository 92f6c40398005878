"""Fixtures of the verl plugin tests (run under .venv-verl: `bash scripts/verl_setup.sh`; helpers: verl_helpers).

`verl` is imported at module level on purpose: these tests check the plugin against a real verl, and the verl venv
always has it, so a missing verl is an import error, never a skip.
"""

from __future__ import annotations

import pytest
import verl  # noqa: F401  (loads the verl.plugins entry points, ours included)

from sgcd.envs.base import get_domain


@pytest.fixture(scope="session")
def tiny():
    """The ~0.3M-parameter tiny Llama + its tokenizer (sgcd.policy.models.load_policy("tiny"))."""
    from sgcd.policy.models import load_policy

    return load_policy("tiny")


@pytest.fixture(scope="session")
def domain():
    return get_domain("airline-lite")
