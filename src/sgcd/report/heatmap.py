"""The per-token data of the heatmaps, packed into one compact JSON blob that a small inline script renders.

Why a blob and not server-side spans: a span with data- attributes for weight, teacher and student log-probs
costs ~90 bytes a token; the blob costs ~12 (token strings interned once in a shared table, weights as integer
thousandths, log-probs as integer hundredths, types and mask as one character a token). A default run's page
stays far under 10 MB, and a hard byte budget drops the oldest groups if it would not.

Layout of one sibling in the blob (all lists of length T after truncation to `max_tokens`):

    {"r": reward, "s": 0|1, "a": advantage, "k": [token-table index], "w": [round(1000 w)],
     "t": [round(100 teacher logp) | null], "u": [round(100 student logp) | null],
     "y": "0112..." (token type per token), "m": "0011..." (action mask per token), "n": T before truncation}

Token strings are never put into HTML by Python: the script sets them as text (textContent), and the JSON is
escaped for a <script> element (<, >, & as \\u003c...), so untrusted model output cannot break out.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

from sgcd.report.rundir import Group, Sibling

DEFAULT_MAX_GROUPS = 8
DEFAULT_MAX_TOKENS = 2048  # per trajectory; the trainer's default max_tokens is 1024
DEFAULT_BUDGET_BYTES = 7_000_000  # blob budget; curves, histograms and the page around it stay under 3 MB


@dataclass
class Payload:
    """The blob and what was left out to keep it small."""

    json_text: str  # escaped for embedding inside <script type="application/json">
    groups: list[Group]  # the groups in the blob, in blob order (their references are drawn beside them)
    n_groups: int  # groups in the blob
    n_tokens: int  # token spans the page will draw
    dropped_groups: int  # groups dropped by the byte budget (oldest first)
    truncated_siblings: int  # trajectories cut at max_tokens


def select_groups(groups: list[Group], max_groups: int) -> list[Group]:
    """Up to max_groups groups spread evenly over the run (by step), always keeping the latest one."""
    ordered = sorted(groups, key=lambda g: g.step)
    if max_groups <= 0:
        return []
    if len(ordered) <= max_groups:
        return ordered
    if max_groups == 1:
        return [ordered[-1]]
    last = len(ordered) - 1
    picks = sorted({round(i * last / (max_groups - 1)) for i in range(max_groups)})
    return [ordered[i] for i in picks]


def _int_or_none(x: float, scale: float) -> int | None:
    return int(round(x * scale)) if math.isfinite(x) else None


def _pack_sibling(sib: Sibling, table: dict[str, int], max_tokens: int) -> dict:
    n = min(len(sib.tokens), max_tokens)
    return {
        "r": round(sib.reward, 4),
        "s": int(sib.success),
        "a": round(sib.advantage, 4),
        "k": [table.setdefault(tok, len(table)) for tok in sib.tokens[:n]],
        "w": [_int_or_none(w, 1000) for w in sib.weights[:n]],
        "t": [_int_or_none(x, 100) for x in sib.teacher_logprobs[:n]],
        "u": [_int_or_none(x, 100) for x in sib.student_logprobs[:n]],
        "y": "".join(str(min(max(t, 0), 9)) for t in sib.token_types[:n]),
        "m": "".join(str(m) for m in sib.action_mask[:n]),
        "n": len(sib.tokens),
    }


def _pack_group(group: Group, table: dict[str, int], max_tokens: int) -> dict:
    return {
        "step": group.step,
        "task": group.task_id,
        "sibs": [_pack_sibling(s, table, max_tokens) for s in group.siblings],
    }


def script_safe_json(obj: object) -> str:
    """JSON that can sit inside a <script> element: no '<', '>' or '&' survive (all \\u-escaped)."""
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return (
        text.replace("&", "\\u0026")
        .replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def build_payload(
    groups: list[Group],
    eps: float,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    budget_bytes: int = DEFAULT_BUDGET_BYTES,
) -> Payload:
    """Pack the groups (already selected, oldest first) into the blob; drop the oldest until it fits the budget."""
    kept = list(groups)
    dropped = 0
    while True:
        table: dict[str, int] = {}
        packed = [_pack_group(g, table, max_tokens) for g in kept]
        blob = {"eps": eps, "tok": list(table), "groups": packed}
        text = script_safe_json(blob)
        if len(text.encode("utf-8")) <= budget_bytes or not kept:
            break
        kept = kept[1:]
        dropped += 1
    n_tokens = sum(len(s["k"]) for g in packed for s in g["sibs"])
    truncated = sum(1 for g in kept for s in g.siblings if len(s.tokens) > max_tokens)
    return Payload(text, kept, len(kept), n_tokens, dropped, truncated)


def color_bounds(eps: float) -> tuple[float, float]:
    """Weights at which the colour saturates: the pre-renormalisation clamp [1 - eps, 1 + eps] (algorithm.md §5)."""
    return 1.0 - eps, 1.0 + eps
