"""The compare page: one self-contained HTML file for a `sgcd compare` folder (DIR/compare.json).

compare.json is read leniently, because it is a report input and not a training contract: the table comes from
"rows" (list of dicts, or lists with "columns"), else table.md is shown verbatim; runs come from "runs" as a list
of {"algorithm", "seed", "run_dir" | "path"} or as {algorithm: [paths] | {seed: path}}. Curves per algorithm
are drawn from each run's metrics.jsonl: the mean over seeds at the steps all seeds logged, with a min-max band.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from sgcd.report import figures as F  # noqa: E402
from sgcd.report.render import _ENV, ReportResult, data_uri, render_page, save_figures  # noqa: E402
from sgcd.report.rundir import RunDirError, read_metrics  # noqa: E402
from sgcd.report.template import COMPARE_BODY  # noqa: E402

# Curves drawn per algorithm when any run logged them: (title, candidate keys; the first present is used).
COMPARE_CURVES = [
    ("held-out success", ["eval/success", "eval/pass@1", "eval/pass1"]),
    ("train reward", ["reward/mean"]),
    ("train success rate", ["reward/success_rate"]),
    (
        "state-changing tool-call share",
        ["tools/state_changing_share", "tools/write_share", "tools/state_changing_rate"],
    ),
    ("answer-only episodes", ["tools/answer_only_share", "tools/answer_only_rate"]),
    ("credit weight std", ["credit/w_std"]),
    ("policy entropy", ["policy/entropy"]),
]


@dataclass
class RunRef:
    algorithm: str
    seed: str
    path: Path
    figures: dict[str, Any] = field(
        default_factory=dict
    )  # the run record's scalar fields (success_after, ...)


_NOT_FIGURES = {"algorithm", "seed", "run_dir", "path", "dir"}


def is_compare_dir(path: Path) -> bool:
    return (Path(path) / "compare.json").is_file()


def _resolve(base: Path, p: Any) -> Path:
    path = Path(str(p)).expanduser()
    return path if path.is_absolute() else base / path


def parse_runs(spec: Any, base: Path) -> list[RunRef]:
    """The runs listed in compare.json["runs"], in any of the accepted shapes."""
    out: list[RunRef] = []
    if isinstance(spec, list):
        for i, item in enumerate(spec):
            if not isinstance(item, dict):
                raise RunDirError(f"compare.json: runs[{i}] must be an object with algorithm, seed, run_dir")
            path = item.get("run_dir") or item.get("path") or item.get("dir")
            if path is None:
                raise RunDirError(f"compare.json: runs[{i}] has no 'run_dir' (or 'path')")
            out.append(
                RunRef(str(item.get("algorithm", "?")), str(item.get("seed", "?")), _resolve(base, path))
            )
    elif isinstance(spec, dict):
        for algo, paths in spec.items():
            items = (
                paths.items()
                if isinstance(paths, dict)
                else enumerate(paths if isinstance(paths, list) else [paths])
            )
            for seed, path in items:
                out.append(RunRef(str(algo), str(seed), _resolve(base, path)))
    elif spec is not None:
        raise RunDirError("compare.json: 'runs' must be a list or a mapping")
    return out


def table_rows(doc: dict) -> tuple[list[str], list[dict]]:
    """(columns, rows of printable values): compare.json's "rows" when given, else one row per algorithm from
    "aggregate" ({algorithm: {column: {mean, std, min, max, n}}}), as `sgcd compare` writes it."""
    rows = doc.get("rows")
    if isinstance(rows, list) and rows:
        if all(isinstance(r, dict) for r in rows):
            columns: list[str] = []
            for r in rows:
                columns += [c for c in r if c not in columns]
            dict_rows = rows
        else:
            columns = [str(c) for c in doc.get("columns") or doc.get("header") or []]
            dict_rows = [dict(zip(columns, r)) for r in rows if isinstance(r, list)]
        return columns, [{c: _cell(v) for c, v in r.items()} for r in dict_rows]
    agg = doc.get("aggregate")
    if not isinstance(agg, dict) or not agg:
        return [], []
    columns = ["algorithm"]
    out = []
    for algo, cols in agg.items():
        row = {"algorithm": str(algo)}
        for col, stats in (cols or {}).items():
            columns += [col] if col not in columns else []
            row[col] = _stats_cell(stats)
        out.append(row)
    return columns, out


def _stats_cell(stats: Any) -> str:
    """{mean, std, min, max, n} -> "0.412 ± 0.030 [0.380, 0.440] (n=3)"; anything else printed as is."""
    if not isinstance(stats, dict):
        return _cell(stats)
    if stats.get("mean") is None:
        return "n/a"
    text = f"{stats['mean']:.3f}"
    if stats.get("n", 1) and stats.get("n", 1) > 1 and stats.get("std") is not None:
        text += f" ± {stats['std']:.3f} [{stats['min']:.3f}, {stats['max']:.3f}]"
    return text + (f" (n={stats['n']})" if "n" in stats else "")


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.4g}"
    return json.dumps(v) if isinstance(v, (dict, list)) else str(v)


def _mean_band(
    curves: list[tuple[list[int], list[float]]],
) -> tuple[list[int], list[float], list[float], list[float]]:
    """Mean, min and max over seeds at the steps every seed logged."""
    common = sorted(set.intersection(*(set(s) for s, _ in curves)))
    maps = [dict(zip(s, v)) for s, v in curves]
    cols = [[m[x] for m in maps] for x in common]
    return common, [sum(c) / len(c) for c in cols], [min(c) for c in cols], [max(c) for c in cols]


def compare_figures(series_by_run: list[tuple[RunRef, F.Series]]) -> list[F.Figure]:
    """One figure per COMPARE_CURVES entry that any run logged: a line per algorithm (mean over seeds)."""
    out = []
    for title, keys in COMPARE_CURVES:
        per_algo: dict[str, list[tuple[list[int], list[float]]]] = {}
        for ref, series in series_by_run:
            key = next((k for k in keys if k in series), None)
            if key is not None:
                per_algo.setdefault(ref.algorithm, []).append(series[key])
        if not per_algo:
            continue
        fig, ax = plt.subplots(figsize=(6.0, 3.4))
        for algo, curves in sorted(per_algo.items()):
            steps, mean, lo, hi = _mean_band(curves)
            if not steps:
                continue
            line = ax.plot(steps, mean, marker="o" if len(steps) <= 30 else None, markersize=3,
                           label=f"{algo} ({len(curves)} seed{'s' * (len(curves) > 1)})")[0]  # fmt: skip
            if len(curves) > 1:
                ax.fill_between(steps, lo, hi, alpha=0.15, color=line.get_color())
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        out.append(F.Figure("compare_" + title.replace(" ", "_").replace("-", "_"), title, F._png(fig)))
    return out


def _relpath(target: Path, start: Path) -> str:
    """A link from the page to `target` when it exists ("" otherwise), relative so the folder can move."""
    return os.path.relpath(target.resolve(), start.resolve()) if target.is_file() else ""


def _first_file(base: Path, named: Any, *defaults: str, key: str = "") -> Path | None:
    """The file compare.json names (a path string), else the first default that exists in the folder. The page
    embeds the file, so it must lie inside the study folder (no absolute path, no `..`, no link out of it)."""
    candidates = ([_resolve(base, named)] if isinstance(named, str) and named else []) + [
        base / d for d in defaults
    ]
    found = next((p for p in candidates if p.is_file()), None)
    if found is not None and not found.resolve().is_relative_to(base.resolve()):
        raise RunDirError(
            f"compare.json: {key or found.name} names {found}, outside the study folder {base}; a report embeds "
            f"only files inside it"
        )
    return found


def _study_section(base: Path, out_path: Path) -> dict:
    """The study's status, verdicts and tables (sgcd.report.study) and its curves, saved beside the page's
    other PNGs in `<out stem>_figures/study_curves.png`."""
    from sgcd.report import study as S

    st = S.load_study(base)
    an = S.analyse(st)
    png = S.study_curves_png(st)
    curves = None
    if png is not None:
        folder = out_path.parent / f"{out_path.stem}_figures"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "study_curves.png").write_bytes(png)
        curves = {
            "src": data_uri(png),
            "file": f"{folder.name}/study_curves.png",
            "path": folder / "study_curves.png",
        }
    tables = [{"title": t, "header": h, "rows": r} for t, h, r in an.tables]
    return {"status": an.status_lines, "command": st.command, "verdicts": an.verdict_lines,
            "rule": S.VERDICT_RULE, "tables": tables, "curves": curves}  # fmt: skip


def build_compare_report(
    compare_dir: Path | str, out: Path | str | None = None, progress: bool = False
) -> ReportResult:
    """Write the compare page to `out` (default DIR/report.html) and its PNGs to `<out stem>_figures/`."""
    del progress  # a compare page reads a few metrics files: no progress display needed
    base = Path(compare_dir)
    from sgcd.report.study import read_compare_json

    doc = read_compare_json(base)
    out_path = Path(out) if out is not None else base / "report.html"
    runs = parse_runs(doc.get("runs"), base)
    notes, series_by_run = [], []
    for ref in runs:
        metrics = ref.path / "metrics.jsonl"
        if metrics.is_file():
            series_by_run.append((ref, F.metric_series(read_metrics(metrics))))
        else:
            notes.append(f"{ref.algorithm} seed {ref.seed}: no metrics.jsonl at {ref.path}")
    figs = save_figures(compare_figures(series_by_run), out_path.parent / f"{out_path.stem}_figures")
    curves_png = _first_file(base, doc.get("plot"), "curves.png", key="'plot'")
    if curves_png is not None:
        figs.insert(0, {"title": "curves from sgcd compare", "src": data_uri(curves_png.read_bytes()),
                        "file": curves_png.name, "path": None})  # fmt: skip
    study = _study_section(base, out_path)
    columns, rows = table_rows(doc)
    md = _first_file(base, doc.get("table"), "compare.md", "table.md", key="'table'")
    table_md = md.read_text(encoding="utf-8") if md is not None else ""
    run_cols = [c for r in runs for c in r.figures]
    run_cols = list(dict.fromkeys(run_cols))
    run_rows = [{"algorithm": r.algorithm, "seed": r.seed, "path": str(r.path),
                 "cells": [_cell(r.figures.get(c)) for c in run_cols],
                 "report": _relpath(r.path / "report.html", out_path.parent)}
                for r in runs]  # fmt: skip
    body = _ENV.from_string(COMPARE_BODY).render(
        columns=columns,
        rows=rows,
        table_md=table_md,
        figures=figs,
        runs=run_rows,
        run_cols=run_cols,
        study=study,
    )
    algos = doc.get("algorithms") or sorted({r.algorithm for r in runs})
    subtitle = f"algorithms: {', '.join(map(str, algos))} · {len(runs)} runs"
    nav = [("study", "Study"), ("table", "Results"), ("curves", "Curves"), ("runs", "Runs")]
    html = render_page(f"sgcd compare: {base.resolve().name}", subtitle, nav, notes, body)
    out_path.write_text(html, encoding="utf-8")
    pngs = [f["path"] for f in figs if f["path"] is not None]
    if study["curves"] is not None:
        pngs.append(study["curves"]["path"])
    return ReportResult(out_path, len(html.encode("utf-8")), pngs, 0, 0, notes)
