"""Learning curves and credit-weight histograms as PNG figures (matplotlib, Agg backend, no display).

Curves read metric keys generically: every numeric `<namespace>/<key>` is a series over steps. Four headline
figures pick the keys that matter most when they exist (held-out success, reward, tool-use health, credit
weights); every namespace also gets small multiples of all its keys, so nothing the trainer logs is hidden.
Histograms read the per-token weights of the sampled groups (action tokens only) and mark the final bounds
1 +- 2 eps (algorithm.md §5) with the fraction of tokens sitting on each.
"""

from __future__ import annotations

import fnmatch
import io
import math
from collections.abc import Iterable
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from sgcd.report.rundir import Group  # noqa: E402
from sgcd.types import TOKEN_TYPES  # noqa: E402

TOKEN_TYPE_NAMES = TOKEN_TYPES  # the one table, sgcd.types
DPI = 80

# Headline figures: title -> candidate keys (each drawn when present; shell-style wildcards allowed).
HEADLINES: dict[str, list[str]] = {
    "held-out success": ["eval/success", "eval/*success*", "eval/pass*"],
    "reward": ["reward/mean", "reward/success_rate"],
    "tool-use health": [
        "tools/*state*",
        "tools/write*",
        "tools/*error*",
        "tools/answer_only*",
        "tools/calls_per_episode",
    ],
    "credit weights": ["credit/w_mean", "credit/w_pos_mean", "credit/w_neg_mean"],
    "credit spread and bounds": [
        "credit/w_std",
        "credit/w_frac_at_low",
        "credit/w_frac_at_high",
        "credit/agree",
    ],
    # signal vs numerical noise: the teacher's signed move on steps the reference marks, next to the floor
    "does the teacher read the reference": ["credit/ref_sensitivity", "credit/noise_floor_std"],
}
CREDIT_BANDS = [("credit/w_p1", "credit/w_p99"), ("credit/w_p5", "credit/w_p95")]


@dataclass
class Figure:
    """One rendered figure: a file-name stem, a title and the PNG bytes."""

    name: str
    title: str
    png: bytes


Series = dict[str, tuple[list[int], list[float]]]


def metric_series(rows: list[dict]) -> Series:
    """key -> (steps, values) over the rows that carry the key; a re-logged step keeps its last value."""
    by_key: dict[str, dict[int, float]] = {}
    for row in rows:
        for key, value in row.items():
            if key != "step":
                by_key.setdefault(key, {})[row["step"]] = value
    return {k: (sorted(v), [v[s] for s in sorted(v)]) for k, v in sorted(by_key.items())}


def _match(series: Series, patterns: Iterable[str]) -> list[str]:
    keys: list[str] = []
    for pat in patterns:
        found = sorted(fnmatch.filter(series, pat))
        keys += [k for k in found if k not in keys]
    return keys


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _plot_keys(ax, series: Series, keys: list[str], prefix_strip: str = "") -> None:
    for key in keys:
        steps, values = series[key]
        marker = "o" if len(steps) <= 30 else None
        ax.plot(
            steps, values, marker=marker, markersize=3, linewidth=1.2, label=key.removeprefix(prefix_strip)
        )
    ax.set_xlabel("step")
    ax.grid(alpha=0.3)


def headline_figures(series: Series) -> list[Figure]:
    """The four headline figures, each drawn only when at least one of its keys exists."""
    out = []
    for title, patterns in HEADLINES.items():
        keys = _match(series, patterns)
        if not keys:
            continue
        fig, ax = plt.subplots(figsize=(6.0, 3.4))
        if title == "credit weights":
            for (lo, hi), alpha in zip(CREDIT_BANDS, (0.12, 0.22)):
                if lo in series and hi in series and series[lo][0] == series[hi][0]:
                    label = f"{lo.split('_')[-1]}-{hi.split('_')[-1]}"
                    ax.fill_between(series[lo][0], series[lo][1], series[hi][1], alpha=alpha, label=label)
        _plot_keys(ax, series, keys)
        ax.set_title(title)
        ax.legend(fontsize=7, loc="best")
        out.append(Figure(title.replace(" ", "_").replace("-", "_"), title, _png(fig)))
    return out


@dataclass
class Sparkline:
    """One metric key as a table row: last / min / max and an inline SVG polyline (no matplotlib: cheap)."""

    namespace: str
    key: str
    last: float
    lo: float
    hi: float
    n: int  # logged points
    points: str  # SVG polyline points in a SPARK_W x SPARK_H box, downsampled to <= SPARK_POINTS


SPARK_W, SPARK_H, SPARK_POINTS = 160, 28, 200


def sparklines(series: Series) -> list[Sparkline]:
    """Every key of every namespace as a sparkline row, grouped by namespace (keys sorted)."""
    out = []
    for key, (steps, values) in series.items():
        if not steps:
            continue
        stride = max(1, math.ceil(len(steps) / SPARK_POINTS))
        xs, ys = steps[::stride], values[::stride]
        if xs[-1] != steps[-1]:
            xs, ys = xs + [steps[-1]], ys + [values[-1]]
        x0, x1 = xs[0], max(xs[-1], xs[0] + 1)
        lo, hi = min(values), max(values)
        span = (hi - lo) or 1.0
        pts = " ".join(
            f"{(x - x0) / (x1 - x0) * SPARK_W:.1f},{SPARK_H - 2 - (y - lo) / span * (SPARK_H - 4):.1f}"
            for x, y in zip(xs, ys)
        )
        space = key.split("/", 1)[0] if "/" in key else "other"
        out.append(Sparkline(space, key, values[-1], lo, hi, len(values), pts))
    return sorted(out, key=lambda s: (s.namespace, s.key))


@dataclass
class WeightSplits:
    """Action-token weights of the sampled groups, split two ways."""

    by_outcome: dict[str, list[float]]  # "success" | "failure" -> weights
    by_type: dict[str, list[float]]  # token-type name -> weights


def collect_weights(groups: list[Group]) -> WeightSplits:
    """Weights on action tokens (mask 1) with a finite value, split by sibling outcome and by token type."""
    by_outcome: dict[str, list[float]] = {"success": [], "failure": []}
    by_type: dict[str, list[float]] = {}
    for group in groups:
        for sib in group.siblings:
            bucket = by_outcome["success" if sib.success else "failure"]
            for w, m, t in zip(sib.weights, sib.action_mask, sib.token_types):
                if m and math.isfinite(w):
                    bucket.append(w)
                    by_type.setdefault(TOKEN_TYPE_NAMES.get(t, f"type{t}"), []).append(w)
    return WeightSplits(by_outcome, by_type)


def bound_fractions(weights: list[float], eps: float) -> tuple[float, float]:
    """Fractions of weights at (or beyond) the final bounds 1 - 2 eps and 1 + 2 eps (same rule as the trainer)."""
    if not weights:
        return 0.0, 0.0
    lo, hi = 1.0 - 2.0 * eps + 1e-6, 1.0 + 2.0 * eps - 1e-6
    n = len(weights)
    return sum(w <= lo for w in weights) / n, sum(w >= hi for w in weights) / n


def histogram_figure(splits: dict[str, list[float]], eps: float, title: str, name: str) -> Figure:
    """Overlaid density histograms of the splits over the data's range; the bounds are drawn when in view."""
    lo, hi = 1.0 - 2.0 * eps, 1.0 + 2.0 * eps
    values = [w for ws in splits.values() for w in ws]
    pad = max(0.05 * (max(values) - min(values)), 1e-3)
    left, right = min(values) - pad, max(values) + pad
    bins = [left + (right - left) * i / 60 for i in range(61)]
    fig, ax = plt.subplots(figsize=(6.0, 3.4))
    for label, ws in splits.items():
        if not ws:
            continue
        f_lo, f_hi = bound_fractions(ws, eps)
        text = f"{label} (n={len(ws)}, at low {f_lo:.1%}, at high {f_hi:.1%})"
        ax.hist(ws, bins=bins, density=True, histtype="stepfilled", alpha=0.35, label=text)
    for x in (lo, hi):
        if left <= x <= right:
            ax.axvline(x, color="k", linestyle="--", linewidth=0.8)
    ax.axvline(1.0, color="grey", linewidth=0.6)
    ax.set_xlabel(f"credit weight w (bounds 1 ± 2·eps = {lo:g}, {hi:g}; dashed when in view)")
    ax.set_ylabel("density")
    ax.set_title(title)
    ax.legend(fontsize=7)
    return Figure(name, title, _png(fig))
