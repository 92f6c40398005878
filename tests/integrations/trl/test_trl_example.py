"""examples/trl_airline_lite.py on `TrlParser((ScriptArguments, SGCDConfig, ModelConfig))` (issue 19, item 1): its
YAML config parses, GRPO / PEFT / tracker / saving flags and the SGCD fields override it, unknown keys are named,
`--help` lists the GRPO and PEFT flags, the trainer it builds is an SGCDGRPOTrainer (a PEFT model with
--use_peft), and the example trains one step end to end."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
YAML = str(ROOT / "examples" / "trl_airline_lite.yaml")


def _example():
    spec = importlib.util.spec_from_file_location(
        "trl_airline_lite", ROOT / "examples" / "trl_airline_lite.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses resolve their annotations through sys.modules
    spec.loader.exec_module(module)
    return module


def test_config_and_flags(tmp_path):
    ex = _example()
    flags = ["--max_steps", "5", "--report_to", "wandb", "--save_strategy", "steps", "--save_steps", "1"]
    script, config, model = ex.parse_args(["--config", YAML, *flags, "--use_peft", "--lora_r", "4"])
    assert (script.train_size, script.max_horizon, script.guide) == (16, 2, 0.5)
    assert (config.max_steps, config.num_generations, config.per_device_train_batch_size) == (5, 2, 4)
    assert config.report_to == ["wandb"] and config.save_strategy == "steps" and config.save_steps == 1
    assert (config.sgcd_teacher, config.sgcd_advantage, config.sgcd_eps) == ("pi_old", "trl", 0.2)
    assert (model.model_name_or_path, model.use_peft, model.lora_r) == ("tiny", True, 4)
    _, config, _ = ex.parse_args(["--config", YAML, "--sgcd_teacher", "none", "--sgcd_eps", "0.1"])
    assert config.sgcd_options().teacher == "none" and config.sgcd_options().eps == 0.1
    bad = tmp_path / "bad.yaml"
    bad.write_text("group_sise: 4\n")
    with pytest.raises(ValueError, match=r"Unknown arguments from config file: \['--group_sise', '4'\]"):
        ex.parse_args(["--config", str(bad)])


def test_help_lists_grpo_peft_and_sgcd_flags():
    env = {**os.environ, "TRL_EXPERIMENTAL_SILENCE": "1"}
    cmd = [sys.executable, str(ROOT / "examples" / "trl_airline_lite.py"), "--help"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    for flag in ("--num_generations", "--loss_type", "--report_to", "--save_strategy", "--use_vllm"):  # GRPO
        assert f"\n  {flag} " in done.stdout, flag
    for flag in ("--use_peft", "--lora_r", "--lora_alpha", "--lora_target_modules"):  # PEFT (ModelConfig)
        assert f"\n  {flag} " in done.stdout, flag
    for flag in ("--sgcd_teacher", "--sgcd_eps", "--train_size", "--guide"):
        assert f"\n  {flag} " in done.stdout, flag


def test_builds_the_sgcd_trainer(tmp_path):
    from sgcd.integrations.trl import SGCDConfig, SGCDGRPOTrainer, SGCDRollout

    ex = _example()
    trainer, _ = ex.build_trainer(*ex.parse_args(["--config", YAML, "--output_dir", str(tmp_path)]))
    assert isinstance(trainer, SGCDGRPOTrainer) and isinstance(trainer.sgcd_rollout, SGCDRollout)
    assert isinstance(trainer.args, SGCDConfig)
    assert trainer.num_generations == 2 and trainer.args.per_device_train_batch_size == 4
    assert trainer.sgcd.teacher == "pi_old" and trainer.sgcd_summarizer is not None
    assert len(trainer.train_dataset) == 16 and trainer.train_dataset[0]["prompt"].startswith(
        "airline-lite/train/"
    )


def test_use_peft_gives_a_lora_model(tmp_path):
    from peft import PeftModel

    ex = _example()
    args = ["--config", YAML, "--output_dir", str(tmp_path), "--use_peft", "--lora_r", "4"]
    trainer, _ = ex.build_trainer(*ex.parse_args(args))
    assert isinstance(trainer.model, PeftModel)
    assert trainer.model.peft_config["default"].r == 4


def test_example_trains_one_step(tmp_path, capsys):
    ex = _example()
    out = tmp_path / "out"
    assert ex.main(["--config", YAML, "--max_steps", "1", "--output_dir", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "parameters changed: 21/21 tensors" in printed and f"saved the student to {out}" in printed
    assert (out / "training_args.bin").exists() and list(out.glob("*.safetensors"))
