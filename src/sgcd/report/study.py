"""The study report (issue 17): a finished or partial `sgcd compare` folder -> per-arm tables, paired tests and
one verdict line per claim, as Markdown (docs/results.md) and as tables the compare HTML page shows. The one
summary of a study: `sgcd compare` writes DIR/compare.md and DIR/curves.png through write_study, and the compare
page shows the same analysis and curves (plus DIAGNOSTIC_PANELS).

Input: DIR/compare.json ("algorithms", "seeds", "runs" [{algorithm, seed, run_dir, ...}], optional "command"),
and per run RUN_DIR/summary.json (eval_before/eval_after, eval_after_tasks {task: 0|1}, wall_s) and
RUN_DIR/metrics.jsonl. A planned (arm, seed) that compare.json does not list is also looked for in
DIR/<arm>-s<seed>/ (a study interrupted between a run's end and compare.json's update). A run without
summary.json is "unfinished" (its curves are drawn, it enters no table); one without a folder is "missing".

Statistics (all pure functions of plain numbers; numbers are shown with 3 decimals):
- Over seeds: mean and a 95% t-interval, mean +- t(0.975, n-1) * s / sqrt(n) with s the sample standard
  deviation. t quantiles come from T975 (the standard table, df 1..30, 4 decimals; a test checks each against a
  numerical integral of the t density); above 30 dof the Cornish-Fisher expansion around z = 1.959964.
  One seed: no interval.
- Paired comparison of arm A against arm B ("A - B"), on the seeds both finished (same seed = same task order
  and rollout seeds):
  * seed level: the mean of per-seed differences of held-out success with its t-interval (n-1 dof);
  * task level, pooling (task, seed) pairs over the tasks every paired run evaluated: the per-task difference
    d_t = mean over seeds of A[t, s] - B[t, s]; a paired percentile bootstrap 95% CI of mean(d_t) resampling
    tasks (the seeds of a task stay together), 10,000 draws, RNG seed 0 (`sgcd.eval.stats.bootstrap_ci`); and
    McNemar's exact two-sided p over the discordant (task, seed) pairs (`mcnemar_exact`; pooling seeds treats
    pairs as independent, which the bootstrap does not need to).
  * writes per episode (eval_after "writes_per_episode"; runs without it fall back to "write_share", the
    share of episodes with >= 1 successful state-changing call, for the whole comparison) exist per run only,
    not per task: seed level only.
- Verdict per comparison (VERDICT_RULE): with the paper's direction D (+1: A > B, -1: A < B) and the CI
  [lo, hi] of A - B (the task-level bootstrap CI for success; the seed-level t CI when task outcomes are
  missing, and for writes), "reproduced" when D * lo > 0 (the CI excludes 0 in the paper's direction);
  "not reproduced" when D * hi < 0 (it excludes 0 the other way) or -m <= lo and hi <= m (the whole CI lies
  inside the equivalence margin m of EQUIVALENCE_MARGIN: 0.03 success, 0.1 writes per episode, 0.03 write
  share); otherwise "inconclusive" (also when there is no CI: fewer than 2 seeds and no task outcomes).
  Claim 2 as a whole is reproduced when both its parts are, not reproduced when either part is not, else
  inconclusive.
"""

from __future__ import annotations

import json
import math
import os
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sgcd.eval.stats import bootstrap_ci, mcnemar_exact
from sgcd.files import write_atomic_text
from sgcd.report.rundir import RunDirError, read_metrics

# two-sided 95% t quantiles t(0.975, df), df = 1..30
T975 = (12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060, 2.2622, 2.2281,
        2.2010, 2.1788, 2.1604, 2.1448, 2.1314, 2.1199, 2.1098, 2.1009, 2.0930, 2.0860,
        2.0796, 2.0739, 2.0687, 2.0639, 2.0595, 2.0555, 2.0518, 2.0484, 2.0452, 2.0423)  # fmt: skip

EQUIVALENCE_MARGIN = {"success": 0.03, "writes_per_episode": 0.1, "write_share": 0.03}
VERDICT_RULE = (
    "reproduced: the 95% CI of the difference excludes 0 in the paper's direction; not reproduced: it "
    "excludes 0 in the other direction, or lies entirely inside the equivalence margin (+-0.03 success, "
    "+-0.1 writes per episode, +-0.03 write share); otherwise inconclusive. Success uses the task-level "
    "paired bootstrap CI ((task, seed) pairs, tasks resampled), writes the seed-level t CI."
)
HORIZON_BINS = ("1", "2-4", "5-8", "9+")
SHUFFLE_ARMS = ("sgcd-shuffle", "sgcd_shuffle", "sgcd+shuffle", "shuffle")


@dataclass(frozen=True)
class Claim:
    key: str  # "claim 1", "control", "claim 2a", ...
    text: str  # what the paper says, in the direction of `direction`
    a: str
    b: str
    metric: str  # "success" | "writes"
    direction: int  # +1: the paper says A > B; -1: A < B


CLAIMS = (
    Claim("claim 1", "SGCD > GRPO", "sgcd", "grpo", "success", +1),
    Claim("control", "SGCD > SGCD with shuffled credit", "sgcd", "sgcd-shuffle", "success", +1),
    Claim("claim 2a", "SD-replace < GRPO on success", "sd-replace", "grpo", "success", -1),
    Claim("claim 2b", "SD-replace < GRPO on write calls", "sd-replace", "grpo", "writes", -1),
)


@dataclass
class Run:
    arm: str
    seed: int
    run_dir: Path
    status: str  # "finished" | "unfinished" | "missing"
    summary: dict = field(default_factory=dict)
    metrics: list[dict] = field(default_factory=list)
    note: str = ""

    @property
    def after(self) -> dict:
        return self.summary.get("eval_after") or {}

    @property
    def tasks_after(self) -> dict[str, float]:
        t = self.summary.get("eval_after_tasks")
        return {str(k): float(v) for k, v in t.items()} if isinstance(t, dict) else {}


@dataclass
class Study:
    root: Path
    arms: list[str]
    seeds: list[int]
    runs: list[Run]
    command: str = ""
    notes: list[str] = field(default_factory=list)

    def finished(self, arm: str) -> list[Run]:
        return sorted((r for r in self.runs if r.arm == arm and r.status == "finished"), key=lambda r: r.seed)

    def not_finished(self) -> list[Run]:
        return [r for r in self.runs if r.status != "finished"]


# ---------------------------------------------------------------------------------------------- statistics


def t975(df: int) -> float:
    """t(0.975, df): the table up to 30 dof, the Cornish-Fisher expansion above (error < 1e-4)."""
    if df < 1:
        raise ValueError(f"t quantile needs df >= 1, got {df}")
    if df <= len(T975):
        return T975[df - 1]
    z = 1.959964
    return (
        z
        + (z**3 + z) / (4 * df)
        + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)
        + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * df**3)
    )


def mean_ci(values: list[float]) -> tuple[float | None, tuple[float, float] | None]:
    """(mean, 95% t-interval over the values) ; (None, None) for no values, no interval for one."""
    if not values:
        return None, None
    m = statistics.fmean(values)
    if len(values) < 2:
        return m, None
    half = t975(len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))
    return m, (m - half, m + half)


def verdict(ci: tuple[float, float] | None, direction: int, margin: float) -> str:
    """The rule in VERDICT_RULE, on the CI of A - B and the paper's direction (+1: A > B, -1: A < B)."""
    if ci is None:
        return "inconclusive"
    lo, hi = ci
    near, far = sorted((direction * lo, direction * hi))  # the CI of D * (A - B): the paper says > 0
    if near > 0:
        return "reproduced"
    if far < 0 or (-margin <= lo and hi <= margin):
        return "not reproduced"
    return "inconclusive"


def paired_tasks(a: list[Run], b: list[Run], n_boot: int = 10_000, seed: int = 0) -> dict[str, Any] | None:
    """Task-level comparison of A - B over the seeds both finished and the tasks all those runs evaluated."""
    by_seed_b = {r.seed: r for r in b}
    pairs = [(ra.tasks_after, by_seed_b[ra.seed].tasks_after) for ra in a if ra.seed in by_seed_b]
    if not pairs or any(not ta or not tb for ta, tb in pairs):
        return None
    tasks = sorted(set.intersection(*(set(ta) & set(tb) for ta, tb in pairs)))
    if not tasks:
        return None
    d_task = [statistics.fmean(ta[t] - tb[t] for ta, tb in pairs) for t in tasks]
    a_won = sum(1 for ta, tb in pairs for t in tasks if round(ta[t]) == 1 and round(tb[t]) == 0)
    b_won = sum(1 for ta, tb in pairs for t in tasks if round(ta[t]) == 0 and round(tb[t]) == 1)
    return {
        "delta": statistics.fmean(d_task),
        "ci": bootstrap_ci(d_task, n_boot=n_boot, seed=seed),
        "p": mcnemar_exact(a_won, b_won),
        "a_won": a_won,
        "b_won": b_won,
        "n_seeds": len(pairs),
        "n_tasks": len(tasks),
    }


def writes_metric(runs: list[Run]) -> str:
    """ "writes_per_episode" when every run has it, else "write_share" (older runs)."""
    ok = runs and all(_num(r.after.get("writes_per_episode")) is not None for r in runs)
    return "writes_per_episode" if ok else "write_share"


def compare(study: Study, claim: Claim, n_boot: int = 10_000) -> dict[str, Any]:
    """One paired comparison: per-seed differences (t CI), the task-level test for success, and the verdict."""
    b_arm = claim.b
    if claim.b == "sgcd-shuffle":
        b_arm = next((x for x in SHUFFLE_ARMS if x in study.arms), claim.b)
    a, b = study.finished(claim.a), study.finished(b_arm)
    seeds = sorted({r.seed for r in a} & {r.seed for r in b})
    a = [r for r in a if r.seed in seeds]
    b = [r for r in b if r.seed in seeds]
    metric = "success" if claim.metric == "success" else writes_metric(a + b)
    key = "success" if metric == "success" else metric
    per_seed = [_num(ra.after.get(key)) for ra in a]
    per_seed_b = [_num(rb.after.get(key)) for rb in b]
    diffs = [x - y for x, y in zip(per_seed, per_seed_b) if x is not None and y is not None]
    mean, seed_ci = mean_ci(diffs)
    out: dict[str, Any] = {"claim": claim, "a": claim.a, "b": b_arm, "metric": metric, "seeds": seeds,
                           "seed_delta": mean, "seed_ci": seed_ci, "diffs": diffs, "tasks": None}  # fmt: skip
    ci = seed_ci
    if metric == "success":
        out["tasks"] = paired_tasks(a, b, n_boot=n_boot)
        if out["tasks"] is not None:
            ci = tuple(out["tasks"]["ci"])
    out["ci"] = ci
    out["verdict"] = verdict(ci, claim.direction, EQUIVALENCE_MARGIN[metric])
    return out


def claim2_verdict(parts: list[str]) -> str:
    if parts and all(v == "reproduced" for v in parts):
        return "reproduced"
    return "not reproduced" if "not reproduced" in parts else "inconclusive"


# ---------------------------------------------------------------------------------------------- reading


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None


def _resolve(base: Path, p: Any) -> Path:
    path = Path(str(p)).expanduser()
    return path if path.is_absolute() else base / path


def _read_run(arm: str, seed: int, run_dir: Path) -> Run:
    run = Run(arm, seed, run_dir, "missing")
    if not run_dir.is_dir():
        run.note = f"no folder {run_dir}"
        return run
    metrics = run_dir / "metrics.jsonl"
    if metrics.is_file():
        try:
            run.metrics = read_metrics(metrics)
        except (RunDirError, OSError) as exc:
            run.note = f"metrics unreadable ({exc})"
    summary = run_dir / "summary.json"
    if summary.is_file():
        try:
            doc = json.loads(summary.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            run.status, run.note = "unfinished", f"summary.json unreadable ({exc})"
            return run
        if isinstance(doc, dict) and isinstance(doc.get("eval_after"), dict):
            run.status, run.summary = "finished", doc
            return run
    run.status = "unfinished"
    steps = [r["step"] for r in run.metrics]
    run.note = run.note or (
        f"no summary.json yet (metrics up to step {max(steps)})" if steps else "no summary.json"
    )
    return run


def read_compare_json(root: Path) -> dict[str, Any]:
    """DIR/compare.json as a dict; a RunDirError (one line) when it is missing, unreadable or not an object."""
    try:
        doc = json.loads((root / "compare.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise RunDirError(f"{root / 'compare.json'}: cannot read ({exc})") from None
    if not isinstance(doc, dict):
        raise RunDirError(f"{root / 'compare.json'}: expected a JSON object")
    return doc


def load_study(root: Path | str) -> Study:
    """Read DIR/compare.json and every planned run; never raises for a missing or unfinished run."""
    root = Path(root)
    doc = read_compare_json(root)
    listed: dict[tuple[str, int], Path] = {}
    for item in doc.get("runs") or []:
        if isinstance(item, dict) and isinstance(item.get("seed"), int) and item.get("algorithm") is not None:
            path = item.get("run_dir") or item.get("path")
            if path is not None:
                listed[(str(item["algorithm"]), item["seed"])] = _resolve(root, path)
    arms = [str(a) for a in doc.get("algorithms") or []] or list(dict.fromkeys(a for a, _ in listed))
    seeds = [s for s in doc.get("seeds") or [] if isinstance(s, int)] or sorted({s for _, s in listed})
    planned = [(a, s) for a in arms for s in seeds] + [
        k for k in listed if k[0] not in arms or k[1] not in seeds
    ]
    runs = [_read_run(a, s, listed.get((a, s), root / f"{a}-s{s}")) for a, s in planned]
    command = doc.get("command")
    if isinstance(command, list):
        command = " ".join(map(str, command))
    study = Study(root, arms, seeds, runs, str(command) if command else "")
    before = {round(v, 6) for r in runs if r.status == "finished" if (v := _num(r.summary.get("success_before"))) is not None}  # fmt: skip
    if len(before) > 1:
        study.notes.append(
            f"held-out success before training differs between runs ({', '.join(f'{v:.3f}' for v in sorted(before))}):"
            " the runs did not all start from the same warm start, or were evaluated on different tasks"
        )
    return study


# ---------------------------------------------------------------------------------------------- aggregates


def _train_mean(run: Run, key: str) -> float | None:
    """Mean over training steps of `key` (a re-logged step keeps its last value); None when never logged."""
    by_step = {r["step"]: r[key] for r in run.metrics if key in r}
    return statistics.fmean(by_step.values()) if by_step else None


def _mean(values: list[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return statistics.fmean(vals) if vals else None


def arm_stats(study: Study, arm: str) -> dict[str, Any]:
    runs = study.finished(arm)
    after = [_num(r.after.get("success")) for r in runs]
    mean, ci = mean_ci([v for v in after if v is not None])
    out: dict[str, Any] = {
        "arm": arm,
        "n": len(runs),
        "planned": sum(1 for r in study.runs if r.arm == arm),
        "per_seed": [(r.seed, v) for r, v in zip(runs, after)],
        "success": mean,
        "ci": ci,
        "before": _mean([_num((r.summary.get("eval_before") or {}).get("success")) for r in runs]),
        "wall_mean": _mean([_num(r.summary.get("wall_s")) for r in runs]),
        "wall_total": sum(v for r in runs if (v := _num(r.summary.get("wall_s"))) is not None),
    }
    for b in HORIZON_BINS:
        out[f"horizon_{b}"] = _mean([_num(r.after.get(f"horizon_{b}/success")) for r in runs])
        ns = [v for r in runs if (v := _num(r.after.get(f"horizon_{b}/n"))) is not None]
        out[f"horizon_{b}/n"] = ns[0] if ns else None
    for key in ("writes_per_episode", "write_share", "answer_only_share"):
        out[f"end/{key}"] = _mean([_num(r.after.get(key)) for r in runs])
        out[f"train/{key}"] = _mean([_train_mean(r, f"tools/{key}") for r in runs])
    for key in ("w_std", "ref_sensitivity", "noise_floor_std"):
        out[f"credit/{key}"] = _mean([_train_mean(r, f"credit/{key}") for r in runs])
    return out


@dataclass
class Analysis:
    study: Study
    arms: list[dict[str, Any]]
    comparisons: list[dict[str, Any]]
    claim2: str
    tables: list[tuple[str, list[str], list[list[str]]]]  # (title, header, rows)
    verdict_lines: list[str]
    status_lines: list[str]
    curves_error: str = ""  # set by write_study when the curves could not be drawn


def analyse(study: Study, n_boot: int = 10_000) -> Analysis:
    arms = [arm_stats(study, a) for a in study.arms]
    comps = [compare(study, c, n_boot=n_boot) for c in CLAIMS]
    parts = [c["verdict"] for c in comps if c["claim"].key.startswith("claim 2")]
    claim2 = claim2_verdict(parts)
    lines = [verdict_line(c) for c in comps]
    lines.append(f"claim 2 (SD-replace collapses write calls and success): {claim2} (2a and 2b together)")
    return Analysis(study, arms, comps, claim2, tables(arms), lines, status_lines(study))


# ---------------------------------------------------------------------------------------------- text


def f3(v: float | None, sign: bool = False) -> str:
    if v is None:
        return "n/a"
    return f"{v:+.3f}" if sign else f"{v:.3f}"


def _ci(ci: tuple[float, float] | None, sign: bool = False) -> str:
    return f"[{f3(ci[0], sign)}, {f3(ci[1], sign)}]" if ci else "(no CI)"


def _p(p: float) -> str:
    return f"{p:.2g}" if p >= 0.001 else f"{p:.1e}"


def verdict_line(c: dict[str, Any]) -> str:
    claim: Claim = c["claim"]
    head = f"{claim.key} ({claim.text}): {c['verdict']}: "
    n = len(c["seeds"])
    seed_part = (
        f"over seeds {f3(c['seed_delta'], True)} {_ci(c['seed_ci'], True)} (t, {n - 1} dof)"
        if c["seed_delta"] is not None
        else "no seed both arms finished"
    )
    t = c["tasks"]
    if t is not None:
        return (
            head + f"{f3(t['delta'], True)} {_ci(t['ci'], True)} (paired bootstrap over tasks), McNemar p = "
            f"{_p(t['p'])} ({c['a']} alone {t['a_won']}, {c['b']} alone {t['b_won']}), {t['n_seeds']} seeds x "
            f"{t['n_tasks']} tasks; {seed_part}"
        )
    what = {"success": "held-out success", "writes_per_episode": "writes per episode"}.get(
        c["metric"], "write share (writes per episode not logged)"
    )
    return (
        head
        + f"{what} {c['a']} - {c['b']} {seed_part}, {n} seeds"
        + ("" if c["metric"] != "success" else " (no per-task outcomes)")
    )


def status_lines(study: Study) -> list[str]:
    n_fin = sum(r.status == "finished" for r in study.runs)
    lines = [
        f"{n_fin} of {len(study.runs)} runs finished ({len(study.arms)} arms x {len(study.seeds)} seeds)."
    ]
    lines += [f"{r.status}: {r.arm} seed {r.seed}: {r.note}" for r in study.not_finished()]
    walls = [
        v for r in study.runs if r.status == "finished" if (v := _num(r.summary.get("wall_s"))) is not None
    ]
    if walls:
        lines.append(f"Run time: {sum(walls) / 3600:.2f} h summed over {len(walls)} finished runs.")
    return lines + study.notes


def tables(arms: list[dict[str, Any]]) -> list[tuple[str, list[str], list[list[str]]]]:
    def seeds(a):
        return ", ".join(f"s{s}: {f3(v)}" for s, v in a["per_seed"]) or "-"

    def hb(a, b):
        n = a[f"horizon_{b}/n"]
        return f3(a[f"horizon_{b}"]) + (f" (n={n:.0f})" if n is not None else "")

    present = [b for b in HORIZON_BINS if any(a[f"horizon_{b}"] is not None for a in arms)]
    t1 = (
        "Held-out success after training (mean over seeds, 95% t CI over seeds; per horizon bin of the gold "
        "solution, mean over seeds, n = tasks in the bin)",
        ["arm", "seeds", "before", "after", "95% CI", "per seed", *(f"horizon {b}" for b in present)],
        [[a["arm"], f"{a['n']}/{a['planned']}", f3(a["before"]), f3(a["success"]), _ci(a["ci"]), seeds(a),
          *(hb(a, b) for b in present)] for a in arms],
    )  # fmt: skip
    t2 = (
        "Tool use at the end (held-out evaluation after training) and over training (mean over steps, then over "
        "seeds): write calls per episode, share of episodes with a write, share of answer-only episodes",
        ["arm", "writes/ep end", "write share end", "answer-only end", "writes/ep train", "write share train",
         "answer-only train"],
        [[a["arm"], *(f3(a[f"{w}/{k}"]) for w in ("end", "train")
                      for k in ("writes_per_episode", "write_share", "answer_only_share"))] for a in arms],
    )  # fmt: skip
    t3 = (
        "Credit diagnostics (mean over training steps, then over seeds) and wall time",
        ["arm", "w_std", "ref_sensitivity", "noise_floor_std", "wall per run", "wall total"],
        [[a["arm"], *(_g(a[f"credit/{k}"]) for k in ("w_std", "ref_sensitivity", "noise_floor_std")),
          _dur(a["wall_mean"]), _dur(a["wall_total"] if a["n"] else None)] for a in arms],
    )  # fmt: skip
    return [t1, t2, t3]


def _g(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.3g}"


def _dur(s: float | None) -> str:
    if s is None:
        return "n/a"
    m, sec = divmod(round(s), 60)
    h, m = divmod(m, 60)
    return f"{h} h {m:02d} min" if h else f"{m} min {sec:02d} s"


def md_table(header: list[str], rows: list[list[str]]) -> str:
    def esc(x: str) -> str:
        return str(x).replace("|", "\\|")

    lines = ["| " + " | ".join(map(esc, header)) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(map(esc, r)) + " |" for r in rows]
    return "\n".join(lines)


def render_markdown(an: Analysis, curves: Path | None = None, md_path: Path | None = None) -> str:
    """The study as Markdown: status, verdicts, the three tables, the curves (linked relative to md_path)."""
    s = an.study
    out = [f"# Study: {s.root.resolve().name}", ""]
    if s.command:
        out += ["Reproduce with:", "", "```", s.command, "```", ""]
    out += [*(f"- {line}" for line in an.status_lines), "", "## Verdicts", ""]
    out += [*(f"- {line}" for line in an.verdict_lines), "", f"Rule: {VERDICT_RULE}", ""]
    for title, header, rows in an.tables:
        out += [f"**{title}**", "", md_table(header, rows), ""]
    if curves is not None:
        rel = os.path.relpath(curves, md_path.parent) if md_path is not None else str(curves)
        out += [f"![learning curves: held-out and training success, writes per episode]({rel})", ""]
    return "\n".join(out)


# ---------------------------------------------------------------------------------------------- curves

CURVE_PANELS = (
    ("held-out success (evaluated steps)", ("eval/success",)),
    ("training success (sampled groups)", ("reward/success_rate",)),
    ("write calls per episode (training)", ("tools/writes_per_episode", "tools/write_share")),
)
# Training diagnostics per arm, drawn the same way (the compare page shows them below the study's curves).
DIAGNOSTIC_PANELS = (
    ("training reward (mean)", ("reward/mean",)),
    ("answer-only episodes (training)", ("tools/answer_only_share",)),
    ("credit weight std", ("credit/w_std",)),
    ("policy entropy", ("policy/entropy",)),
)
PANEL_TITLES = {"tools/write_share": "write share of episodes (training)"}  # a panel drawn from its fallback


def curve_points(runs: list[Run], keys: tuple[str, ...]) -> tuple[str | None, dict[int, list[float]]]:
    """step -> values over the runs that logged it, for the first key any run logged."""
    key = next((k for k in keys if any(k in row for r in runs for row in r.metrics)), None)
    points: dict[int, list[float]] = {}
    if key is None:
        return None, points
    for r in runs:
        by_step = {row["step"]: row[key] for row in r.metrics if key in row}
        for step, v in by_step.items():
            points.setdefault(step, []).append(v)
    return key, dict(sorted(points.items()))


Panels = tuple[tuple[str, tuple[str, ...]], ...]


def study_curves_png(study: Study, panels: Panels = CURVE_PANELS) -> bytes | None:
    """One PNG, a panel per entry of `panels` (CURVE_PANELS: the study's curves; DIAGNOSTIC_PANELS), a line per
    arm: mean over the seeds that logged the step, band min-max over seeds. Finished and unfinished runs both
    count. None when no run logged any of them."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4), squeeze=False)
    drawn = False
    for ax, (title, keys) in zip(axes[0], panels):
        used = None
        for arm in study.arms:
            runs = [r for r in study.runs if r.arm == arm and r.metrics]
            key, pts = curve_points(runs, keys)
            if not pts:
                continue
            used = used or key
            steps = list(pts)
            mean = [statistics.fmean(v) for v in pts.values()]
            (line,) = ax.plot(steps, mean, marker="o" if len(steps) <= 30 else None, markersize=3,
                              label=f"{arm} (n={len(runs)})")  # fmt: skip
            if len(runs) > 1:
                ax.fill_between(steps, [min(v) for v in pts.values()], [max(v) for v in pts.values()],
                                alpha=0.15, color=line.get_color())  # fmt: skip
            drawn = True
        ax.set_title(PANEL_TITLES.get(used, title))
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        if used:
            ax.legend(fontsize=8)
    png = None
    if drawn:
        fig.suptitle("mean over seeds, band = min-max over seeds", fontsize=9)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=100)
        png = buf.getvalue()
    plt.close(fig)
    return png


def write_study(root: Path | str, md_path: Path | str, curves: Path | str | None = None,
                n_boot: int = 10_000) -> tuple[Analysis, Path | None]:  # fmt: skip
    """Write the Markdown to md_path and the curves PNG (default: study_curves.png beside the Markdown).

    A plotting failure does not lose the Markdown: it is written without the figure, its status lines name the
    error, and Analysis.curves_error holds it (one line)."""
    md_path = Path(md_path)
    curves_path = Path(curves) if curves is not None else md_path.with_name("study_curves.png")
    study = load_study(root)
    an = analyse(study, n_boot=n_boot)
    try:
        png = study_curves_png(study)
        if png is not None:
            curves_path.parent.mkdir(parents=True, exist_ok=True)
            curves_path.write_bytes(png)
    except Exception as exc:  # noqa: BLE001 - a plotting problem must not lose the tables
        png, an.curves_error = None, f"{type(exc).__name__}: {exc}".splitlines()[0]
        an.status_lines.append(f"The learning curves could not be drawn: {an.curves_error}")
    drawn = png is not None
    md_path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic_text(md_path, render_markdown(an, curves_path if drawn else None, md_path) + "\n")
    return an, curves_path if drawn else None
