"""The compare page: one self-contained HTML file for a `sgcd compare` folder (DIR/compare.json).

The study's tables, verdicts and curves come from sgcd.report.study, their one owner (the same analysis
`sgcd compare` writes as DIR/compare.md and DIR/curves.png, which the page therefore does not embed again), with
the training diagnostics per arm (study.DIAGNOSTIC_PANELS) drawn the same way.

compare.json is read leniently, because it is a report input and not a training contract: a hand-written file
may add a table, from "rows" (list of dicts, or lists with "columns"), else the file "table" names, else
table.md, shown verbatim, and a figure, the PNG "plot" names; both must lie inside the folder. Runs come from
"runs" as a list of {"algorithm", "seed", "run_dir" | "path"} or as {algorithm: [paths] | {seed: path}}. Keys
the page does not use (e.g. "aggregate", which `sgcd compare` wrote before the study owned the tables) are
ignored.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sgcd.report import figures as F
from sgcd.report.render import _ENV, ReportResult, data_uri, render_page, save_figures
from sgcd.report.rundir import RunDirError
from sgcd.report.template import COMPARE_BODY


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
    """(columns, rows of printable values) from compare.json's "rows", for a hand-written table; ([], []) when
    there is none (a study's own tables come from sgcd.report.study)."""
    rows = doc.get("rows")
    if not isinstance(rows, list) or not rows:
        return [], []
    if all(isinstance(r, dict) for r in rows):
        columns: list[str] = []
        for r in rows:
            columns += [c for c in r if c not in columns]
        dict_rows = rows
    else:
        columns = [str(c) for c in doc.get("columns") or doc.get("header") or []]
        dict_rows = [dict(zip(columns, r)) for r in rows if isinstance(r, list)]
    return columns, [{c: _cell(v) for c, v in r.items()} for r in dict_rows]


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.4g}"
    return json.dumps(v) if isinstance(v, (dict, list)) else str(v)


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


def _study_section(base: Path, out_path: Path) -> tuple[dict, list[dict]]:
    """The study's status, verdicts and tables (sgcd.report.study) and its curves, and the training diagnostics
    per arm (study.DIAGNOSTIC_PANELS) as the page's figures; both PNGs saved in `<out stem>_figures/`."""
    from sgcd.report import study as S

    st = S.load_study(base)
    an = S.analyse(st)
    folder = out_path.parent / f"{out_path.stem}_figures"
    drawn = [
        F.Figure(name, title, png)
        for name, title, png in (
            ("study_curves", "study curves", S.study_curves_png(st)),
            (
                "study_diagnostics",
                "training diagnostics per arm",
                S.study_curves_png(st, S.DIAGNOSTIC_PANELS),
            ),
        )
        if png is not None
    ]
    saved = {f["file"].rsplit("/", 1)[-1]: f for f in save_figures(drawn, folder)}
    tables = [{"title": t, "header": h, "rows": r} for t, h, r in an.tables]
    study = {"status": an.status_lines, "command": st.command, "verdicts": an.verdict_lines,
             "rule": S.VERDICT_RULE, "tables": tables, "curves": saved.get("study_curves.png")}  # fmt: skip
    return study, [f for name, f in saved.items() if name != "study_curves.png"]


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
    notes = [
        f"{ref.algorithm} seed {ref.seed}: no metrics.jsonl at {ref.path}"
        for ref in runs
        if not (ref.path / "metrics.jsonl").is_file()
    ]
    # a hand-written compare.json's own table and figure (checked before anything is drawn or written)
    plot = _first_file(base, doc.get("plot"), key="'plot'")
    md = _first_file(base, doc.get("table"), "table.md", key="'table'")
    table_md = md.read_text(encoding="utf-8") if md is not None else ""
    columns, rows = table_rows(doc)
    study, figs = _study_section(base, out_path)
    if plot is not None:
        figs.insert(0, {"title": f"{plot.name} (named by compare.json)", "src": data_uri(plot.read_bytes()),
                        "file": plot.name, "path": None})  # fmt: skip
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
    nav = [("study", "Study"), *([("table", "Table")] if rows or table_md else []), ("curves", "Diagnostics"),
           ("runs", "Runs")]  # fmt: skip
    html = render_page(f"sgcd compare: {base.resolve().name}", subtitle, nav, notes, body)
    out_path.write_text(html, encoding="utf-8")
    pngs = [f["path"] for f in figs if f["path"] is not None]
    if study["curves"] is not None:
        pngs.append(study["curves"]["path"])
    return ReportResult(out_path, len(html.encode("utf-8")), pngs, 0, 0, notes)
