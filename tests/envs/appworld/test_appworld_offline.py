"""AppWorld pieces that need neither the AppWorld venv nor data: the missing-data error, options, parsing."""

from __future__ import annotations

import sys

import pytest

from sgcd.envs.appworld.domain import AppWorldConfig, AppWorldUnavailable, make_domain
from sgcd.envs.appworld.env import call_to_code, clip, extract_code


def test_no_data_is_one_line_saying_how_to_get_it(monkeypatch, tmp_path):
    monkeypatch.delenv("APPWORLD_ROOT", raising=False)
    with pytest.raises(AppWorldUnavailable) as err:
        make_domain()
    msg = str(err.value)
    assert "\n" not in msg
    assert "APPWORLD_ROOT is unset" in msg
    assert "appworld download data --root DIR" in msg and "export APPWORLD_ROOT=DIR" in msg
    with pytest.raises(AppWorldUnavailable, match=f"no AppWorld data under {tmp_path}/data"):
        make_domain(root=str(tmp_path))


def test_cli_eval_without_data_prints_one_line(monkeypatch, capsys):
    from sgcd.cli import main

    monkeypatch.delenv("APPWORLD_ROOT", raising=False)
    code = main(["eval", "--env", "appworld", "--split", "test_normal", "--policy", "scripted:gold"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1
    assert err.startswith("sgcd eval: error: AppWorld data not found (APPWORLD_ROOT is unset)")
    assert "appworld download data" in err


def test_trainer_process_never_imports_appworld(monkeypatch):
    monkeypatch.delenv("APPWORLD_ROOT", raising=False)
    with pytest.raises(AppWorldUnavailable):
        make_domain()
    assert "appworld" not in sys.modules and "freezegun" not in sys.modules


def test_options_are_typed_and_checked():
    cfg = AppWorldConfig.from_options(workers="3", action_timeout_s="2.5", mode="function")
    assert (cfg.workers, cfg.limits.action_timeout_s, cfg.limits.mode) == (3, 2.5, "function")
    with pytest.raises(ValueError, match="unknown appworld option 'wrkers'"):
        AppWorldConfig.from_options(wrkers=3)
    with pytest.raises(ValueError, match="mode='shell'"):
        AppWorldConfig.from_options(mode="shell")
    with pytest.raises(ValueError, match="workers='abc': expected int"):
        AppWorldConfig.from_options(workers="abc")


def test_extract_code_joins_blocks_in_order():
    text = "think\n```python\na = 1\n```\nmore\n```\nprint(a)\n```"
    assert extract_code(text) == "a = 1\nprint(a)"
    assert extract_code("no code here") is None
    assert extract_code("```python\n\n```") is None


def test_clip_keeps_both_ends():
    out = clip("a" * 50 + "b" * 50, 20)
    assert out.startswith("a" * 10) and out.endswith("b" * 10) and "[80 characters elided]" in out
    assert clip("short", 20) == "short"


def test_call_to_code_maps_app_api_and_rejects_other_names():
    code = call_to_code("spotify__show_song", {"song_id": 3})
    assert code == 'print(apis.spotify.show_song(**json.loads("{\\"song_id\\": 3}")))'
    assert call_to_code("spotify.show_song", {}) is None
    assert call_to_code("os__system; import os", {}) is None


def test_cluster_preset_loads_and_fits_the_worker_pool():
    from sgcd.trainer.config import make_config

    cfg = make_config("appworld")
    assert cfg.env.name == "appworld" and cfg.env.eval_split in ("dev", "test_normal")
    env = AppWorldConfig.from_options(**cfg.env.options)
    # every rollout round opens tasks_per_round x group_size worlds at once, one worker each
    assert env.workers >= cfg.sampling.tasks_per_round * cfg.sampling.group_size
    assert env.max_turns >= cfg.sampling.max_turns
