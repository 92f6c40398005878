"""The TRL version guard (issue 9, Must show 4): incompatible internals fail at construction, naming the change."""

from __future__ import annotations

import pytest
import trl
from trl import GRPOTrainer

from sgcd.integrations.trl import TESTED_RANGE, SGCDGRPOTrainer, TRLCompatError, check_trl
from sgcd.integrations.trl.compat import in_tested_range, problems


def test_tested_range_is_stated_and_the_installed_trl_passes():
    assert TESTED_RANGE == ">=1.16,<1.17"
    assert in_tested_range(trl.__version__), f"installed trl {trl.__version__} is not the tested one"
    assert problems(SGCDGRPOTrainer) == []


@pytest.mark.parametrize(
    ("version", "ok"),
    [
        ("1.16.0", True),
        ("1.16.3.dev0", True),
        ("1.17.0", False),
        ("1.15.9", False),
        ("2.0", False),
        ("x", False),
    ],
)
def test_version_range(version, ok):
    assert in_tested_range(version) is ok


def test_missing_compute_loss_fails_at_construction(monkeypatch):
    monkeypatch.delattr(GRPOTrainer, "_compute_loss")
    with pytest.raises(TRLCompatError, match=r"GRPOTrainer\._compute_loss is missing"):
        SGCDGRPOTrainer("unused-model", rollout=None)  # fails before touching any argument


def test_changed_signature_is_named(monkeypatch):
    def _generate(self, prompt_list):  # a renamed parameter, as a refactor might do
        return None

    monkeypatch.setattr(GRPOTrainer, "_generate", _generate)
    with pytest.raises(TRLCompatError, match=r"_generate takes \(prompt_list\), expected \(prompts\)"):
        SGCDGRPOTrainer("unused-model", rollout=None)


def test_loss_without_the_2d_advantage_branch_is_refused(monkeypatch):
    def _compute_loss(self, model, inputs):  # a loss that would silently unsqueeze/reinterpret advantages
        advantages = inputs["advantages"].unsqueeze(1)
        return advantages.sum()

    monkeypatch.setattr(GRPOTrainer, "_compute_loss", _compute_loss)
    with pytest.raises(TRLCompatError, match=r"advantages.dim\(\) == 1"):
        check_trl(SGCDGRPOTrainer)


def test_missing_rollout_func_parameter_is_named(monkeypatch):
    original = GRPOTrainer.__init__

    def __init__(self, model, reward_funcs=None, args=None, train_dataset=None, processing_class=None):
        original(self, model, reward_funcs, args, train_dataset, processing_class=processing_class)

    monkeypatch.setattr(GRPOTrainer, "__init__", __init__)
    with pytest.raises(TRLCompatError, match=r"rollout_func"):
        check_trl(SGCDGRPOTrainer)


def test_newer_version_with_matching_internals_only_warns(monkeypatch):
    monkeypatch.setattr(trl, "__version__", "1.17.0")
    with pytest.warns(UserWarning, match=r"outside the tested range"):
        check_trl(SGCDGRPOTrainer)
