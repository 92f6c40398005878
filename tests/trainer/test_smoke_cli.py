"""Must-show 1: `sgcd train --preset smoke --out DIR` (tiny model, SFT warm start, real airline-lite tasks):
parameters change, every metric namespace is in metrics.jsonl, summary.json and a loadable final model exist."""

from __future__ import annotations

import json

import torch
from helpers import NAMESPACES, final_weights, same_weights

from sgcd.cli import main
from sgcd.trainer.config import make_config
from sgcd.trainer.logging import read_jsonl
from sgcd.trainer.setup import load_models


def test_smoke_preset_end_to_end(tmp_path, capsys):
    out = tmp_path / "smoke"
    assert main(["train", "--preset", "smoke", "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "held-out success: before " in printed

    rows = read_jsonl(out / "metrics.jsonl")
    namespaces = {k.split("/")[0] for r in rows for k in r if "/" in k}
    missing = [ns for ns in NAMESPACES if ns not in namespaces]
    assert not missing, f"namespaces missing from metrics.jsonl: {missing}"
    assert any(r.get("sampling/skipped") == 0.0 for r in rows)  # at least one step trained on mixed groups

    # the parameters changed: the final student differs from the SFT warm start it began from
    _, _, start_path = load_models(make_config("smoke"))
    from safetensors.torch import load_file

    start = {}
    for f in sorted(start_path.glob("*.safetensors")):
        start.update(load_file(str(f)))
    assert not same_weights(final_weights(out), start)

    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 3 and summary["success_after"] is not None
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(out / "final")
    tok = AutoTokenizer.from_pretrained(out / "final")
    ids = tok("hello", return_tensors="pt")["input_ids"]
    assert torch.isfinite(model(ids).logits).all()
