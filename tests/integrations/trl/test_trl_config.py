"""`SGCDConfig(GRPOConfig)` (issue 19, item 1): TrlParser reads the SGCD fields from flags and YAML, bad values
name the field, the trainer takes its options from the config, and the fields are saved with the training
arguments and handed to the trackers (`to_dict` / `to_sanitized_dict`)."""

from __future__ import annotations

import pytest
import torch
import trl_helpers as H
from trl import GRPOConfig, TrlParser

from sgcd.integrations.trl import SGCDConfig, SGCDGRPOTrainer, SGCDOptions


def _config(tmp_path, **sgcd) -> SGCDConfig:
    base = H.grpo_args(tmp_path, steps=1).to_dict()
    keep = ("output_dir", "use_cpu", "num_generations", "per_device_train_batch_size", "max_steps")
    keep += (
        "max_completion_length",
        "report_to",
        "save_strategy",
        "disable_tqdm",
        "mask_truncated_completions",
    )
    return SGCDConfig(**{k: base[k] for k in keep}, **sgcd)


def test_trlparser_reads_sgcd_fields_from_yaml_and_flags(tmp_path):
    yaml = tmp_path / "c.yaml"
    yaml.write_text(
        "output_dir: out\nuse_cpu: true\nsgcd_eps: 0.1\nsgcd_advantage: grpo\nnum_generations: 4\n"
    )
    flags = ["--config", str(yaml), "--sgcd_teacher", "none", "--sgcd_level", "turn"]
    (config,) = TrlParser((SGCDConfig,)).parse_args_and_config(
        [*flags, "--sgcd_summarizer_options", '{"a": 1}']
    )
    assert config.num_generations == 4  # a GRPO field next to the SGCD ones
    assert config.sgcd_options() == SGCDOptions(
        teacher="none", advantage="grpo", eps=0.1, level="turn", summarizer_options={"a": 1}
    )
    with pytest.raises(SystemExit):  # argparse: not one of the choices
        TrlParser((SGCDConfig,)).parse_args_and_config(["--use_cpu", "true", "--sgcd_teacher", "reference"])


def test_bad_values_name_the_config_field(tmp_path):
    with pytest.raises(ValueError, match=r"SGCDConfig.sgcd_advantage='ppo'"):
        _config(tmp_path, sgcd_advantage="ppo")
    with pytest.raises(ValueError, match=r"SGCDConfig.sgcd_eps: 1.5 must be in \(0, 1\)"):
        _config(tmp_path, sgcd_eps=1.5)
    with pytest.raises(ValueError, match="sgcd_summarizer_options is not valid JSON"):
        _config(tmp_path, sgcd_summarizer_options="{nope")


def test_trainer_options_come_from_the_config_and_are_saved_and_tracked(airline, tmp_path):
    policy = H.fresh_policy()
    args = _config(tmp_path, sgcd_teacher="none", sgcd_eps=0.1, sgcd_advantage="rloo")
    trainer = SGCDGRPOTrainer(
        policy.model, rollout=H.make_rollout(airline), args=args, processing_class=policy.tokenizer
    )
    assert trainer.sgcd == SGCDOptions(teacher="none", eps=0.1, advantage="rloo")
    # what W&B (to_dict) and TensorBoard's hparams (to_sanitized_dict) log as the run config
    assert args.to_dict()["sgcd_eps"] == 0.1 and args.to_sanitized_dict()["sgcd_teacher"] == "none"
    # saved with the training arguments, as in every checkpoint
    trainer.save_model(str(tmp_path / "saved"))
    saved = torch.load(tmp_path / "saved" / "training_args.bin", weights_only=False)
    assert isinstance(saved, SGCDConfig) and saved.sgcd_options() == trainer.sgcd


def test_sgcd_argument_is_deprecated_and_not_mixed_with_the_config(airline, tmp_path):
    policy = H.fresh_policy()
    common = {"rollout": H.make_rollout(airline), "processing_class": policy.tokenizer}
    with pytest.raises(ValueError, match="do not also pass sgcd="):
        SGCDGRPOTrainer(policy.model, sgcd=SGCDOptions(), args=_config(tmp_path), **common)
    assert isinstance(H.grpo_args(tmp_path, steps=1), GRPOConfig)
    with pytest.warns(DeprecationWarning, match="pass args=SGCDConfig"):
        trainer = SGCDGRPOTrainer(
            policy.model, sgcd=SGCDOptions(eps=0.3), args=H.grpo_args(tmp_path, steps=1), **common
        )
    assert trainer.sgcd.eps == 0.3
