"""Run folder helpers: bounded samples, refusing a non-empty folder, and the --resume override rule."""

from __future__ import annotations

import json

import pytest

from sgcd.cli import main
from sgcd.trainer.runs import prepare_run_dir, write_samples
from sgcd.trainer.samples import sample_rows


def test_samples_are_bounded(tmp_path):
    for step in range(1, 8):
        write_samples(tmp_path, step, [{"step": step, "siblings": []}], keep=3)
    files = sorted(p.name for p in (tmp_path / "samples").iterdir())
    assert files == ["step_000005.jsonl", "step_000006.jsonl", "step_000007.jsonl"]
    assert json.loads((tmp_path / "samples" / "step_000007.jsonl").read_text()) == {"step": 7, "siblings": []}


def test_prepare_refuses_non_empty_unless_resuming(tmp_path):
    (tmp_path / "x").write_text("")
    with pytest.raises(FileExistsError, match="is not empty"):
        prepare_run_dir(tmp_path)
    assert prepare_run_dir(tmp_path, resume=True) == tmp_path


def test_resume_accepts_only_steps(tmp_path, capsys):
    assert main(["train", "--resume", str(tmp_path), "credit.eps=0.1"]) == 2
    assert "--resume takes only steps=N" in capsys.readouterr().err
    assert main(["train", "--resume", str(tmp_path / "none")]) == 2
    assert "is not a run folder (no config.yaml)" in capsys.readouterr().err


def test_sample_rows_without_teacher_write_null(tmp_path):
    import torch

    from sgcd.trainer.loop.batch import collate
    from sgcd.trainer.loop.step import StepOutput
    from sgcd.types import Episode, Observation, Trajectory, TrajectoryGroup

    def traj(reward):
        ep = Episode("t", (), (), reward, reward >= 1.0)
        return Trajectory(
            ep, (1, 2), (5, 6, 7), (1, 0, 1), (0, -1, 1), (-0.5, 0.0, -0.25), token_types=(3, 0, 3)
        )

    group = TrajectoryGroup("t", (traj(1.0), traj(0.0)), Observation(()), "do it")
    batch = collate([group])
    out = StepOutput(
        metrics={},
        batch=batch,
        references=[None],
        advantages_B=torch.tensor([0.7, -0.7]),
        weights_B_T=torch.ones(2, 3),
        student_B_T=torch.tensor([[-0.5, 0.0, -0.25]] * 2),
    )

    class Tok:
        def decode(self, ids):
            return f"<{ids[0]}>"

    (row,) = sample_rows(out, 4, Tok(), n=4)
    assert row["reference"] is None and row["reference_text"] == ""
    sib = row["siblings"][1]
    assert sib["tokens"] == ["<5>", "<6>", "<7>"] and sib["teacher_logprobs"] is None
    assert sib["advantage"] == pytest.approx(-0.7) and sib["success"] is False
    assert sib["weights"] == [1.0, 1.0, 1.0] and sib["action_mask"] == [1, 0, 1]
