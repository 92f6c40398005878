"""`build_report(run_dir)`: a run folder -> one self-contained HTML page plus its figures as PNG files.

The page inlines its CSS, script and images (base64 data URIs); it references nothing over the network, so it
opens from a laptop, a cluster share or an e-mail attachment alike. Size is bounded by `max_groups`,
`max_tokens` and a byte budget on the token blob (heatmap.py); a default run's page stays well under 10 MB.
"""

from __future__ import annotations

import base64
import json
import math
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import yaml

from sgcd.report import figures as F
from sgcd.report import heatmap as H
from sgcd.report.rundir import Group, RunData, load_run, read_groups
from sgcd.report.template import CSS, PAGE, RUN_BODY, SCRIPT

_ENV = jinja2.Environment(autoescape=True, undefined=jinja2.ChainableUndefined)


@dataclass
class ReportResult:
    """What `build_report` wrote."""

    html_path: Path
    html_bytes: int
    png_paths: list[Path] = field(default_factory=list)
    n_groups: int = 0  # groups drawn as heatmaps
    n_tokens: int = 0  # token spans the page draws
    notes: list[str] = field(default_factory=list)


def render_page(title: str, subtitle: str, nav: list[tuple[str, str]], notes: list[str], body: str,
                blob: str = "") -> str:  # fmt: skip
    """The page shell around an already-rendered body (used by the run and the compare report)."""
    return _ENV.from_string(PAGE).render(
        title=title, subtitle=subtitle, nav=nav, notes=notes, body=body, blob=blob, css=CSS, script=SCRIPT
    )


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def save_figures(figs: list[F.Figure], folder: Path) -> list[dict]:
    """Write each figure to folder/<name>.png; return template entries (title, src data URI, file path)."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for fig in figs:
        path = folder / f"{fig.name}.png"
        path.write_bytes(fig.png)
        out.append({"title": fig.title, "src": data_uri(fig.png), "file": f"{folder.name}/{path.name}",
                    "path": path})  # fmt: skip
    return out


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else str(value)
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)[:400]
    return str(value)


def flatten(obj: Any, prefix: str = "") -> list[tuple[str, str]]:
    """Nested dict -> [(dotted key, short printable value)]."""
    if isinstance(obj, dict):
        rows = []
        for key, value in obj.items():
            rows += (
                flatten(value, f"{prefix}{key}.")
                if isinstance(value, dict)
                else [(f"{prefix}{key}", _fmt(value))]
            )
        return rows
    return [(prefix.rstrip(".") or "value", _fmt(obj))]


def clean_reference(ref: dict | None) -> dict | None:
    """The reference with the shapes the template expects (lists of dicts / strings); odd LLM output survives."""
    if ref is None:
        return None
    steps = (
        [s for s in ref.get("steps") or [] if isinstance(s, dict)]
        if isinstance(ref.get("steps"), list)
        else []
    )
    for s in steps:
        if not isinstance(s.get("evidence"), dict):
            s["evidence"] = {}
    listish = {k: [str(x) for x in ref.get(k) or []] if isinstance(ref.get(k), list) else [str(ref.get(k))]
               for k in ("failure_modes", "end_state_requirements") if ref.get(k)}  # fmt: skip
    fd = ref.get("first_divergence")
    return {"task_summary": str(ref.get("task_summary", "")), "steps": steps, **listish,
            "first_divergence": fd if isinstance(fd, dict) else None}  # fmt: skip


def _group_ctx(index: int, g: Group) -> dict:
    return {"index": index, "step": g.step, "task_id": g.task_id, "instruction": g.instruction,
            "reference": clean_reference(g.reference), "reference_text": g.reference_text,
            "siblings": g.siblings, "n_ok": sum(s.success for s in g.siblings)}  # fmt: skip


def _bound_rows(splits: F.WeightSplits, eps: float) -> list[tuple]:
    rows = []
    for label, ws in [*splits.by_outcome.items(), *sorted(splits.by_type.items())]:
        if not ws:
            continue
        lo, hi = F.bound_fractions(ws, eps)
        rows.append((label, len(ws), f"{sum(ws) / len(ws):.4f}", f"{lo:.2%}", f"{hi:.2%}"))
    return rows


def _subtitle(run: RunData) -> str:
    cfg = run.config
    bits = [f"algorithm {run.algorithm}", f"eps {run.eps:g}"]
    for key, label in (("env", "env"), ("model", "model")):
        if isinstance(cfg.get(key), dict) and "name" in cfg[key]:
            bits.append(f"{label} {cfg[key]['name']}")
    if "steps" in cfg:
        bits.append(f"{cfg['steps']} steps")
    if run.metrics:
        bits.append(f"{len(run.metrics)} logged (last step {run.metrics[-1]['step']})")
    return " · ".join(bits)


def _progress(enabled: bool):
    if not enabled:
        return nullcontext(None)
    from rich.console import Console
    from rich.progress import Progress

    return Progress(transient=True, console=Console(stderr=True))


def _read_all_groups(run: RunData, bar) -> list[Group]:
    """Every group of every sample file (the histograms use them all; the heatmaps a selection)."""
    task = bar.add_task("reading samples", total=len(run.sample_files)) if bar else None
    groups: list[Group] = []
    for path in run.sample_files:
        groups += read_groups(path, run.run_dir)
        if bar:
            bar.advance(task)
    return groups


def _histograms(splits: F.WeightSplits, eps: float) -> list[F.Figure]:
    if not any(splits.by_outcome.values()):
        return []
    return [
        F.histogram_figure(splits.by_outcome, eps, "w by outcome (action tokens)", "hist_outcome"),
        F.histogram_figure(splits.by_type, eps, "w by token type (action tokens)", "hist_token_type"),
    ]


def build_report(
    run_dir: Path | str,
    out: Path | str | None = None,
    max_groups: int = H.DEFAULT_MAX_GROUPS,
    max_tokens: int = H.DEFAULT_MAX_TOKENS,
    progress: bool = False,
) -> ReportResult:
    """Write RUN_DIR's report to `out` (default RUN_DIR/report.html) and its PNGs to `<out stem>_figures/`."""
    run = load_run(Path(run_dir))
    out_path = Path(out) if out is not None else run.run_dir / "report.html"
    fig_dir = out_path.parent / f"{out_path.stem}_figures"
    with _progress(progress) as bar:
        groups = _read_all_groups(run, bar)
        if bar:
            bar.add_task("drawing figures", total=None)
        series = F.metric_series(run.metrics)
        headline = save_figures(F.headline_figures(series), fig_dir)
        splits = F.collect_weights(groups)
        hists = save_figures(_histograms(splits, run.eps), fig_dir)
        payload = H.build_payload(H.select_groups(groups, max_groups), run.eps, max_tokens=max_tokens)
    notes = list(run.notes)
    dropped = ""
    if payload.dropped_groups:
        dropped = f"{payload.dropped_groups} older groups left out to keep the page small."
    if payload.truncated_siblings:
        notes.append(f"{payload.truncated_siblings} trajectories cut at {max_tokens} tokens (--max-tokens).")
    if len(groups) > payload.n_groups:
        notes.append(
            f"showing {payload.n_groups} of {len(groups)} sampled groups (--max-groups {max_groups})."
        )
    lo, hi = H.color_bounds(run.eps)
    body = _ENV.from_string(RUN_BODY).render(
        summary=flatten(run.summary) if run.summary else [],
        headline=headline,
        sparks=F.sparklines(series),
        spark_w=F.SPARK_W,
        spark_h=F.SPARK_H,
        hists=hists,
        bound_rows=_bound_rows(splits, run.eps),
        groups=[_group_ctx(i, g) for i, g in enumerate(payload.groups)],
        dropped=dropped,
        lo=f"{lo:g}",
        hi=f"{hi:g}",
        config=yaml.safe_dump(run.config, sort_keys=False, allow_unicode=True)
        if run.config
        else "(no config.yaml)",
    )
    nav = [("summary", "Summary"), ("curves", "Curves"), ("weights", "Weights"), ("groups", "Groups"),
           ("config", "Config")]  # fmt: skip
    html = render_page(f"sgcd run: {run.run_dir.name}", _subtitle(run), nav, notes, body,
                       payload.json_text if payload.n_groups else "")  # fmt: skip
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(html, encoding="utf-8")
    pngs = [f["path"] for f in (*headline, *hists)]
    return ReportResult(out_path, len(html.encode("utf-8")), pngs, payload.n_groups, payload.n_tokens, notes)
