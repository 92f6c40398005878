"""`sgcd compare`: matched runs of several arms over several seeds, a table and learning curves.

    sgcd compare --algorithms grpo,sgcd,sd-replace,sgcd-shuffle --seeds 0,1,2 --preset compare --jobs 2 --out runs/study
    sgcd compare --out runs/study --resume          # continue an interrupted study; finished runs are kept

Every run uses the same preset, tasks, seeds and budget; only the arm (algorithm.name, and credit.shuffle=true
for the `sgcd-shuffle` control) and the seed differ. Extra dotted KEY=VALUE overrides apply to all runs. The
starting policy is evaluated once and every run reuses that evaluation. --jobs N runs N training processes at
once with the CPU threads split between them (DIR/logs/ has their output). Writes DIR/compare.json (per-run
paths and figures), DIR/compare.md (the study: status, verdicts, per-arm tables) and DIR/curves.png (its
learning curves), both by sgcd.report.study; `sgcd report DIR` shows the same as an HTML page.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

DEFAULTS = {"algorithms": "grpo,sgcd,sd-replace", "seeds": "0,1,2", "preset": "compare-small"}


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "compare",
        help="matched runs of several algorithms and seeds",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--algorithms",
        default=None,
        help=f"comma-separated arms: algorithm names or sgcd-shuffle (default {DEFAULTS['algorithms']})",
    )
    parser.add_argument(
        "--seeds", default=None, help=f"comma-separated integer seeds (default {DEFAULTS['seeds']})"
    )
    parser.add_argument(
        "--preset", default=None, help=f"a packaged preset name or a YAML path (default {DEFAULTS['preset']})"
    )
    parser.add_argument("--out", type=Path, required=True, help="comparison folder")
    parser.add_argument(
        "--jobs", type=int, default=1, help="runs at once, the CPU threads split between them"
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue the study in --out with its recorded arms, seeds and preset",
    )
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted overrides for every run")
    parser.set_defaults(func=main)


def main(args) -> int:
    from sgcd.cli import CliError
    from sgcd.trainer.compare import CompareError, arm_names, open_study, run_all, study_spec
    from sgcd.trainer.config import ConfigError, make_config
    from sgcd.trainer.setup import TrainError

    if args.jobs < 1:
        raise CliError(f"--jobs: expected a positive integer, got {args.jobs}")
    given = {k: getattr(args, k) for k in DEFAULTS if getattr(args, k) is not None}
    values = {**DEFAULTS, **given}
    algorithms = [a.strip() for a in values["algorithms"].split(",") if a.strip()]
    bad = [a for a in algorithms if a not in arm_names()]
    if bad or not algorithms:
        raise CliError(
            f"--algorithms: {bad[0] if bad else '(empty)'!r} is not allowed; choose from {', '.join(arm_names())}"
        )
    try:
        seeds = [int(s) for s in values["seeds"].split(",") if s.strip()]
    except ValueError as exc:
        raise CliError(f"--seeds: expected comma-separated integers, got {values['seeds']!r}") from exc
    if not seeds:
        raise CliError("--seeds: give at least one seed")
    spec = study_spec(algorithms, seeds, values["preset"], args.overrides)
    try:
        saved = open_study(args.out, spec, args.resume)
        if args.resume:
            asked = {
                k: v
                for k, v in spec.items()
                if (k in given or (k == "overrides" and args.overrides)) and v != saved[k]
            }
            if asked:
                raise CompareError(
                    f"--resume continues the recorded study; it differs in {', '.join(sorted(asked))} "
                    f"(recorded: {', '.join(f'{k}={saved[k]}' for k in sorted(asked))})"
                )
        base = make_config(saved["preset"], saved["overrides"])
        command = (
            "sgcd " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:2] == ["compare"] else ""
        )
        result = run_all(
            base, saved["algorithms"], saved["seeds"], args.out, quiet=False, jobs=args.jobs, command=command
        )
    except (ConfigError, TrainError, CompareError) as exc:
        raise CliError(str(exc)) from exc
    print((args.out / "compare.md").read_text(encoding="utf-8"))
    curves = args.out / "curves.png"
    drawn = f", {curves}" if curves.is_file() and "plot_error" not in result else ""
    print(f"written: {args.out / 'compare.json'}, {args.out / 'compare.md'}{drawn}")
    if "plot_error" in result:
        print(f"the curves could not be drawn: {result['plot_error']}")
    if result["failures"]:
        raise CliError(
            f"{len(result['failures'])} run(s) failed: {', '.join(result['failures'])}; fix and --resume"
        )
    return 0
