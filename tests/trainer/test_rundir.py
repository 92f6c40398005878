"""Run folders under faults: one writer at a time, resume that continues exactly or refuses in one line (an
edited config, a shorter run, a finished run, a damaged newest checkpoint, a torn metrics line, a run killed
before its first checkpoint), and file-system errors as one line."""

from __future__ import annotations

import errno
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers import final_weights, same_weights, stable_metrics

from sgcd.cli import main
from sgcd.trainer import checkpoint as ckpt
from sgcd.trainer.config import make_config, save_config
from sgcd.trainer.logging import JsonlLogger, read_jsonl
from sgcd.trainer.setup import TrainError
from sgcd.trainer.trainer import resume, train

QUIET = {"quiet": True}
FAST = ["eval.before=false", "eval.every=0", "checkpoint.every=1", "checkpoint.keep_last=3"]


def _train(tmp_path: Path, name: str, overrides: list[str]) -> Path:
    out = tmp_path / name
    train(make_config(None, overrides), out, **QUIET)
    return out


def _config(run: Path) -> dict:
    return yaml.safe_load((run / "config.yaml").read_text())


def test_second_writer_is_refused_naming_the_holder_pid(tmp_path, coin_overrides):
    run = tmp_path / "run"
    run.mkdir()
    save_config(make_config(None, coin_overrides), run / "config.yaml")
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys,time; from sgcd.trainer.rundir import RunLock; "
         "lock = RunLock(sys.argv[1]).acquire(); print('held', flush=True); time.sleep(60)", str(run)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(TrainError, match=rf"^run folder {run} is in use by another sgcd process \(pid "
                           rf"{holder.pid}\); wait for it to finish or stop it first$"):  # fmt: skip
            resume(run, **QUIET)
    finally:
        holder.kill()
        holder.wait()
    assert not (run / "metrics.jsonl").exists()  # the refused writer touched nothing


def test_edited_config_is_refused_unless_allowed(tmp_path, coin_overrides):
    run = _train(tmp_path, "run", coin_overrides + FAST + ["steps=2", "optim.lr=0.001"])
    (run / "summary.json").unlink()
    cfg = _config(run)
    cfg["optim"]["lr"] = 0.01
    cfg["algorithm"]["name"] = "grpo"
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    with pytest.raises(TrainError, match=r"was edited since checkpoint step_000002 \(changed: algorithm.name, "
                       r"optim.lr\); undo the edit, or pass --allow-config-change"):  # fmt: skip
        resume(run, steps=3, **QUIET)
    assert _config(run)["steps"] == 2  # nothing rewritten
    summary = resume(run, steps=3, allow_config_change=True, **QUIET)
    assert summary["steps"] == 3 and summary["algorithm"] == "grpo"
    state = ckpt.read_state(ckpt.latest_checkpoint(run))
    assert state.config["optim"]["lr"] == 0.01
    opt = json.loads(json.dumps(state.config))
    assert opt["algorithm"]["name"] == "grpo"


def test_allowed_config_change_uses_the_new_learning_rate(tmp_path, coin_overrides):
    run = _train(tmp_path, "run", coin_overrides + FAST + ["steps=1", "optim.lr=0.001"])
    (run / "summary.json").unlink()
    cfg = _config(run)
    cfg["optim"]["lr"] = 0.25
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    from sgcd.trainer.trainer import Trainer

    trainer = Trainer(make_config(run / "config.yaml", []), run, resume=True, quiet=True,
                      allow_config_change=True)  # fmt: skip
    trainer.setup()
    trainer.restore()
    assert [g["lr"] for g in trainer.optimizer.param_groups] == [0.25]


def test_steps_below_the_checkpoint_are_refused(tmp_path, coin_overrides):
    run = _train(tmp_path, "run", coin_overrides + FAST + ["steps=3"])
    rows = read_jsonl(run / "metrics.jsonl")
    with pytest.raises(TrainError, match=r"steps=1 is below the step of the last checkpoint \(step_000003, "
                       r"step 3\): a run cannot be shortened"):  # fmt: skip
        resume(run, steps=1, **QUIET)
    assert _config(run)["steps"] == 3 and read_jsonl(run / "metrics.jsonl") == rows


def test_resume_of_a_finished_run_is_a_one_line_no_op(tmp_path, capsys, coin_overrides):
    run = _train(tmp_path, "run", coin_overrides + FAST + ["steps=2"])
    before = (run / "metrics.jsonl").read_bytes()
    capsys.readouterr()
    assert main(["train", "--resume", str(run)]) == 0
    out = capsys.readouterr().out
    assert out == f"{run} is already finished (2 steps); nothing to do\n"
    assert (run / "metrics.jsonl").read_bytes() == before


def test_failed_resume_leaves_config_yaml_alone(tmp_path, coin_overrides):
    run = _train(tmp_path, "run", coin_overrides + FAST + ["steps=2"])
    (run / "summary.json").unlink()
    for path in ckpt.list_checkpoints(run):
        (path / "model.safetensors").write_bytes(b"not a model")
    with pytest.raises(TrainError, match="cannot be read"):
        resume(run, steps=4, **QUIET)
    assert _config(run)["steps"] == 2


def test_damaged_newest_checkpoint_falls_back_to_the_newest_intact_one(tmp_path, capsys, coin_overrides):
    run = _train(tmp_path, "run", coin_overrides + FAST + ["steps=3"])
    reference = final_weights(run)
    reference_rows = stable_metrics(read_jsonl(run / "metrics.jsonl"))
    (run / "summary.json").unlink()
    (run / "checkpoints" / "step_000003" / "model.safetensors").write_bytes(b"torn")
    capsys.readouterr()
    resume(run, quiet=False)
    out = capsys.readouterr().out
    assert "step_000003" in out and "falling back to step_000002" in out
    assert same_weights(final_weights(run), reference)  # step 3 re-run from step 2: the same model
    assert stable_metrics(read_jsonl(run / "metrics.jsonl")) == reference_rows


def test_torn_metrics_line_never_swallows_the_next_row(tmp_path, coin_overrides):
    run = _train(tmp_path, "run", coin_overrides + FAST + ["steps=3"])
    (run / "summary.json").unlink()
    shutil.rmtree(run / "checkpoints" / "step_000003")
    offset = ckpt.read_state(run / "checkpoints" / "step_000002").metrics_offset
    with open(run / "metrics.jsonl", "r+b") as fh:
        fh.truncate(offset - 7)  # the step-2 row is torn, the file shorter than the checkpoint says
    resume(run, **QUIET)
    lines = (run / "metrics.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in lines]  # every line is a whole row
    assert [r["step"] for r in rows] == [1, 3, 3]  # step 2's row was lost with the damage; step 3 is whole


def test_run_killed_before_its_first_checkpoint_restarts_in_place(tmp_path, coin_overrides):
    overrides = coin_overrides + ["steps=2", "checkpoint.every=0"]
    reference = _train(tmp_path, "reference", overrides)
    killed = tmp_path / "killed"
    (killed / "samples").mkdir(parents=True)
    save_config(make_config(None, overrides), killed / "config.yaml")
    (killed / "metrics.jsonl").write_text(
        '{"step": 0, "eval/success": 0.5}\n{"step": 1, "rew'
    )  # died mid-step
    summary = resume(killed, **QUIET)
    assert summary["steps"] == 2
    assert same_weights(final_weights(killed), final_weights(reference))
    assert stable_metrics(read_jsonl(killed / "metrics.jsonl")) == stable_metrics(
        read_jsonl(reference / "metrics.jsonl")
    )


def test_full_disk_on_metrics_is_one_line(tmp_path, capsys, monkeypatch, coin_overrides):
    def full(self, metrics, step):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(JsonlLogger, "log", full)
    out = tmp_path / "run"
    assert main(["train", "--out", str(out), "--quiet", *coin_overrides, "steps=1"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith(f"sgcd train: error: disk full while writing {out}"), err
