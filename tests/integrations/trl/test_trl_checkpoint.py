"""TRL checkpoints keep the refill sampler's position: a run saved at step 1 and resumed from that checkpoint
draws the same refill tasks as the run that went on uninterrupted."""

from __future__ import annotations

import json

import trl_helpers as H

from sgcd.integrations.trl import SGCDGRPOTrainer, SGCDOptions


def _trainer(airline, out, steps: int):
    policy = H.fresh_policy()
    rollout = H.make_rollout(airline)
    args = H.grpo_args(out, steps=steps)
    args.save_strategy, args.save_steps = "steps", 1
    trainer = SGCDGRPOTrainer(
        policy.model,
        rollout=rollout,
        sgcd=SGCDOptions(teacher="none", advantage="grpo"),
        args=args,
        processing_class=policy.tokenizer,
    )
    return trainer, rollout


def test_checkpoint_saves_and_resume_restores_the_refill_sampler(airline, tmp_path):
    trainer, rollout = _trainer(airline, tmp_path, steps=1)
    rollout.load_state_dict({"sampler": {"epoch": 3, "pos": 5}})  # a position no fresh sampler has
    trainer.train()
    saved = tmp_path / "trl" / "checkpoint-1" / SGCDGRPOTrainer.ROLLOUT_STATE
    assert json.loads(saved.read_text()) == rollout.state_dict()

    again, fresh = _trainer(airline, tmp_path, steps=1)
    assert fresh.state_dict() == {"sampler": {"epoch": 0, "pos": 0}} != rollout.state_dict()
    again._load_rng_state(str(tmp_path / "trl" / "checkpoint-1"))  # what train(resume_from_checkpoint=) calls
    assert fresh.state_dict() == rollout.state_dict()
