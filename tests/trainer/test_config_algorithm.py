"""Issue 18: config loading refuses what sgcd.core would refuse (one line, before any model, in well under a
second), and every front-end reads one set of defaults."""

from __future__ import annotations

import dataclasses
import inspect
import subprocess
import sys

import pytest

from sgcd.algorithm import CreditSpec
from sgcd.trainer.config import (
    AlgorithmConfig,
    ConfigError,
    CreditConfig,
    SamplingConfig,
    from_dict,
    make_config,
)


@pytest.mark.parametrize(
    "override, pattern",
    [
        ("credit.eps=0", r"^credit\.eps: 0\.0 must be greater than 0\.0$"),
        ("credit.eps=1", r"^credit\.eps: 1\.0 is above the maximum 0\.99$"),
        ("credit.lam=-0.1", r"^credit\.lam: -0\.1 is below the minimum 0\.0$"),
        ("credit.lam=1.5", r"^credit\.lam: 1\.5 is above the maximum 1\.0$"),
        ("credit.gate_h0=0", r"^credit\.gate_h0: 0\.0 must be greater than 0\.0$"),
        ("credit.gate_min=1.5", r"^credit\.gate_min: 1\.5 is above the maximum 1\.0$"),
        ("credit.level=step", r"^credit\.level: 'step' is not allowed"),
        ("algorithm.dual_clip=0.5", r"^algorithm\.dual_clip: 0\.5 must be > 1 \(or 0 = off\)$"),
        ("algorithm.dual_clip=1", r"^algorithm\.dual_clip: 1\.0 must be > 1 \(or 0 = off\)$"),
        ("algorithm.clip_low=1", r"^algorithm\.clip_low: 1\.0 must be less than 1\.0$"),
        ("algorithm.clip_low=1.5", r"^algorithm\.clip_low: 1\.5 must be less than 1\.0$"),
        ("algorithm.clip_high=-0.1", r"^algorithm\.clip_high: -0\.1 is below the minimum 0\.0$"),
        ("algorithm.advantage=gae", r"^algorithm\.advantage: 'gae' is not allowed"),
        ("credit.divergence=topk", r"^credit\.divergence was removed"),
    ],
)
def test_what_core_would_refuse_fails_at_make_config(override, pattern):
    with pytest.raises(ConfigError, match=pattern):
        make_config(None, [override])


def test_refusal_is_fast_and_loads_no_model_or_torch():
    code = (
        "import sys\n"
        "from sgcd.trainer.config import make_config, ConfigError\n"
        "try:\n    make_config(None, ['algorithm.dual_clip=0.5'])\nexcept ConfigError:\n    pass\n"
        "else:\n    raise SystemExit('not refused')\n"
        # fast by construction, not by a timed assertion (the machines are shared): no torch, no transformers
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules, sorted(sys.modules)[:5]\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_retired_divergence_key_of_an_old_run_still_loads():
    assert from_dict({"credit": {"divergence": "logratio", "eps": 0.1}}).credit.eps == 0.1
    assert "divergence" not in {f.name for f in dataclasses.fields(CreditConfig)}


def _default(cls, name):
    return {f.name: f.default for f in dataclasses.fields(cls)}[name]


def test_one_set_of_defaults():
    from sgcd.core.credit import credit_weights
    from sgcd.core.losses import opd_advantage_loss, opd_token_advantages
    from sgcd.rollout import RolloutLimits

    spec = CreditSpec()
    for f in dataclasses.fields(CreditSpec):
        assert _default(CreditConfig, f.name) == getattr(spec, f.name), f.name
    core = inspect.signature(credit_weights).parameters
    assert core["eps"].default == spec.eps and core["lam"].default == spec.lam
    assert core["gate_h0"].default == spec.gate_h0 and core["gate_min"].default == spec.gate_min
    for fn in (opd_token_advantages, opd_advantage_loss):
        assert inspect.signature(fn).parameters["c"].default == _default(AlgorithmConfig, "opd_c")
    limits = RolloutLimits()
    assert (limits.max_turns, limits.max_tokens) == (
        _default(SamplingConfig, "max_turns"),
        _default(SamplingConfig, "max_tokens"),
    )


def test_trl_options_share_the_defaults_and_checks():
    pytest.importorskip("trl")
    from sgcd.integrations.trl.config import SGCDConfig
    from sgcd.integrations.trl.options import CREDIT_FIELDS, SGCDOptions

    opts = SGCDOptions()
    for name in CREDIT_FIELDS:
        assert getattr(opts, name) == getattr(CreditSpec(), name), name
        assert {f.name: f.default for f in dataclasses.fields(SGCDConfig)}[f"sgcd_{name}"] == getattr(
            CreditSpec(), name
        ), name
    with pytest.raises(ValueError, match=r"^SGCDOptions\.gate_h0: 0\.0 must be greater than 0$"):
        SGCDOptions(gate_h0=0.0)
