"""Policy-test fixtures: the tiny model (built once into the sgcd cache) and the default model (slow tests)."""

from __future__ import annotations

import pytest

from sgcd.policy.models import load_policy


@pytest.fixture(scope="session")
def tiny_policy():
    return load_policy("tiny")


@pytest.fixture(scope="session")
def smol_policy():
    return load_policy("smollm2-135m")
