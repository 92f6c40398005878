"""`sgcd eval` under bad input: a limit that would run nothing, replay lines of the wrong shape, a --json path
that cannot be written, a damaged model folder; and a training checkpoint used as the policy."""

from __future__ import annotations

import json
import shutil

import pytest

from sgcd.cli import main
from sgcd.policy.models import resolve_model

BASE = ["eval", "--env", "airline-lite", "--split", "test", "--no-progress"]


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("sgcd eval: error: ") and "Traceback" not in err, err
    return err


@pytest.mark.parametrize("limit", ["0", "-5"])
def test_limit_below_one_is_refused(capsys, limit):
    assert main([*BASE, "--policy", "scripted:gold", "--limit", limit]) == 2
    assert f"--limit must be >= 1, got {limit}" in _one_line_error(capsys)


@pytest.mark.parametrize(
    "line, why",
    [
        ({"task_id": "t", "turns": "a string, not a list"}, "turns a list of strings"),
        ({"task_id": "t", "turns": [1, 2]}, "every turn must be a string"),
        (["t", ["x"]], "a line must be a JSON object"),
    ],
)
def test_replay_lines_are_validated(tmp_path, capsys, line, why):
    path = tmp_path / "replay.jsonl"
    path.write_text(json.dumps(line) + "\n")
    assert main([*BASE, "--policy", f"replay:{path}", "--limit", "1"]) == 2
    err = _one_line_error(capsys)
    assert f"{path}:1: bad replay line" in err and why in err


def test_json_that_cannot_be_written_is_one_line(tmp_path, capsys):
    afile = tmp_path / "a-file"
    afile.write_text("mine")
    out = afile / "result.json"
    assert main([*BASE, "--policy", "scripted:gold", "--limit", "1", "--json", str(out)]) == 2
    assert f"--json {out}: cannot write it" in _one_line_error(capsys)


def test_damaged_model_folder_is_one_line(tmp_path, capsys):
    folder = tmp_path / "final"
    shutil.copytree(resolve_model("tiny"), folder)
    (folder / "model.safetensors").write_bytes(b"\x00\x01 not safetensors")
    assert main([*BASE, "--policy", str(folder), "--limit", "1"]) == 2
    assert "cannot load the policy" in _one_line_error(capsys)


def test_a_training_checkpoint_is_a_policy(tmp_path, capsys):
    run = tmp_path / "run"
    args = ["train", "--preset", "smoke", "--out", str(run), "--quiet", "steps=2", "checkpoint.every=1"]
    assert main([*args, "eval.before=false"]) == 0
    last = sorted((run / "checkpoints").iterdir())[-1]
    capsys.readouterr()
    opts = ["--option", "families=flight_status,res_info", "--max-new-tokens", "8"]
    assert main([*BASE, "--policy", str(last), "--limit", "1", *opts]) == 0
    assert "per family" in capsys.readouterr().out
