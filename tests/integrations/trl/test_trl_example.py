"""examples/trl_airline_lite.py: its YAML config parses, flags override it, bad keys are named, and the trainer
it builds is an SGCDGRPOTrainer with the config's shapes (training itself is covered by test_trl_e2e.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


def _example():
    spec = importlib.util.spec_from_file_location(
        "trl_airline_lite", ROOT / "examples" / "trl_airline_lite.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_config_and_flags(tmp_path):
    ex = _example()
    args = ex.parse_args(
        ["--config", str(ROOT / "examples" / "trl_airline_lite.yaml"), "--steps", "5", "--no-bf16"]
    )
    assert (args.model, args.steps, args.group_size, args.tasks_per_step, args.teacher) == (
        "tiny",
        5,
        2,
        2,
        "pi_old",
    )
    bad = tmp_path / "bad.yaml"
    bad.write_text("group_sise: 4\n")
    with pytest.raises(SystemExit, match=r"unknown key\(s\) \['group_sise'\]"):
        ex.parse_args(["--config", str(bad)])


def test_builds_the_sgcd_trainer(tmp_path):
    from sgcd.integrations.trl import SGCDGRPOTrainer, SGCDRollout

    ex = _example()
    args = ex.parse_args(
        ["--config", str(ROOT / "examples" / "trl_airline_lite.yaml"), "--output-dir", str(tmp_path)]
    )
    trainer, policy = ex.build_trainer(args)
    assert isinstance(trainer, SGCDGRPOTrainer) and isinstance(trainer.sgcd_rollout, SGCDRollout)
    assert trainer.num_generations == 2 and trainer.args.per_device_train_batch_size == 4
    assert trainer.sgcd.teacher == "pi_old" and trainer.sgcd_summarizer is not None
    assert len(trainer.train_dataset) == 16 and trainer.train_dataset[0]["prompt"].startswith(
        "airline-lite/train/"
    )
