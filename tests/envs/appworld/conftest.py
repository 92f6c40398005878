"""AppWorld test fixtures: the AppWorld venv (made by scripts/appworld_setup.sh), a synthetic APPWORLD_ROOT built
with the real package once per session, and a domain over it with a small worker pool."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CHECKOUT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="session")
def appworld_python() -> str:
    python = os.environ.get("SGCD_APPWORLD_PYTHON") or str(CHECKOUT / ".venv-appworld" / "bin" / "python")
    if not os.access(python, os.X_OK):
        pytest.fail(f"AppWorld venv missing ({python}): run `bash scripts/appworld_setup.sh` first")
    return python


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory, appworld_python) -> Path:
    from sgcd.envs.appworld.synthetic import build_synthetic_root

    return build_synthetic_root(tmp_path_factory.mktemp("appworld") / "root", appworld_python)


@pytest.fixture(scope="session")
def domain(synthetic_root, appworld_python):
    from sgcd.envs.appworld import make_domain

    d = make_domain(root=str(synthetic_root), python=appworld_python, workers=2, max_turns=4)
    d.pool.warm(2)  # both workers import appworld in parallel
    yield d
    d.close()
