"""One-line errors, before any model loads, for what a user can get wrong about a run: the domain (name, option,
split), the device, the logging extras and the output folder."""

from __future__ import annotations

import sys

import pytest
import torch

from sgcd.cli import main


@pytest.fixture
def no_model(monkeypatch):
    def refuse(cfg):
        raise AssertionError("a model was loaded before the error")

    monkeypatch.setattr("sgcd.trainer.trainer.load_models", refuse)


CASES = [
    (["env.name=nope"], "env.name='nope': unknown environment 'nope'; choose one of: "),
    (
        ["env.name=airline-lite", "env.options.bogus=1"],
        "env='airline-lite': airline-lite: unknown option 'bogus'",
    ),
    (
        ["env.train_split=nope"],
        "env.train_split='nope' is not a split of 'test-coin'; choose one of: train, test",
    ),
    (
        ["env.eval_split=dev"],
        "env.eval_split='dev' is not a split of 'test-coin'; choose one of: train, test",
    ),
    (["model.device=foo"], "model.device='foo' is not a torch device; use cpu, cuda or cuda:N"),
    (["logging.tensorboard=true"], "logging.tensorboard=true needs the tensorboard extra"),
    (["logging.wandb=true"], "logging.wandb=true needs the wandb extra"),
]
if not torch.cuda.is_available():
    CASES.append((["model.device=cuda"], "model.device='cuda': torch sees no CUDA device on this machine"))


@pytest.mark.parametrize("overrides, message", CASES, ids=[c[0][-1] for c in CASES])
def test_bad_run_settings_are_one_line_before_any_model_loads(
    tmp_path, capsys, monkeypatch, no_model, coin_overrides, overrides, message
):
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # the extras are not installed
    monkeypatch.setitem(sys.modules, "wandb", None)
    out = tmp_path / "run"
    assert main(["train", "--out", str(out), *coin_overrides, *overrides]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"sgcd train: error: {message}"), err
    assert not out.exists()


@pytest.mark.parametrize("where", ["a file", "below a file"])
def test_out_naming_a_file_is_one_line(tmp_path, capsys, no_model, coin_overrides, where):
    afile = tmp_path / "notes.txt"
    afile.write_text("mine")
    out = afile if where == "a file" else afile / "run"
    assert main(["train", "--out", str(out), *coin_overrides]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is a file, not a folder" in err, err
    assert afile.read_text() == "mine"
