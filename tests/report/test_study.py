"""The study report (sgcd.report.study) on hand-built compare folders whose numbers are worked out by hand below."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest

from sgcd.cli import main as cli_main
from sgcd.report import build_compare_report
from sgcd.report import study as S

N = 20  # tasks t00..t19
TASKS = [f"t{i:02d}" for i in range(N)]
SEEDS = (0, 1, 2)
# tasks each run solves after training, per seed
WINS = {
    "grpo": [set(range(4))] * 3,  # 0.20, 0.20, 0.20
    "sgcd": [set(range(10)), set(range(12)), set(range(14))],  # 0.50, 0.60, 0.70
    "sgcd-shuffle": [set(range(10)), set(range(12)), set(range(14))],  # identical to sgcd: a tie
    # against grpo: seed 0 loses t00; seed 1 loses t01, t02 and gains t10; seed 2 loses t02, t03
    # -> sd-replace alone 1, grpo alone 5
    "sd-replace": [{1, 2, 3}, {0, 3, 10}, {0, 1}],
}
WRITES = {"grpo": [1.0, 1.2, 0.9], "sgcd": [1.0, 1.0, 1.0], "sgcd-shuffle": [1.0, 1.0, 1.0],
          "sd-replace": [0.1, 0.2, 0.0]}  # fmt: skip
COMMAND = (
    "sgcd compare --preset compare --algorithms grpo,sgcd,sd-replace,sgcd-shuffle --seeds 0,1,2 --out study"
)


def _run(root: Path, arm: str, seed: int, wins: set[int], writes: float | None) -> dict:
    d = root / f"{arm}-s{seed}"
    d.mkdir(parents=True)
    after = {"success": len(wins) / N, "n": float(N), "write_share": 0.5, "answer_only_share": 0.1 * seed,
             "horizon_2-4/success": 0.4 + 0.1 * seed, "horizon_2-4/n": 15.0,
             "horizon_5-8/success": 0.0, "horizon_5-8/n": 5.0}  # fmt: skip
    if writes is not None:
        after["writes_per_episode"] = writes
    summary = {
        "wall_s": 600.0 + 60 * seed,
        "success_before": 0.1,
        "success_after": after["success"],
        "eval_before": {"success": 0.1, "n": float(N)},
        "eval_after": after,
        "eval_before_tasks": {t: float(i < 2) for i, t in enumerate(TASKS)},
        "eval_after_tasks": {t: float(i in wins) for i, t in enumerate(TASKS)},
    }
    (d / "summary.json").write_text(json.dumps(summary))
    rows = [{"step": 0, "eval/success": 0.1}]
    for step in range(1, 5):
        row = {"step": step, "reward/success_rate": 0.1 * step, "tools/writes_per_episode": [1.0, 0.5, 0.0, 0.9][step - 1],
               "tools/write_share": 0.5, "tools/answer_only_share": 0.0}  # fmt: skip
        if arm.startswith("sgcd"):
            row.update(
                {"credit/w_std": 0.1 * step, "credit/ref_sensitivity": 0.02, "credit/noise_floor_std": 1e-6}
            )
        rows.append(row)
    rows.append({"step": 4, "tools/writes_per_episode": 0.1})  # step 4 re-logged: the last value counts
    rows.append({"step": 4, "eval/success": after["success"]})
    (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return {"algorithm": arm, "seed": seed, "run_dir": str(d), "summary": str(d / "summary.json"),
            "metrics": str(d / "metrics.jsonl"), "wall_s": summary["wall_s"]}  # fmt: skip


def make_study(root: Path, wins: dict = WINS, writes: dict = WRITES) -> Path:
    runs = [
        _run(root, arm, s, wins[arm][s], writes[arm][s] if writes else None) for arm in wins for s in SEEDS
    ]
    doc = {"algorithms": list(wins), "seeds": list(SEEDS), "runs": runs, "command": COMMAND}
    (root / "compare.json").write_text(json.dumps(doc))
    return root


def _by_key(an: S.Analysis) -> dict[str, dict]:
    return {c["claim"].key: c for c in an.comparisons}


def test_t_quantiles_match_the_t_distribution():
    # P(0 < T < q) = 0.475 for q = t(0.975, df): Simpson's rule on the t density (4000 intervals); the table
    # has 4 decimals, so the integral is within 1e-5 of 0.475. Above 30 dof the expansion: t(0.975, 40) = 2.0211,
    # t(0.975, 60) = 2.0003, t(0.975, 120) = 1.9799 (standard tables).
    def density(x: float, df: int) -> float:
        c = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
        return math.exp(c - (df + 1) / 2 * math.log1p(x * x / df))

    for df in range(1, 31):
        q, n = S.t975(df), 4000
        h = q / n
        area = (
            h / 3 * sum((1 if i in (0, n) else 4 if i % 2 else 2) * density(i * h, df) for i in range(n + 1))
        )
        assert area == pytest.approx(0.475, abs=1e-5), df
    for df, q in ((40, 2.0211), (60, 2.0003), (120, 1.9799)):
        assert S.t975(df) == pytest.approx(q, abs=1e-4)


def test_mean_ci_of_three_values():
    # 0.5, 0.6, 0.7: mean 0.6, s = 0.1, half width t(0.975, 2) * s / sqrt(3) = 4.3027 * 0.1 / 1.73205 = 0.24842
    m, (lo, hi) = S.mean_ci([0.5, 0.6, 0.7])
    assert (
        m == pytest.approx(0.6)
        and lo == pytest.approx(0.35158, abs=1e-5)
        and hi == pytest.approx(0.84842, abs=1e-5)
    )
    assert S.mean_ci([0.4]) == (0.4, None) and S.mean_ci([]) == (None, None)


@pytest.mark.parametrize(
    "ci, direction, expected",
    [
        ((0.01, 0.05), +1, "reproduced"),  # excludes 0 on the paper's side
        ((-0.05, -0.01), -1, "reproduced"),  # the paper says A < B
        ((-0.05, -0.01), +1, "not reproduced"),  # excludes 0 on the other side
        ((0.01, 0.05), -1, "not reproduced"),
        ((-0.02, 0.02), +1, "not reproduced"),  # inside the +-0.03 equivalence margin
        ((-0.03, 0.03), -1, "not reproduced"),  # the margin's edges count as inside
        ((-0.02, 0.05), +1, "inconclusive"),  # spans 0 and leaves the margin
        ((0.0, 0.08), +1, "inconclusive"),  # touches 0: does not exclude it
        (None, +1, "inconclusive"),  # no CI at all
    ],
)
def test_verdict_rule(ci, direction, expected):
    assert S.verdict(ci, direction, 0.03) == expected


def test_mcnemar_of_the_constructed_counts():
    # 1 vs 5 discordant: 2 * P[Binomial(6, 1/2) <= 1] = 2 * (1 + 6) / 64 = 0.21875; 24 vs 0: 2 / 2**24 = 2**-23
    from sgcd.eval.stats import mcnemar_exact

    assert mcnemar_exact(1, 5) == pytest.approx(0.21875) and mcnemar_exact(24, 0) == pytest.approx(2.0**-23)


def test_full_study_numbers_and_verdicts(tmp_path):
    an = S.analyse(S.load_study(make_study(tmp_path)))
    arms = {a["arm"]: a for a in an.arms}
    sg = arms["sgcd"]
    assert sg["n"] == 3 and sg["success"] == pytest.approx(0.6)
    assert sg["ci"] == pytest.approx((0.35158, 0.84842), abs=1e-5)  # the three-value interval above
    assert sg["horizon_2-4"] == pytest.approx(0.5) and sg["horizon_2-4/n"] == 15.0  # mean of 0.4, 0.5, 0.6
    assert sg["end/answer_only_share"] == pytest.approx(0.1)  # mean of 0.0, 0.1, 0.2
    # training writes per step 1.0, 0.5, 0.0 and step 4 re-logged 0.9 -> 0.1: mean (1.0 + 0.5 + 0.0 + 0.1) / 4
    assert sg["train/writes_per_episode"] == pytest.approx(0.4)
    assert sg["credit/w_std"] == pytest.approx(0.25)  # mean of 0.1 .. 0.4
    assert arms["grpo"]["credit/w_std"] is None  # GRPO logs no credit weights: n/a, not 0
    assert sg["wall_mean"] == pytest.approx(660.0) and sg["wall_total"] == pytest.approx(
        1980.0
    )  # 600, 660, 720

    c = _by_key(an)
    # claim 1: per seed 0.3, 0.4, 0.5 -> +0.4 +- 0.24842; task level: sgcd alone 6 + 8 + 10 = 24, grpo alone 0
    c1 = c["claim 1"]
    assert c1["seed_delta"] == pytest.approx(0.4) and c1["seed_ci"] == pytest.approx(
        (0.15158, 0.64842), abs=1e-5
    )
    t = c1["tasks"]
    assert (t["a_won"], t["b_won"], t["n_seeds"], t["n_tasks"]) == (24, 0, 3, N)
    assert t["delta"] == pytest.approx(0.4) and t["p"] == pytest.approx(2.0**-23)
    assert t["ci"][0] > 0 and c1["verdict"] == "reproduced"  # clear win
    # control: identical outcomes -> CI [0, 0], inside the margin: the shuffled credit does as well
    ctl = c["control"]
    assert (
        ctl["tasks"]["ci"] == (0.0, 0.0) and ctl["tasks"]["p"] == 1.0 and ctl["verdict"] == "not reproduced"
    )
    # claim 2a: sd-replace alone 1, grpo alone 5 over 60 pairs -> -4/60; McNemar 0.21875; the CI spans 0
    c2a = c["claim 2a"]
    assert c2a["tasks"]["delta"] == pytest.approx(-4 / 60) and c2a["tasks"]["p"] == pytest.approx(0.21875)
    assert c2a["ci"][0] < -0.03 and c2a["ci"][1] >= 0 and c2a["verdict"] == "inconclusive"
    # claim 2b: writes per episode 0.1 - 1.0, 0.2 - 1.2, 0.0 - 0.9 = -0.9, -1.0, -0.9: mean -0.93333,
    # s = 0.057735, half width 4.3027 * 0.057735 / sqrt(3) = 0.143423 -> [-1.07676, -0.78991]
    c2b = c["claim 2b"]
    assert c2b["metric"] == "writes_per_episode" and c2b["tasks"] is None
    assert c2b["seed_delta"] == pytest.approx(-0.93333, abs=1e-5)
    assert c2b["ci"] == pytest.approx((-1.07676, -0.78991), abs=1e-5) and c2b["verdict"] == "reproduced"
    assert an.claim2 == "inconclusive"  # 2b reproduced, 2a inconclusive

    md = S.render_markdown(an)
    assert an.verdict_lines[0] in md
    assert (
        an.verdict_lines[0].startswith("claim 1 (SGCD > GRPO): reproduced: +0.400 [+0.2")
        and "McNemar p = 1.2e-07 (sgcd alone 24, grpo alone 0), 3 seeds x 20 tasks" in an.verdict_lines[0]
    )
    assert "over seeds +0.400 [+0.152, +0.648] (t, 2 dof)" in an.verdict_lines[0]
    assert (
        "| sgcd | 3/3 | 0.100 | 0.600 | [0.352, 0.848] | s0: 0.500, s1: 0.600, s2: 0.700 | 0.500 (n=15) |"
        in md
    )
    assert "12 of 12 runs finished" in md and COMMAND in md


def test_clear_loss_is_not_reproduced(tmp_path):
    # swap the arms: grpo solves 10/12/14 tasks, sgcd 4 -> the CI excludes 0 below: not reproduced
    wins = {"grpo": WINS["sgcd"], "sgcd": WINS["grpo"]}
    an = S.analyse(S.load_study(make_study(tmp_path, wins, {"grpo": [1.0] * 3, "sgcd": [1.0] * 3})))
    c1 = _by_key(an)["claim 1"]
    assert c1["tasks"]["delta"] == pytest.approx(-0.4) and c1["tasks"]["ci"][1] < 0
    assert c1["verdict"] == "not reproduced"
    # arms the study did not run: no seeds, no CI, inconclusive (said so, not a crash)
    c2b = _by_key(an)["claim 2b"]
    assert c2b["seeds"] == [] and c2b["verdict"] == "inconclusive"
    assert "no seed both arms finished" in S.verdict_line(c2b)


def test_old_runs_fall_back_to_write_share(tmp_path):
    root = make_study(tmp_path)
    p = root / "grpo-s1" / "summary.json"
    doc = json.loads(p.read_text())
    del doc["eval_after"]["writes_per_episode"]
    p.write_text(json.dumps(doc))
    c2b = _by_key(S.analyse(S.load_study(root)))["claim 2b"]
    # write_share is 0.5 everywhere: differences 0, CI [0, 0] inside the 0.03 margin
    assert c2b["metric"] == "write_share" and c2b["verdict"] == "not reproduced"
    assert "write share (writes per episode not logged)" in S.verdict_line(c2b)


def test_partial_study(tmp_path):
    root = make_study(tmp_path)
    (root / "sgcd-s2" / "summary.json").unlink()  # still running: metrics, no summary
    shutil.rmtree(root / "sd-replace-s1")  # never started
    doc = json.loads((root / "compare.json").read_text())
    doc["runs"] = [
        r for r in doc["runs"] if (r["algorithm"], r["seed"]) != ("grpo", 2)
    ]  # finished, not yet listed
    (root / "compare.json").write_text(json.dumps(doc))
    an = S.analyse(S.load_study(root))
    assert an.status_lines[0] == "10 of 12 runs finished (4 arms x 3 seeds)."
    assert "unfinished: sgcd seed 2: no summary.json yet (metrics up to step 4)" in an.status_lines
    assert any(line.startswith("missing: sd-replace seed 1: no folder") for line in an.status_lines)
    arms = {a["arm"]: a for a in an.arms}
    assert arms["grpo"]["n"] == 3 and arms["sgcd"]["n"] == 2 and arms["sd-replace"]["n"] == 2
    # claim 1 on seeds 0, 1: diffs 0.3, 0.4 -> 0.35 +- 12.7062 * 0.070711 / sqrt(2) = 0.63531; 6 + 8 = 14 vs 0
    c1 = _by_key(an)["claim 1"]
    assert c1["seeds"] == [0, 1] and c1["seed_ci"] == pytest.approx((-0.28531, 0.98531), abs=1e-5)
    assert c1["tasks"]["p"] == pytest.approx(2.0**-13)
    md = S.render_markdown(an)
    assert "| sgcd | 2/3 |" in md and "| sd-replace | 2/3 |" in md and "10 of 12 runs finished" in md


def test_no_finished_run_still_renders(tmp_path):
    root = make_study(tmp_path)
    for p in root.glob("*/summary.json"):
        p.unlink()
    an = S.analyse(S.load_study(root))
    assert {c["verdict"] for c in an.comparisons} == {"inconclusive"}
    assert "| grpo | 0/3 | n/a | n/a | (no CI) | - |" in S.render_markdown(an)


def test_html_page_and_cli_markdown(tmp_path, capsys):
    root = make_study(tmp_path / "study")
    html = build_compare_report(root).html_path.read_text()
    assert "claim 1 (SGCD &gt; GRPO): reproduced: +0.400" in html  # verdict line, escaped
    assert "<th>ref_sensitivity</th>" in html and "s0: 0.500, s1: 0.600, s2: 0.700" in html
    assert 'alt="study curves" src="data:image/png;base64,' in html  # self-contained
    assert (root / "report_figures" / "study_curves.png").is_file()

    md = tmp_path / "docs" / "results.md"
    assert cli_main(["report", str(root), "--markdown", str(md), "--quiet"]) == 0
    out = capsys.readouterr().out
    text = md.read_text()
    assert (tmp_path / "docs" / "study_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "](study_curves.png)" in text and COMMAND in text and "claim 2 (" in out
    png = tmp_path / "figs" / "c.png"
    assert cli_main(["report", str(root), "--markdown", str(md), "--curves", str(png), "--quiet"]) == 0
    assert png.is_file() and "](../figs/c.png)" in md.read_text()
    capsys.readouterr()
    assert (
        cli_main(["report", str(root / "sgcd-s0"), "--markdown", str(md)]) == 2
    )  # a run folder, not a study
    assert "--markdown needs a compare folder" in capsys.readouterr().err


def test_a_plotting_failure_keeps_the_tables(tmp_path, monkeypatch):
    root = make_study(tmp_path)

    def broken(*args, **kwargs):
        raise RuntimeError("no display\nsecond line")

    monkeypatch.setattr(S, "study_curves_png", broken)
    (root / "compare.md").write_text("stale\n")
    an, curves = S.write_study(root, root / "compare.md", root / "curves.png")
    text = (root / "compare.md").read_text()
    assert (
        curves is None
        and not (root / "curves.png").exists()
        and an.curves_error == "RuntimeError: no display"
    )
    assert (
        "| sgcd | 3/3 |" in text
        and "The learning curves could not be drawn: RuntimeError: no display" in text
    )
    assert "](curves.png)" not in text and "stale" not in text


def test_the_page_does_not_repeat_what_sgcd_compare_wrote(tmp_path):
    """`sgcd compare` writes compare.md and curves.png through write_study; the page shows that analysis once
    (its study section), not again from the files."""
    root = make_study(tmp_path / "study")
    an, curves = S.write_study(root, root / "compare.md", root / "curves.png")
    assert curves == root / "curves.png" and "](curves.png)" in (root / "compare.md").read_text()
    result = build_compare_report(root)
    html = result.html_path.read_text()
    assert html.count("claim 1 (SGCD &gt; GRPO): reproduced") == 1
    assert html.count('src="data:image/png;base64,') == 2  # the study's curves and the training diagnostics
    assert {p.name for p in result.png_paths} == {"study_curves.png", "study_diagnostics.png"}
    assert 'id="table"' not in html  # no hand-written table: no empty "Table" section
