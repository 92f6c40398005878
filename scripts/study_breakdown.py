"""Where did held-out success change? A `sgcd compare` folder's per-task outcomes split by airline-lite family
and by whether the task's gold solution writes to the database (gold_hash != start_hash).

    .venv/bin/python scripts/study_breakdown.py runs/study [--markdown FILE]

Reads DIR/eval_before.json and each DIR/<arm>-s<seed>/summary.json (eval_after_tasks); the success rate of an
arm is the mean over its seeds. A drop in the write-call share with success rising on write tasks means fewer
wrong writes; success falling on write tasks means writes the tasks needed were lost.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dir", type=Path)
    ap.add_argument("--markdown", type=Path, default=None)
    args = ap.parse_args()
    from sgcd.envs import get_domain

    study = json.loads((args.dir / "study.json").read_text())
    domain = get_domain("airline-lite")
    tasks = {t.task_id: t for t in domain.tasks("test")}
    kind = {
        tid: ("write" if t.data["gold_hash"] != t.data["start_hash"] else "no-write")
        for tid, t in tasks.items()
    }
    before = json.loads((args.dir / "eval_before.json").read_text())["tasks"]

    def rates(outcomes: dict[str, float], key) -> dict[str, float]:
        groups = defaultdict(list)
        for tid, ok in outcomes.items():
            groups[key(tid)].append(ok)
        return {g: statistics.fmean(v) for g, v in groups.items()}

    keys = {"gold writes": lambda tid: kind[tid], "family": lambda tid: tasks[tid].family}
    lines = [f"# Per-task breakdown of {args.dir}", ""]
    for title, key in keys.items():
        cols = sorted(set(map(key, before)))
        counts = defaultdict(int)
        for tid in before:
            counts[key(tid)] += 1
        lines += [
            f"## by {title}",
            "",
            "| arm | " + " | ".join(f"{c} (n={counts[c]})" for c in cols) + " |",
            "|---|" + "---|" * len(cols),
        ]
        b = rates(before, key)
        lines.append("| before (warm start) | " + " | ".join(f"{b.get(c, 0):.3f}" for c in cols) + " |")
        for arm in study["algorithms"]:
            per_seed = []
            for seed in study["seeds"]:
                path = args.dir / f"{arm}-s{seed}" / "summary.json"
                if path.is_file():
                    per_seed.append(rates(json.loads(path.read_text())["eval_after_tasks"], key))
            if per_seed:
                cells = [f"{statistics.fmean(r.get(c, 0) for r in per_seed):.3f}" for c in cols]
                lines.append(f"| {arm} ({len(per_seed)} seeds) | " + " | ".join(cells) + " |")
        lines.append("")
    text = "\n".join(lines)
    print(text)
    if args.markdown:
        args.markdown.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
