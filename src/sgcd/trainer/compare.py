"""Matched comparisons: the same preset, tasks, seeds and budget, one run per (algorithm, seed), then a table
and learning curves.

DIR/<algorithm>-s<seed>/   one ordinary run folder each (resumable: a finished run is reused, a run with a
                           checkpoint is resumed)
DIR/compare.json           per-run paths and figures, per-algorithm aggregates (the HTML page reads this)
DIR/compare.md             the table in Markdown
DIR/curves.png             held-out success and training success per step, mean over seeds (shaded min-max)

Table columns, from each run's final held-out evaluation (`summary.json` eval_after): success mean and spread
(sample std over seeds, and min-max), the state-changing-call rate, the share of answer-only episodes and the
tool-error rate, as reported by `sgcd.eval`. The health keys are looked up by name, see HEALTH_KEYS.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import replace
from pathlib import Path
from typing import Any

from sgcd.trainer.checkpoint import latest_checkpoint, write_atomic_text
from sgcd.trainer.config import RunConfig
from sgcd.trainer.logging import read_jsonl

# column -> candidate metric names in the evaluation result (first one present wins)
HEALTH_KEYS = {
    "state_changing_rate": ("write_share",),  # episodes with >= 1 successful state-changing call
    "answer_only_rate": ("answer_only_share",),  # episodes with no tool call at all
    "tool_error_rate": ("tool_error_rate",),  # failed calls / all calls
}


def run_name(algorithm: str, seed: int) -> str:
    return f"{algorithm}-s{seed}"


def plan(base: RunConfig, algorithms: list[str], seeds: list[int]) -> list[tuple[str, int, RunConfig]]:
    """Matched configs: only algorithm.name and seed differ between runs."""
    return [
        (a, s, replace(base, seed=s, algorithm=replace(base.algorithm, name=a)))
        for a in algorithms
        for s in seeds
    ]


def run_all(base: RunConfig, algorithms: list[str], seeds: list[int], out: Path, quiet: bool = True) -> dict:
    from sgcd.trainer.trainer import resume, train

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    runs = []
    for algo, seed, cfg in plan(base, algorithms, seeds):
        run_dir = out / run_name(algo, seed)
        summary_path = run_dir / "summary.json"
        if summary_path.exists():
            summary = json.loads(summary_path.read_text())
        elif run_dir.exists() and latest_checkpoint(run_dir) is not None:
            summary = resume(run_dir, quiet=quiet)
        else:
            if run_dir.exists():  # a run killed before its first checkpoint: start it again
                import shutil

                shutil.rmtree(run_dir)
            print(f"[compare] {run_name(algo, seed)} ...", flush=True)
            summary = train(cfg, run_dir, quiet=quiet)
        runs.append(_run_record(algo, seed, run_dir, summary))
        _write(out, runs, algorithms, seeds)  # after each run, so a partial comparison is readable
    return _write(out, runs, algorithms, seeds)


def _pick(metrics: dict[str, Any], names: tuple[str, ...]) -> float | None:
    for name in names:
        if isinstance(metrics.get(name), (int, float)):
            return float(metrics[name])
    return None


def _run_record(algo: str, seed: int, run_dir: Path, summary: dict) -> dict:
    after = summary.get("eval_after") or {}
    rec = {
        "algorithm": algo,
        "seed": seed,
        "run_dir": str(run_dir),
        "summary": str(run_dir / "summary.json"),
        "metrics": str(run_dir / "metrics.jsonl"),
        "final_model": summary.get("final_model"),
        "success_before": summary.get("success_before"),
        "success_after": summary.get("success_after"),
        "wall_s": summary.get("wall_s"),
    }
    for column, names in HEALTH_KEYS.items():
        rec[column] = _pick(after, names)
    return rec


def _stats(values: list[float | None]) -> dict[str, float | None]:
    vals = [v for v in values if v is not None]
    if not vals:
        return {"mean": None, "std": None, "min": None, "max": None, "n": 0}
    return {
        "mean": statistics.fmean(vals),
        "std": statistics.stdev(vals) if len(vals) > 1 else 0.0,
        "min": min(vals),
        "max": max(vals),
        "n": len(vals),
    }


def aggregate(runs: list[dict], algorithms: list[str]) -> dict[str, dict]:
    out = {}
    for algo in algorithms:
        rs = [r for r in runs if r["algorithm"] == algo]
        out[algo] = {
            col: _stats([r.get(col) for r in rs]) for col in ("success_before", "success_after", *HEALTH_KEYS)
        }
    return out


def table_markdown(agg: dict[str, dict]) -> str:
    def fmt(s: dict, spread: bool = False) -> str:
        if s["mean"] is None:
            return "n/a"
        text = f"{s['mean']:.3f}"
        if spread:
            text += f" ± {s['std']:.3f} [{s['min']:.3f}, {s['max']:.3f}]"
        return text

    lines = [
        "| algorithm | seeds | success before | held-out success (mean ± std [min, max]) | state-changing-call "
        "episodes | answer-only episodes | tool-error rate |",
        "|---|---|---|---|---|---|---|",
    ]
    for algo, a in agg.items():
        lines.append(
            f"| {algo} | {a['success_after']['n']} | {fmt(a['success_before'])} | "
            f"{fmt(a['success_after'], True)} | {fmt(a['state_changing_rate'])} | "
            f"{fmt(a['answer_only_rate'])} | {fmt(a['tool_error_rate'])} |"
        )
    return "\n".join(lines) + "\n"


def _write(out: Path, runs: list[dict], algorithms: list[str], seeds: list[int]) -> dict:
    agg = aggregate(runs, algorithms)
    result = {
        "algorithms": algorithms,
        "seeds": seeds,
        "runs": runs,
        "aggregate": agg,
        "table": str(out / "compare.md"),
        "plot": str(out / "curves.png"),
    }
    write_atomic_text(out / "compare.md", table_markdown(agg))
    try:
        plot_curves(runs, algorithms, out / "curves.png")
    except Exception as exc:  # noqa: BLE001 - a plotting problem must not lose the table
        result["plot_error"] = f"{type(exc).__name__}: {exc}"
    write_atomic_text(out / "compare.json", json.dumps(result, indent=2) + "\n")
    return result


def _curve(rows: list[dict], key: str) -> dict[int, float]:
    return {int(r["step"]): float(r[key]) for r in rows if isinstance(r.get(key), (int, float))}


def plot_curves(runs: list[dict], algorithms: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, key, title in (
        (axes[0], "eval/success", "held-out success"),
        (axes[1], "reward/success_rate", "training success (sampled groups)"),
    ):
        for algo in algorithms:
            curves = [_curve(read_jsonl(Path(r["metrics"])), key) for r in runs if r["algorithm"] == algo]
            steps = sorted({s for c in curves for s in c})
            if not steps:
                continue
            means = [statistics.fmean([c[s] for c in curves if s in c]) for s in steps]
            lo = [min(c[s] for c in curves if s in c) for s in steps]
            hi = [max(c[s] for c in curves if s in c) for s in steps]
            (line,) = ax.plot(steps, means, marker="o", label=f"{algo} (n={len(curves)})")
            ax.fill_between(steps, lo, hi, alpha=0.15, color=line.get_color())
        ax.set_xlabel("step")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
