"""`sgcd compare`: matched runs of several algorithms over several seeds, a table and learning curves.

    sgcd compare --algorithms grpo,sgcd,sd-replace --seeds 0,1,2 --preset compare-small --out runs/cmp

Every run uses the same preset, tasks, seeds and budget; only algorithm.name and seed differ. Extra dotted
KEY=VALUE overrides apply to all runs. Re-running the command reuses finished runs and resumes killed ones.
Writes DIR/compare.json (per-run paths and figures), DIR/compare.md (the table) and DIR/curves.png.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "compare",
        help="matched runs of several algorithms and seeds",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--algorithms", default="grpo,sgcd,sd-replace", help="comma-separated algorithm names"
    )
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated integer seeds")
    parser.add_argument("--preset", default="compare-small", help="a packaged preset name or a YAML path")
    parser.add_argument("--out", type=Path, required=True, help="comparison folder")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted overrides for every run")
    parser.set_defaults(func=main)


def main(args) -> int:
    from sgcd.cli import CliError
    from sgcd.trainer.compare import run_all
    from sgcd.trainer.config import ALGORITHMS, ConfigError, make_config
    from sgcd.trainer.setup import TrainError

    algorithms = [a.strip() for a in args.algorithms.split(",") if a.strip()]
    bad = [a for a in algorithms if a not in ALGORITHMS]
    if bad or not algorithms:
        raise CliError(
            f"--algorithms: {bad[0] if bad else '(empty)'!r} is not allowed; choose from {', '.join(ALGORITHMS)}"
        )
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError as exc:
        raise CliError(f"--seeds: expected comma-separated integers, got {args.seeds!r}") from exc
    if not seeds:
        raise CliError("--seeds: give at least one seed")
    try:
        base = make_config(args.preset, args.overrides)
        result = run_all(base, algorithms, seeds, args.out, quiet=False)  # per-step progress (sgcd.progress)
    except (ConfigError, TrainError) as exc:
        raise CliError(str(exc)) from exc
    print(Path(result["table"]).read_text())
    print(f"written: {args.out / 'compare.json'}, {result['table']}, {result['plot']}")
    return 0
