"""`sgcd compare` (matched runs, table, plot, reuse of finished runs) and `sgcd bench step` on the coin domain."""

from __future__ import annotations

import json

from sgcd.bench.step import PHASES, run_bench
from sgcd.cli import main
from sgcd.trainer.config import make_config


def test_compare_writes_table_plot_and_reuses_runs(tmp_path, capsys, coin_overrides):
    out = tmp_path / "cmp"
    args = [
        "compare",
        "--algorithms",
        "grpo,sgcd",
        "--seeds",
        "0",
        "--preset",
        "smoke",
        "--out",
        str(out),
        *coin_overrides,
        "steps=1",
        "eval.before=false",
        "checkpoint.every=0",
    ]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "| grpo | 1 |" in printed and "| sgcd | 1 |" in printed
    result = json.loads((out / "compare.json").read_text())
    assert [(r["algorithm"], r["seed"]) for r in result["runs"]] == [("grpo", 0), ("sgcd", 0)]
    for run in result["runs"]:
        assert (tmp_path / "cmp" / f"{run['algorithm']}-s0" / "final").is_dir()
        assert run["success_after"] is not None and run["state_changing_rate"] is not None
    assert (out / "curves.png").stat().st_size > 1000 and "plot_error" not in result
    # matched: the two runs' configs differ only in algorithm.name
    import yaml

    cfgs = [yaml.safe_load((out / f"{a}-s0" / "config.yaml").read_text()) for a in ("grpo", "sgcd")]
    cfgs[0]["algorithm"].pop("name"), cfgs[1]["algorithm"].pop("name")
    assert cfgs[0] == cfgs[1]
    # a second invocation reuses the finished runs instead of training again
    stamp = (out / "grpo-s0" / "summary.json").stat().st_mtime_ns
    assert main(args) == 0
    assert (out / "grpo-s0" / "summary.json").stat().st_mtime_ns == stamp


def test_compare_rejects_unknown_algorithm(tmp_path, capsys):
    assert main(["compare", "--algorithms", "grpo,ppo", "--out", str(tmp_path / "c")]) == 2
    assert "'ppo' is not allowed" in capsys.readouterr().err


def test_bench_step_splits_phases(coin_overrides):
    result = run_bench(make_config(None, coin_overrides), repeats=1)
    for algo in ("grpo", "sgcd"):
        assert set(PHASES) | {"rollout", "step", "post_rollout"} <= set(result[algo])
    assert (
        result["grpo"]["teacher"] == 0.0 and result["sgcd"]["teacher"] > 0.0
    )  # grpo skips the teacher forward
    assert result["grpo"]["rollout"] == result["sgcd"]["rollout"]  # the same rollouts, timed once
    assert result["ratio_step"] > 0 and result["mixed_groups"] >= 1


def test_bench_step_times_the_update_against_plain_fp32(coin_overrides):
    """The update comparison runs on the same rows: both paths report times and a speed-up, with train_layers."""
    result = run_bench(make_config(None, coin_overrides + ["model.train_layers=1"]), repeats=1)
    u = result["update"]
    assert u["configured"]["train_layers"] == 1 and u["action_tokens"] > 0 and u["rows"] >= 2
    assert u["configured"]["update_s"] > 0 and u["plain_fp32_full"]["update_s"] > 0
    assert result["per_token_speedup"] == u["plain_fp32_full"]["update_s"] / u["configured"]["update_s"]
    assert result["peak_rss_gb"] > 0
