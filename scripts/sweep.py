"""Run `sgcd train` once per named override set and tabulate the paired before/after results.

    .venv/bin/python scripts/sweep.py OUT_DIR NAME='k=v k=v' [NAME='k=v ...' ...] [--base 'k=v ...']

Each run goes to OUT_DIR/NAME (a finished run is reused, so an interrupted sweep resumes by running the same
command again); OUT_DIR/sweep.md gets one row per run: its overrides, held-out success before -> after on the
same tasks, the paired delta with its bootstrap 95% CI and McNemar p, wall time, skipped steps and the last
step's credit diagnostics. docs/training.md quotes the table with the command that produced it.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    base: list[str] = []
    if "--base" in argv:
        i = argv.index("--base")
        base = shlex.split(argv[i + 1])
        argv = argv[:i] + argv[i + 2 :]
    out, runs = Path(argv[0]), [a.split("=", 1) for a in argv[1:]]
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for name, overrides in runs:
        run_dir = out / name
        if not (run_dir / "summary.json").exists():
            cmd = [sys.executable, "-m", "sgcd.cli", "train", "--out", str(run_dir), *base, *shlex.split(overrides)]
            print("$", shlex.join(cmd), flush=True)
            if subprocess.run(cmd).returncode != 0:
                print(f"{name}: failed", flush=True)
                continue
        s = json.loads((run_dir / "summary.json").read_text())
        rows.append((name, overrides, s))
        (out / "sweep.md").write_text(table(rows, base))
    print(table(rows, base))
    return 0


def table(rows, base) -> str:
    head = (
        f"base overrides: `{' '.join(base) or '-'}`\n\n"
        "| run | overrides | before | after | delta [95% CI] | McNemar p | tasks | skipped | w_std | wall |\n"
        "|---|---|---|---|---|---|---|---|---|---|\n"
    )
    lines = []
    for name, overrides, s in rows:
        p = s.get("eval_paired") or {}
        ci = s.get("eval_delta_ci") or [float("nan")] * 2
        w = (s.get("credit_last") or {}).get("credit/w_std", float("nan"))
        lines.append(
            f"| {name} | `{overrides}` | {p.get('before', float('nan')):.3f} | {p.get('after', float('nan')):.3f} | "
            f"{s.get('eval_delta') or 0:+.3f} [{ci[0]:+.3f}, {ci[1]:+.3f}] | {s.get('eval_p') or 1:.3g} | "
            f"{int(p.get('n', 0))} | {s.get('skipped_steps')} / {s.get('steps')} | {w:.3f} | "
            f"{s.get('wall_s', 0) / 60:.1f} min |"
        )
    return head + "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
