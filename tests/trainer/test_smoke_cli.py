"""Must-show 1: `sgcd train --preset smoke --out DIR`: parameters change, every metric namespace is in
metrics.jsonl, summary.json and a loadable final model exist.

The smoke preset runs on airline-lite, where the random tiny model never succeeds (every step is skipped: no
mixed group). The first test runs the preset exactly as written and checks the pipeline around the update; the
second runs the same preset through the same command on the coin test domain, where groups are mixed, and checks
that the parameters change and every namespace (loss/, credit/, reference/ included) is logged.
"""

from __future__ import annotations

import json

import torch
from helpers import NAMESPACES, final_weights, same_weights

from sgcd.cli import main
from sgcd.policy.models import resolve_model
from sgcd.trainer.logging import read_jsonl


def _tiny_weights():
    from safetensors.torch import load_file

    return load_file(str(next(resolve_model("tiny").glob("*.safetensors"))))


def _loadable(final_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(final_dir)
    tok = AutoTokenizer.from_pretrained(final_dir)
    return bool(torch.isfinite(model(tok("hello", return_tensors="pt")["input_ids"]).logits).all())


def test_smoke_preset_on_airline_lite(tmp_path, capsys):
    out = tmp_path / "smoke"
    assert main(["train", "--preset", "smoke", "--out", str(out), "--quiet"]) == 0
    assert "held-out success: before 0.000 -> after 0.000" in capsys.readouterr().out
    rows = read_jsonl(out / "metrics.jsonl")
    trained = [r for r in rows if "sampling/skipped" in r]
    assert [r["step"] for r in trained] == [1, 2, 3]
    assert all(
        r["sampling/skipped"] == 1.0 and r["sampling/rounds"] == 2.0 for r in trained
    )  # refilled, then skipped
    assert {"reward", "sampling", "tools", "time", "eval", "policy"} <= {
        k.split("/")[0] for r in rows for k in r
    }
    assert same_weights(final_weights(out), _tiny_weights())  # nothing to learn from, nothing changed
    assert json.loads((out / "summary.json").read_text())["skipped_steps"] == 3
    assert [p.name for p in (out / "checkpoints").iterdir()] == ["step_000002", "step_000003"]
    assert _loadable(out / "final")


def test_smoke_preset_trains_when_groups_are_mixed(tmp_path):
    out = tmp_path / "smoke"
    args = [
        "train",
        "--preset",
        "smoke",
        "--out",
        str(out),
        "--quiet",
        "env.name=test-coin",
        "env.options={}",
    ]
    assert main(args) == 0
    rows = read_jsonl(out / "metrics.jsonl")
    namespaces = {k.split("/")[0] for r in rows for k in r if "/" in k}
    assert not [ns for ns in NAMESPACES if ns not in namespaces]
    assert all(r["sampling/skipped"] == 0.0 for r in rows if "sampling/skipped" in r)
    assert not same_weights(final_weights(out), _tiny_weights())
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 3 and summary["success_after"] is not None
    assert _loadable(out / "final")
