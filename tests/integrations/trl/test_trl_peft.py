"""SGCD inside TRL's GRPOTrainer with `peft_config=LoraConfig(...)`: the live PeftModel scores student and
teacher through HFPolicy (this crashed in `HFPolicy._score` before: a PeftModel's `model` attribute is the whole
CausalLM, whose output has no `last_hidden_state`), only adapter weights change, and the merged model evaluates."""

from __future__ import annotations

import torch
import trl_helpers as H
from peft import LoraConfig

from sgcd.eval import evaluate
from sgcd.integrations.trl import SGCDGRPOTrainer, SGCDOptions
from sgcd.policy.base import SamplingParams
from sgcd.policy.models import load_policy
from sgcd.rollout import PolicyRunner, RolloutLimits


def test_peft_lora_trains_only_adapters_and_the_merged_model_evaluates(airline, tmp_path):
    policy = H.fresh_policy()
    initial = {k: v.detach().clone() for k, v in policy.model.state_dict().items()}
    rollout = H.make_rollout(airline)
    trainer = SGCDGRPOTrainer(
        policy.model,
        rollout=rollout,
        sgcd=SGCDOptions(teacher="pi_old", advantage="grpo"),
        args=H.grpo_args(tmp_path, steps=2),
        processing_class=policy.tokenizer,
        peft_config=LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=["q_proj", "v_proj"]),
    )
    trainer.train()
    assert trainer.sgcd_last is not None and trainer.sgcd_last.token_advantages_B_T.abs().sum() > 0
    model = trainer.accelerator.unwrap_model(trainer.model)
    state = model.state_dict()
    lora = {k: v for k, v in state.items() if "lora_B" in k}
    assert lora and any(v.abs().sum() > 0 for v in lora.values())  # lora_B starts at 0: it trained
    for k, v in state.items():
        if "lora_" not in k:
            plain = k.removeprefix("base_model.model.").replace(".base_layer", "")
            assert torch.equal(v, initial[plain]), k  # the base weights did not move
    merged = model.merge_and_unload()
    merged.save_pretrained(tmp_path / "merged")
    policy.tokenizer.save_pretrained(tmp_path / "merged")
    student = load_policy(str(tmp_path / "merged"))
    runner = PolicyRunner(student, SamplingParams(0.0, 1.0, 8), RolloutLimits(max_turns=2, max_tokens=64))
    result = evaluate(runner, airline, "test", limit=2, progress=False)
    assert len(result.records) == 2
