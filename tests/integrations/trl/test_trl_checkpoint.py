"""TRL checkpoints keep the refill sampler's position: a run saved at step 1 and resumed from that checkpoint
draws the same refill tasks as the run that went on uninterrupted, on every rank (each rank has its own seed and
its own position, so each saves and loads its own state)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import trl_helpers as H
from transformers import TrainingArguments
from trl import GRPOTrainer

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
    assert fresh.state_dict() == {"sampler": {"epoch": 0, "pos": 0}, "rank": 0} != rollout.state_dict()
    again._load_rng_state(str(tmp_path / "trl" / "checkpoint-1"))  # what train(resume_from_checkpoint=) calls
    assert fresh.state_dict() == rollout.state_dict()


def test_each_rank_saves_and_resumes_its_own_refill_sampler(airline, tmp_path, monkeypatch):
    """Two ranks in one process: the rank is what the trainer's accelerator reports, only rank 0 is the saving
    process (TrainingArguments.should_save), and Trainer's own checkpoint and RNG files are left out. Rank 1's
    refill sampler stood somewhere else than rank 0's; after the resume each rank draws what it would have."""
    trainer, _ = _trainer(airline, tmp_path, steps=1)
    rank = {"now": 0}
    monkeypatch.setattr(TrainingArguments, "should_save", property(lambda self: rank["now"] == 0))
    monkeypatch.setattr(GRPOTrainer, "_save_checkpoint", lambda self, model, trial: _mkdir(self))
    monkeypatch.setattr(GRPOTrainer, "_load_rng_state", lambda self, checkpoint: None)

    def as_rank(r: int, rollout):
        rank["now"] = r
        trainer.accelerator = SimpleNamespace(process_index=r, num_processes=2, is_main_process=r == 0)
        trainer.sgcd_rollout = rollout

    stood = {0: {"epoch": 3, "pos": 5}, 1: {"epoch": 1, "pos": 2}}
    running, resumed = {}, {}
    for r in (0, 1):
        running[r] = H.make_rollout(airline)
        running[r].bind_rank(r)
        running[r].load_state_dict({"sampler": stood[r]})
        as_rank(r, running[r])
        trainer._save_checkpoint(trainer.model, None)
    folder = tmp_path / "trl" / "checkpoint-0"
    for r in (0, 1):
        resumed[r] = H.make_rollout(airline)
        as_rank(r, resumed[r])
        trainer._load_rng_state(str(folder))
        resumed[r].bind_rank(r)  # what the first rollout call does on rank r
    for r in (0, 1):
        assert resumed[r].state_dict()["sampler"] == stood[r], f"rank {r}"
        assert [t.task_id for t in resumed[r]._sampler.next(12)] == [
            t.task_id for t in running[r]._sampler.next(12)
        ], f"rank {r} draws another refill order after the resume"
    # a checkpoint from before the per-rank files: rank 1 resumes at rank 0's position and says so
    (folder / SGCDGRPOTrainer.rollout_state_name(1)).unlink()
    legacy = H.make_rollout(airline)
    as_rank(1, legacy)
    with pytest.warns(UserWarning, match="no refill-sampler state for rank 1"):
        trainer._load_rng_state(str(folder))
    assert legacy.state_dict() == {"sampler": stood[0], "rank": 1}


def _mkdir(trainer) -> None:
    """What Trainer._save_checkpoint leaves on every process: the checkpoint folder (its RNG file's home)."""
    (Path(trainer.args.output_dir) / f"checkpoint-{trainer.state.global_step}").mkdir(
        parents=True, exist_ok=True
    )
