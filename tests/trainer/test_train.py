"""End-to-end trainer runs on the coin test domain (tiny model, seconds per step): every algorithm trains,
SGCD with no reference is GRPO bit for bit, a SIGKILLed run resumes exactly, and user errors are one line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from helpers import NAMESPACES, final_weights, same_weights, stable_metrics

from sgcd.cli import main
from sgcd.policy.models import resolve_model
from sgcd.trainer import checkpoint as ckpt
from sgcd.trainer.config import make_config
from sgcd.trainer.logging import read_jsonl
from sgcd.trainer.setup import TrainError
from sgcd.trainer.trainer import resume, train

QUIET = {"quiet": True}


def _run(tmp_path: Path, name: str, overrides: list[str]) -> tuple[Path, dict]:
    out = tmp_path / name
    return out, train(make_config(None, overrides), out, **QUIET)


def _initial_weights() -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(next(resolve_model("tiny").glob("*.safetensors"))))


def test_coin_run_trains_and_logs_every_namespace(tmp_path, coin_overrides):
    out, summary = _run(tmp_path, "run", coin_overrides + ["steps=2"])
    rows = read_jsonl(out / "metrics.jsonl")
    keys = {k.split("/")[0] for r in rows for k in r if "/" in k}
    assert set(NAMESPACES) <= keys
    assert [r["step"] for r in rows] == [0, 1, 2, 2]  # eval before, two steps, final eval
    trained = [r for r in rows if "loss/policy" in r]
    assert all(r["sampling/skipped"] == 0.0 for r in trained)  # the coin domain gives mixed groups
    assert not same_weights(final_weights(out), _initial_weights())
    assert summary["success_after"] is not None and (out / "summary.json").exists()
    sample = (out / "samples" / "step_000002.jsonl").read_text().splitlines()
    group = json.loads(sample[0])
    sib = group["siblings"][0]
    assert (
        len(sib["tokens"]) == len(sib["weights"]) == len(sib["action_mask"]) == len(sib["teacher_logprobs"])
    )
    assert group["reference"] is not None and "Training-only credit reference" in group["reference_text"]


def test_sgcd_without_reference_is_grpo_bit_for_bit(tmp_path, coin_overrides):
    base = coin_overrides + ["steps=2", "eval.before=false", "checkpoint.every=0"]
    grpo, _ = _run(tmp_path, "grpo", base + ["algorithm.name=grpo"])
    none, _ = _run(tmp_path, "none", base + ["algorithm.name=sgcd", "credit.teacher=none"])
    sgcd, _ = _run(tmp_path, "sgcd", base + ["algorithm.name=sgcd", "credit.teacher=pi_old"])
    w_grpo, w_none, w_sgcd = final_weights(grpo), final_weights(none), final_weights(sgcd)
    assert not same_weights(w_grpo, _initial_weights())  # the runs really trained
    assert same_weights(w_none, w_grpo)  # teacher = clean prompt: delta = 0, w = 1, identical updates
    assert not same_weights(w_sgcd, w_grpo)  # with the credit reference the weights move the update
    rows = [r for r in read_jsonl(none / "metrics.jsonl") if "credit/w_std" in r]
    assert rows and all(r["credit/w_std"] == 0.0 and r["credit/w_mean"] == 1.0 for r in rows)


@pytest.mark.parametrize(
    "extra",
    [
        ["algorithm.name=sd-replace"],
        ["algorithm.name=sd-aux", "algorithm.sd_beta=0.5"],
        ["algorithm.name=opd-advantage"],
        ["credit.level=turn", "credit.unsigned=true", "credit.shuffle=true"],
        [
            "credit.failures_only=true",
            "credit.entropy_gate=true",
            "algorithm.kl_beta=0.01",
            "credit.teacher=reference",
        ],
    ],
    ids=["sd-replace", "sd-aux", "opd-advantage", "turn-unsigned-shuffle", "failures-gate-kl-reference"],
)
def test_every_algorithm_and_ablation_trains(tmp_path, coin_overrides, extra):
    out, _ = _run(
        tmp_path, "run", coin_overrides + ["steps=1", "eval.before=false", "checkpoint.every=0"] + extra
    )
    row = next(r for r in read_jsonl(out / "metrics.jsonl") if "loss/total" in r)
    assert row["loss/total"] == row["loss/total"]  # finite, not NaN (NaN is written as null)
    assert not same_weights(final_weights(out), _initial_weights())
    if "algorithm.kl_beta=0.01" in extra:
        assert "policy/ref_kl" in row


def _subprocess_train(out: Path, overrides: list[str]) -> subprocess.Popen:
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import coin_domain; coin_domain.register(); "
        "from sgcd.cli import main; sys.exit(main(sys.argv[2:]))"
    )
    args = [
        sys.executable,
        "-c",
        code,
        str(Path(__file__).parent),
        "train",
        "--quiet",
        "--out",
        str(out),
        *overrides,
    ]
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def test_resume_after_sigkill_matches_uninterrupted_run(tmp_path, coin_overrides):
    overrides = coin_overrides + ["steps=5", "checkpoint.every=1", "eval.every=2"]
    ref_dir, _ = _run(tmp_path, "uninterrupted", overrides)

    killed = tmp_path / "killed"
    proc = _subprocess_train(killed, overrides)
    deadline = time.time() + 300
    while not (killed / "checkpoints" / "step_000002" / "state.json").exists():
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.time() < deadline
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (killed / "summary.json").exists()  # it really died mid-run
    step_at_kill = ckpt.latest_checkpoint(killed).name

    summary = resume(killed, **QUIET)
    assert summary["steps"] == 5
    assert same_weights(final_weights(killed), final_weights(ref_dir))
    assert stable_metrics(read_jsonl(killed / "metrics.jsonl")) == stable_metrics(
        read_jsonl(ref_dir / "metrics.jsonl")
    )
    assert step_at_kill in {"step_000002", "step_000003", "step_000004"}


def test_missing_model_is_one_line_and_writes_nothing(tmp_path, capsys, coin_overrides):
    out = tmp_path / "run"
    code = main(["train", "--out", str(out), *coin_overrides, f"model.name={tmp_path / 'no-such-model'}"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0
    assert "model.name=" in err and "not found" in err
    assert not out.exists()


def test_unreachable_summarizer_endpoint_is_one_line_and_writes_nothing(tmp_path, capsys, coin_overrides):
    out = tmp_path / "run"
    code = main(
        [
            "train",
            "--out",
            str(out),
            *coin_overrides,
            "summarizer.kind=llm",
            "summarizer.model=m",
            "summarizer.base_url=http://127.0.0.1:9/v1",
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0
    assert "summarizer.base_url='http://127.0.0.1:9/v1' is unreachable" in err
    assert not out.exists()


def test_full_disk_at_checkpoint_keeps_the_run_resumable(tmp_path, monkeypatch, coin_overrides):
    overrides = coin_overrides + ["steps=3", "checkpoint.every=1", "eval.before=false", "eval.every=0"]
    real_save, calls = ckpt._save_weights, {"n": 0}

    def save_until_full(model, tokenizer, folder):
        calls["n"] += 1
        if calls["n"] >= 2:  # the second checkpoint hits a full disk
            raise OSError(28, "No space left on device")
        return real_save(model, tokenizer, folder)

    monkeypatch.setattr(ckpt, "_save_weights", save_until_full)
    out = tmp_path / "run"
    with pytest.raises(
        TrainError,
        match=r"^checkpoint at step 2 failed \(disk full\); the last intact checkpoint "
        r"is step_000001$",
    ):
        train(make_config(None, overrides), out, **QUIET)
    assert [p.name for p in (out / "checkpoints").iterdir()] == ["step_000001"]
    assert not (out / "summary.json").exists()
    monkeypatch.setattr(ckpt, "_save_weights", real_save)
    assert resume(out, **QUIET)["steps"] == 3  # the run continues from step 1 once there is space


def test_non_empty_out_is_refused(tmp_path, capsys, coin_overrides):
    out = tmp_path / "run"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert main(["train", "--out", str(out), *coin_overrides]) == 2
    assert "is not empty" in capsys.readouterr().err
    assert (out / "keep.txt").read_text() == "mine"
