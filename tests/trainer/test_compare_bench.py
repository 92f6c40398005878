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
    # compare.md is the study (sgcd.report.study): per-arm rows "finished/planned", printed as well
    assert "| grpo | 1/1 |" in printed and "| sgcd | 1/1 |" in printed
    table = (out / "compare.md").read_text()
    assert table.startswith("# Study: cmp") and "| grpo | 1/1 |" in table and "](curves.png)" in table
    result = json.loads((out / "compare.json").read_text())
    assert [(r["algorithm"], r["seed"]) for r in result["runs"]] == [("grpo", 0), ("sgcd", 0)]
    for run in result["runs"]:
        assert (tmp_path / "cmp" / f"{run['algorithm']}-s0" / "final").is_dir()
        assert run["success_after"] is not None and run["state_changing_rate"] is not None
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and "plot_error" not in result
    # matched: the two runs' configs differ only in algorithm.name
    import yaml

    cfgs = [yaml.safe_load((out / f"{a}-s0" / "config.yaml").read_text()) for a in ("grpo", "sgcd")]
    cfgs[0]["algorithm"].pop("name"), cfgs[1]["algorithm"].pop("name")
    assert cfgs[0] == cfgs[1]
    # a second invocation reuses the finished runs instead of training again
    stamp = (out / "grpo-s0" / "summary.json").stat().st_mtime_ns
    assert main(args) == 0
    assert (out / "grpo-s0" / "summary.json").stat().st_mtime_ns == stamp


def test_compare_plotting_failure_keeps_table_and_compare_json(tmp_path, monkeypatch):
    """_write hands the table and curves to sgcd.report.study; a plotting failure loses neither the table nor
    compare.json, which names the error."""
    from sgcd.report import study
    from sgcd.trainer.compare import _write

    def broken(*args, **kwargs):
        raise RuntimeError("matplotlib backend unavailable")

    monkeypatch.setattr(study, "study_curves_png", broken)
    out = tmp_path / "cmp"
    out.mkdir()
    result = _write(out, [], ["grpo", "sgcd"], [0, 1], {"grpo-s1": "exit 1"}, "sgcd compare --out cmp")
    saved = json.loads((out / "compare.json").read_text())
    assert saved == result and saved["plot_error"] == "RuntimeError: matplotlib backend unavailable"
    assert saved["missing"] == ["grpo-s0", "grpo-s1", "sgcd-s0", "sgcd-s1"] and saved["failures"]
    table = (out / "compare.md").read_text()
    assert "0 of 4 runs finished" in table and "| grpo | 0/2 |" in table and "sgcd compare --out cmp" in table
    assert "could not be drawn: RuntimeError: matplotlib backend unavailable" in table
    assert not (out / "curves.png").exists()


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
    assert result["peak_rss_gb"] >= result["peak_rss_after_rollout_gb"] > 0  # a high-water mark only grows


def _study_args(tmp_path, out, coin_overrides, *extra):
    overrides = [o for o in coin_overrides if not o.startswith("env.name=")]
    # a module:factory name, so that the `sgcd train` child processes of --jobs 2 build the same domain
    return [
        "compare",
        "--preset",
        "smoke",
        "--out",
        str(out),
        *extra,
        *overrides,
        "env.name=trainer.coin_domain:make_domain",
        "steps=2",
        "eval.every=0",
        "checkpoint.every=1",
    ]


def test_compare_jobs_shares_one_before_evaluation_and_resumes(tmp_path, capsys, coin_overrides, monkeypatch):
    import os
    from pathlib import Path

    tests_dir = str(Path(__file__).resolve().parents[1])
    monkeypatch.syspath_prepend(tests_dir)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([tests_dir, os.environ.get("PYTHONPATH", "")]))
    out = tmp_path / "study"
    args = _study_args(tmp_path, out, coin_overrides, "--algorithms", "grpo,sgcd-shuffle", "--seeds", "0,1")
    args.insert(1, "--jobs")
    args.insert(2, "2")
    assert main(args) == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    assert "2 at a time" in printed and "evaluating the starting policy once" in printed
    result = json.loads((out / "compare.json").read_text())
    assert sorted((r["algorithm"], r["seed"]) for r in result["runs"]) == [
        ("grpo", 0),
        ("grpo", 1),
        ("sgcd-shuffle", 0),
        ("sgcd-shuffle", 1),
    ]
    assert result["missing"] == [] and result["failures"] == {}
    before = json.loads((out / "eval_before.json").read_text())
    for r in result["runs"]:
        summary = json.loads(Path(r["summary"]).read_text())
        # every run reports the one shared evaluation, task by task, and its own after-evaluation per task
        assert summary["eval_before"] == before["metrics"] and summary["eval_before_tasks"] == before["tasks"]
        assert set(summary["eval_after_tasks"]) == set(before["tasks"])
    import yaml

    shuffled = yaml.safe_load((out / "sgcd-shuffle-s0" / "config.yaml").read_text())
    plain = yaml.safe_load((out / "grpo-s0" / "config.yaml").read_text())
    assert shuffled["credit"]["shuffle"] is True and shuffled["algorithm"]["name"] == "sgcd"
    assert plain["credit"]["shuffle"] is False and plain["algorithm"]["name"] == "grpo"

    # another study into the same folder is refused (it would mix two studies), naming what differs
    assert main(_study_args(tmp_path, out, coin_overrides, "--algorithms", "grpo", "--seeds", "0,1")) == 2
    assert "already holds a different study (algorithms=['grpo', 'sgcd-shuffle'])" in capsys.readouterr().err
    # --resume continues the recorded study and redoes nothing that finished
    stamps = {r["summary"]: Path(r["summary"]).stat().st_mtime_ns for r in result["runs"]}
    (out / "sgcd-shuffle-s1" / "summary.json").unlink()  # as if that run had been killed after its checkpoint
    assert main(["compare", "--out", str(out), "--resume", "--jobs", "2"]) == 0
    for path, stamp in stamps.items():
        if "sgcd-shuffle-s1" not in path:
            assert Path(path).stat().st_mtime_ns == stamp
    assert (out / "sgcd-shuffle-s1" / "summary.json").is_file()
    assert "sgcd-shuffle-s1: resuming from its last checkpoint" in capsys.readouterr().out
    # resuming with a different request names the difference
    assert main(["compare", "--out", str(out), "--resume", "--seeds", "0"]) == 2
    assert "differs in seeds" in capsys.readouterr().err


def test_before_file_from_other_settings_is_refused(tmp_path, capsys, coin_overrides):
    out = tmp_path / "study"
    assert main(_study_args(tmp_path, out, coin_overrides, "--algorithms", "grpo", "--seeds", "0")) == 0
    capsys.readouterr()
    other = tmp_path / "other"
    args = _study_args(tmp_path, other, coin_overrides, "--algorithms", "grpo", "--seeds", "0")
    args += [f"eval.before_file={out / 'eval_before.json'}", "eval.limit=1"]
    assert main(args) == 2
    printed = capsys.readouterr()
    assert "grpo-s0 failed: TrainError: eval.before_file" in printed.out
    assert "was made with different eval; delete it or unset it" in printed.out
    assert "1 run(s) failed: grpo-s0" in printed.err
