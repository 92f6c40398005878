"""The trainer with the CPU update paths (coin test domain, tiny model): train_layers leaves the frozen blocks
bit-identical, a LoRA run changes only adapters and its merged final model evaluates, bf16 parameters are refused
at config time, the first minibatch's PPO ratio is 1, and the credit diagnostics are logged every step."""

from __future__ import annotations

import pytest
import torch
from helpers import final_weights

from sgcd.policy.models import load_policy, resolve_model
from sgcd.trainer.config import ConfigError, make_config
from sgcd.trainer.logging import read_jsonl
from sgcd.trainer.trainer import train


def _initial() -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(next(resolve_model("tiny").glob("*.safetensors"))))


def _run(tmp_path, coin_overrides, extra, name="run"):
    out = tmp_path / name
    base = coin_overrides + ["steps=2", "eval.before=false", "checkpoint.every=0"]
    summary = train(make_config(None, base + extra), out, quiet=True)
    return out, summary, read_jsonl(out / "metrics.jsonl")


def test_train_layers_leaves_the_frozen_blocks_bit_identical(tmp_path, coin_overrides):
    out, _, rows = _run(tmp_path, coin_overrides, ["model.train_layers=1"])
    assert any(r.get("sampling/skipped") == 0.0 for r in rows)  # an update ran
    final, initial = final_weights(out), _initial()
    frozen = [k for k in initial if not k.startswith(("model.layers.1.", "model.norm."))]
    trained = [k for k in initial if k.startswith(("model.layers.1.", "model.norm."))]
    assert frozen and trained
    for k in frozen:
        assert torch.equal(final[k], initial[k]), k
    assert any(not torch.equal(final[k], initial[k]) for k in trained)


def test_lora_run_changes_only_adapters_and_the_merged_model_evaluates(tmp_path, coin_overrides):
    out, summary, rows = _run(
        tmp_path, coin_overrides, ["model.lora_rank=4", "model.lora_alpha=8", "optim.lr=1e-2"]
    )
    assert any(r.get("sampling/skipped") == 0.0 for r in rows)
    assert (out / "final" / "adapter" / "adapter_config.json").exists()
    final, initial = final_weights(out), _initial()
    assert final.keys() == initial.keys()  # a plain merged HF folder: no lora_ / base_layer names
    targets = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
    moved = [k for k in initial if not torch.equal(final[k], initial[k])]
    assert moved and all(any(t in k for t in targets) for k in moved)  # only adapted modules moved
    assert summary["success_after"] is not None  # the final evaluation loaded the merged folder
    policy = load_policy(str(out / "final"))
    assert policy.score([[1, 2, 3]], [[4, 5]]).logprobs.shape == (1, 2)


def test_grad_checkpoint_run_matches_the_plain_run(tmp_path, coin_overrides, monkeypatch):
    """model.grad_checkpoint=true reaches the policy (blocks are checkpointed in the update) and changes nothing
    but memory: the final LoRA weights equal the run without it."""
    from sgcd.policy.hf import HFPolicy

    used = []
    inner = HFPolicy._checkpointed_blocks
    monkeypatch.setattr(HFPolicy, "_checkpointed_blocks", lambda self: used.append(1) or inner(self))
    extra = ["model.lora_rank=4", "model.lora_alpha=8", "optim.lr=1e-2"]
    plain, _, rows = _run(tmp_path, coin_overrides, extra, name="plain")
    assert not used and any(r.get("sampling/skipped") == 0.0 for r in rows)
    ckpt, _, _ = _run(tmp_path, coin_overrides, extra + ["model.grad_checkpoint=true"], name="ckpt")
    assert used  # the update's gradient passes went through the checkpointed blocks
    a, b = final_weights(plain), final_weights(ckpt)
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(b[k], a[k], atol=1e-6, rtol=1e-5)


def test_training_bf16_parameters_is_refused_at_config_time():
    with pytest.raises(ConfigError, match=r"model\.autocast=bfloat16"):
        make_config(None, ["model.dtype=bfloat16"])
    assert make_config(None, ["model.autocast=bfloat16"]).model.dtype == "float32"


@pytest.mark.parametrize("extra,tol", [([], 1e-5), (["model.autocast=bfloat16"], 1e-3)])
def test_first_minibatch_ratio_is_one(tmp_path, coin_overrides, extra, tol):
    """One optimizer step per training step (minibatch = the whole batch): the update's log-probs at that first
    minibatch equal the old log-probs: |log ratio| within tol on every token, nothing clipped."""
    _, _, rows = _run(
        tmp_path,
        coin_overrides,
        extra + ["algorithm.minibatch_size=8", "algorithm.microbatch_size=2", "model.train_layers=1"],
    )
    trained = [r for r in rows if "policy/ratio_dev_max" in r]
    assert trained
    for r in trained:
        assert r["policy/ratio_dev_max"] < tol and r["policy/clip_frac"] == 0.0


def test_old_and_update_passes_pad_each_row_to_one_width(tmp_path, coin_overrides, monkeypatch):
    """Under bf16 autocast a row's log-probs depend on the width it is padded to: SmolLM2-135M with the top 4
    blocks trained, one row alone vs padded 70 tokens wider beside a longer row, differed by up to 0.041 (0.127
    with all 30 blocks recomputed), and by exactly 0.0 at one width whatever the partner and order (probe,
    docs/training.md). The update groups rows differently from the old-log-prob pass, so both must pad every row
    to the batch's one width, or the first minibatch's ratio is not 1 (0.010 was measured before they did)."""
    from sgcd.policy.hf import HFPolicy

    calls = []
    inner = HFPolicy._score

    def spy(self, prefixes, continuations, topk, with_entropy, grad, select, share, pad_to=None):
        width = max([len(a) + len(b) for a, b in zip(prefixes, continuations)] + [pad_to or 0])
        calls.append((grad, [tuple(a) + tuple(b) for a, b in zip(prefixes, continuations)], width))
        return inner(self, prefixes, continuations, topk, with_entropy, grad, select, share, pad_to)

    monkeypatch.setattr(HFPolicy, "_score", spy)
    _run(tmp_path, coin_overrides, ["algorithm.microbatch_size=2", "steps=1"])
    first_width = {}  # a row's width in the first pass that scored it: the old log-probs
    for _, rows, width in calls:
        for row in rows:
            first_width.setdefault(row, width)
    updates = [(rows, width) for grad, rows, width in calls if grad]
    assert updates
    lengths = {len(row) for rows, _ in updates for row in rows}
    assert len(lengths) > 1, "the test needs rows of different lengths"
    for rows, width in updates:
        assert all(first_width[row] == width for row in rows), (width, [first_width[r] for r in rows])


def test_credit_diagnostics_are_logged_every_step(tmp_path, coin_overrides):
    _, _, rows = _run(tmp_path, coin_overrides, [])
    trained = [r for r in rows if r.get("sampling/skipped") == 0.0]
    assert trained
    for r in trained:
        assert "credit/noise_floor_std" in r and "credit/ref_sensitivity" in r and "credit/w_std" in r
        assert r["credit/noise_floor_std"] < 1e-4  # float32, same weights, same prompt


def test_summary_has_paired_before_after_statistics(tmp_path, coin_overrides):
    out = tmp_path / "run"
    summary = train(make_config(None, coin_overrides + ["steps=1", "checkpoint.every=0"]), out, quiet=True)
    p = summary["eval_paired"]
    assert p["n"] == summary["eval_before"]["n_tasks"] and p["before"] == summary["success_before"]
    assert summary["eval_delta"] == p["after"] - p["before"] and len(summary["eval_delta_ci"]) == 2
    lo, hi = summary["eval_delta_ci"]
    assert lo <= summary["eval_delta"] <= hi and 0.0 <= summary["eval_p"] <= 1.0


def test_lora_run_resumes_exactly(tmp_path, coin_overrides):
    """A LoRA run's checkpoint is a merged HF folder with the adapter beside it; resuming loads the adapter and
    continues exactly as an uninterrupted run."""
    from sgcd.trainer.trainer import resume

    extra = ["model.lora_rank=4", "optim.lr=1e-2", "eval.before=false", "checkpoint.every=1"]
    base = coin_overrides + extra
    straight = tmp_path / "straight"
    train(make_config(None, base + ["steps=3"]), straight, quiet=True)
    short = tmp_path / "short"
    train(make_config(None, base + ["steps=2"]), short, quiet=True)
    ckpts = sorted((short / "checkpoints").iterdir())
    assert (ckpts[-1] / "adapter" / "adapter_model.safetensors").exists()
    assert load_policy(str(ckpts[-1])).score([[1, 2]], [[3]]).logprobs.shape == (1, 1)  # a policy for eval
    resume(short, steps=3, quiet=True)
    a, b = final_weights(straight), final_weights(short)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
