"""Checkpoints: exact round trip of model, optimizer, scheduler and RNG; atomic writes; a full disk."""

from __future__ import annotations

import errno
import json
import random
from collections import namedtuple

import numpy as np
import pytest
import torch

from sgcd.trainer import checkpoint as ckpt

shutil_usage = namedtuple("usage", "total used free")


def _parts(seed=0):
    torch.manual_seed(seed)
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0 / (s + 1))
    model(torch.ones(1, 3)).sum().backward()
    opt.step()
    sched.step()
    return model, opt, sched


def _draws(gen):
    return (
        random.random(),
        float(np.random.rand()),
        float(torch.rand(1)),
        float(torch.rand(1, generator=gen)),
    )


def test_round_trip_restores_everything(tmp_path):
    model, opt, sched = _parts()
    gen = torch.Generator().manual_seed(5)
    state = ckpt.TrainState(step=4, sampler={"epoch": 1, "pos": 3}, metrics_offset=123, summarizer_cache="/c")
    ckpt.save_checkpoint(tmp_path, state, model, opt, sched, keep_last=2, generators={"g": gen})
    expected = _draws(gen)  # what the RNGs give right after the checkpoint

    model2, opt2, sched2 = _parts(seed=1)
    gen2 = torch.Generator().manual_seed(99)
    _draws(gen2)
    loaded = ckpt.load_checkpoint(ckpt.latest_checkpoint(tmp_path), model2, opt2, sched2, {"g": gen2})
    assert loaded == state
    assert _draws(gen2) == expected
    for a, b in zip(model.state_dict().values(), model2.state_dict().values()):
        assert torch.equal(a, b)
    assert sched2.get_last_lr() == sched.get_last_lr()
    assert opt2.state_dict()["state"][0]["exp_avg"].equal(opt.state_dict()["state"][0]["exp_avg"])


def test_keep_last_and_ordering(tmp_path):
    model, opt, sched = _parts()
    for step in (1, 2, 3, 10):
        ckpt.save_checkpoint(tmp_path, ckpt.TrainState(step=step), model, opt, sched, keep_last=2)
    assert [p.name for p in ckpt.list_checkpoints(tmp_path)] == [
        "step_000003",
        "step_000010",
    ]  # numeric order


def test_half_written_checkpoint_is_ignored_and_cleaned(tmp_path):
    model, opt, sched = _parts()
    ckpt.save_checkpoint(tmp_path, ckpt.TrainState(step=1), model, opt, sched)
    # a kill during the next save leaves a temp folder (and perhaps a final-named folder without state.json)
    (tmp_path / "checkpoints" / ".tmp-step_000002-999").mkdir()
    (tmp_path / "checkpoints" / "step_000003").mkdir()
    assert ckpt.latest_checkpoint(tmp_path).name == "step_000001"
    ckpt.save_checkpoint(tmp_path, ckpt.TrainState(step=2), model, opt, sched)
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert ".tmp-step_000002-999" not in names


def test_full_disk_leaves_previous_checkpoint_intact(tmp_path, monkeypatch):
    model, opt, sched = _parts()
    ckpt.save_checkpoint(tmp_path, ckpt.TrainState(step=1), model, opt, sched)
    real_write = ckpt._write_bytes

    def failing_write(path, data):
        if str(path).endswith("optimizer.pt"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(path, data)

    monkeypatch.setattr(ckpt, "_write_bytes", failing_write)
    with pytest.raises(ckpt.CheckpointError) as info:
        ckpt.save_checkpoint(tmp_path, ckpt.TrainState(step=2), model, opt, sched)
    msg = str(info.value)
    assert msg == "checkpoint at step 2 failed (disk full); the last intact checkpoint is step_000001"
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["step_000001"]  # no temp folder left
    monkeypatch.setattr(ckpt, "_write_bytes", real_write)
    assert ckpt.load_checkpoint(ckpt.latest_checkpoint(tmp_path), model, opt, sched).step == 1


def test_unreadable_checkpoint_is_a_clear_error(tmp_path):
    model, opt, sched = _parts()
    path = ckpt.save_checkpoint(tmp_path, ckpt.TrainState(step=1), model, opt, sched)
    (path / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(ckpt.CheckpointError, match=r"step_000001 cannot be read"):
        ckpt.load_checkpoint(path, model, opt, sched)


def test_full_disk_in_a_librarys_own_words_is_named_disk_full(tmp_path, monkeypatch):
    """torch reports a full disk as "inline_container.cc ... unexpected pos"; the free space says what it was."""
    model, opt, sched = _parts()
    ckpt.save_checkpoint(tmp_path, ckpt.TrainState(step=1), model, opt, sched)

    def torch_full(obj, f, *a, **k):
        raise RuntimeError("[enforce fail at inline_container.cc:626] . unexpected pos 4416 vs 4310")

    monkeypatch.setattr(torch, "save", torch_full)
    monkeypatch.setattr(ckpt.shutil, "disk_usage", lambda p: shutil_usage(total=10**9, used=10**9, free=0))
    with pytest.raises(ckpt.CheckpointError) as info:
        ckpt.save_checkpoint(tmp_path, ckpt.TrainState(step=2), model, opt, sched)
    assert (
        str(info.value)
        == "checkpoint at step 2 failed (disk full); the last intact checkpoint is step_000001"
    )


def test_checkpoint_is_a_hugging_face_model_folder(tmp_path):
    from sgcd.policy.models import load_policy, resolve_model

    policy = load_policy(str(resolve_model("tiny")), device="cpu", dtype="float32", seed=0)
    opt = torch.optim.AdamW(policy.model.parameters(), lr=0.1)
    path = ckpt.save_checkpoint(
        tmp_path, ckpt.TrainState(step=3), policy.model, opt, None, tokenizer=policy.tokenizer
    )
    assert (path / "config.json").exists() and (path / "model.safetensors").exists()
    assert not (path / "model.pt").exists()
    again = load_policy(str(path), device="cpu", dtype="float32", seed=0)  # what sgcd eval --policy does
    for (k, a), b in zip(policy.model.state_dict().items(), again.model.state_dict().values()):
        assert torch.equal(a, b), k


def test_unknown_field_in_state_json_is_one_line(tmp_path):
    model, opt, sched = _parts()
    path = ckpt.save_checkpoint(tmp_path, ckpt.TrainState(step=1), model, opt, sched)
    state = json.loads((path / "state.json").read_text())
    (path / "state.json").write_text(json.dumps({**state, "surprise": 1}))
    with pytest.raises(ckpt.CheckpointError, match=r"state.json has unknown field 'surprise'"):
        ckpt.load_checkpoint(path, model, opt, sched)
