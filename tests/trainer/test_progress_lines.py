"""Runs you can watch (issue 19, item 3): off a terminal (nohup, SLURM, a pipe) `sgcd train`, `compare`, `eval`
and `sft` print plain flushed lines, `step N ...` once per training step, and never a progress bar; on a terminal
the rich bar stays. The Must-show command is `sgcd train --preset smoke --out D 2>&1 | cat`."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import sgcd
from sgcd.cli import main
from sgcd.progress import on_terminal, step_line
from sgcd.trainer.logging import StdoutLogger
from sgcd.trainer.progress import Progress

SRC = Path(sgcd.__file__).resolve().parents[1]
BAR_GLYPHS = ("━", "\r", "\x1b[")  # rich's bar, carriage-return redraws, ANSI cursor moves
STEP_LINE = re.compile(r"^step (\d+)/(\d+)  success (\S+)  mixed (\S+)  w_std (\S+)  loss (\S+)  (\S+) s")


def _no_bar(text: str) -> None:
    assert not any(g in text for g in BAR_GLYPHS), (
        f"a progress bar leaked into a non-terminal stream: {text!r}"
    )
    assert "it/s]" not in text and "Loading weights" not in text  # no tqdm bars from transformers either


def test_train_piped_prints_one_line_per_step(tmp_path):
    # exactly `sgcd train --preset smoke --out D 2>&1 | cat`: stdout and stderr go to one pipe
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    env.pop("HF_HUB_DISABLE_PROGRESS_BARS", None)
    cmd = [sys.executable, "-m", "sgcd.cli", "train", "--preset", "smoke", "--out", str(tmp_path / "D")]
    done = subprocess.run(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout[-3000:]
    steps = [m for m in map(STEP_LINE.match, done.stdout.splitlines()) if m]
    assert [(m.group(1), m.group(2)) for m in steps] == [("1", "3"), ("2", "3"), ("3", "3")], done.stdout
    assert all(float(m.group(7)) > 0 for m in steps)  # seconds of each step
    assert "held-out success: before" in done.stdout
    _no_bar(done.stdout)


def test_step_lines_carry_the_update_figures(tmp_path, capsys, coin_overrides):
    # on the coin domain the groups are mixed, so success, mixed groups, w_std and loss are all numbers
    args = ["train", "--out", str(tmp_path / "run"), *coin_overrides]
    assert main([*args, "logging.progress=true", "steps=2", "logging.stdout=true"]) == 0
    out, err = capsys.readouterr()
    lines = [m for m in map(STEP_LINE.match, err.splitlines()) if m]
    assert [m.group(1) for m in lines] == ["1", "2"], err
    for m in lines:
        assert float(m.group(3)) >= 0 and re.fullmatch(r"\d+/\d+", m.group(4)) and m.group(4)[0] != "0"
        float(m.group(5)), float(m.group(6))  # numbers, not "-"
    # logging.stdout: the same line on stdout per step; the eval-only rows are labelled, never an empty `step 0:`
    assert len(re.findall(r"^step [12]  success ", out, re.M)) == 2
    assert "step 0 eval: success" in out and not re.search(r"^step \d+:\s*$", out, re.M)
    _no_bar(err)


def test_compare_piped_prints_step_lines(tmp_path, capsys):
    args = ["compare", "--algorithms", "grpo", "--seeds", "0", "--preset", "smoke", "--out", str(tmp_path)]
    assert main([*args, "steps=2", "eval.every=0"]) == 0
    err = capsys.readouterr().err
    assert [m.group(1) for m in map(STEP_LINE.match, err.splitlines()) if m] == ["1", "2"], err
    _no_bar(err)


def test_eval_piped_prints_batch_lines_not_a_bar(capsys):
    assert main(["eval", "--env", "airline-lite", "--policy", "scripted:gold", "--limit", "5"]) == 0
    err = capsys.readouterr().err
    assert re.search(r"^eval airline-lite/test  5/5 episodes  success 1\.000  \S+ s$", err, re.M), err
    _no_bar(err)


def test_sft_piped_draws_no_bar(tmp_path, capsys):
    args = [
        "sft",
        "--model",
        "tiny",
        "--steps",
        "2",
        "--batch-size",
        "1",
        "--eval-tasks",
        "0",
        "--device",
        "cpu",
    ]
    assert main([*args, "--max-tokens", "2048", "--out", str(tmp_path / "sft")]) == 0
    captured = capsys.readouterr()
    assert captured.err.startswith("sft: 2 steps of 1 gold trajectories (tiny on airline-lite)")
    _no_bar(captured.err + captured.out)


def test_bar_only_on_a_terminal(capsys):
    master, slave = os.openpty()
    try:
        with os.fdopen(slave, "w", closefd=False) as tty:
            assert on_terminal(tty)
    finally:
        os.close(master)
        os.close(slave)
    assert not on_terminal(sys.stderr)  # pytest captures stderr: not a terminal
    with Progress(2, bar=False) as p:
        p.update(1, {"reward/success_rate": 0.5, "time/step_s": 1.25})
    assert capsys.readouterr().err == "step 1/2  success 0.50  mixed -  w_std -  loss -  1.2 s\n"
    assert Progress(2).bar is False and Progress(2, bar=True).bar is True


def test_step_line_format():
    m = {
        "reward/success_rate": 0.25,
        "sampling/n_mixed": 2.0,
        "sampling/n_groups": 4.0,
        "credit/w_std": 0.0123,
    }
    m |= {"loss/policy": -0.5, "time/step_s": 3.04, "eval/success": 0.5}
    assert (
        step_line(7, 10, m)
        == "step 7/10  success 0.25  mixed 2/4  w_std 0.0123  loss -0.5000  3.0 s  eval 0.500"
    )
    skipped = step_line(1, None, {"sampling/skipped": 1.0})
    assert skipped.startswith("step 1  success -") and skipped.endswith("skipped (no mixed group)")


@pytest.mark.parametrize("row", [{"eval/success": 0.0, "eval/n": 2.0}, {"reference/requests": 1.0}])
def test_stdout_logger_never_prints_an_empty_step_line(row, capsys):
    StdoutLogger().log(row, 0)
    out = capsys.readouterr().out
    assert out in ("", "step 0 eval: success 0.000 (2 episodes)\n")
