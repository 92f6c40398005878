"""`sgcd train`: train a tool-use agent with SGCD (or a comparator) on one machine.

    sgcd train                                   the embedded default (airline-lite, smollm2-135m, sgcd, CPU)
    sgcd train --preset smoke --out runs/smoke   a packaged preset (sgcd/presets/) or a YAML path
    sgcd train --preset default algorithm.name=grpo credit.eps=0.1 --out runs/grpo
    sgcd train --resume runs/grpo                continue a run from its last checkpoint
    sgcd train --resume runs/grpo steps=20       ... and train it longer (a run cannot be shortened)

One process writes a run folder at a time (a second gets one line naming the holder's pid). A resume refuses a
config.yaml edited since the checkpoint (--allow-config-change continues with the edit), falls back past a
damaged newest checkpoint, starts over a run killed before its first checkpoint, and does nothing to a finished
run.

Overrides are dotted KEY=VALUE pairs after the options; the keys and their meaning are listed below.
"""

from __future__ import annotations

import argparse
from datetime import datetime
from pathlib import Path


def register(subparsers) -> None:
    from sgcd.trainer.config import help_text

    parser = subparsers.add_parser(
        "train",
        help="train an agent (SGCD, GRPO, baselines)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="config keys:\n" + help_text(),
    )
    _add_options(parser, None)
    parser.add_argument(
        "overrides", nargs=argparse.REMAINDER, metavar="KEY=VALUE", help="dotted config overrides"
    )
    parser.set_defaults(func=main)


def _add_options(parser, default) -> None:
    parser.add_argument(
        "--preset",
        default=default,
        help="a packaged preset name (smoke, default, compare-small, ...) or a YAML path (default: the embedded default run)",
    )
    parser.add_argument(
        "--out", type=Path, default=default, help="run folder (default: runs/<preset>-<algo>-<time>)"
    )
    parser.add_argument("--resume", type=Path, default=default, metavar="RUN_DIR", help="continue this run")
    parser.add_argument(
        "--quiet", action="store_true", default=default, help="no progress or before/after lines"
    )
    parser.add_argument(
        "--allow-config-change",
        action="store_true",
        default=default,
        help="--resume even though config.yaml was edited since the checkpoint (the edit takes effect)",
    )


def split_overrides(args) -> None:
    """Options written after the first KEY=VALUE land in the remainder (argparse cannot intermix them with a
    positional list): parse them out here, leaving only the overrides."""
    extra = argparse.ArgumentParser(add_help=False, exit_on_error=False)
    _add_options(extra, argparse.SUPPRESS)
    from sgcd.cli import CliError

    try:
        found, rest = extra.parse_known_args(args.overrides)
    except argparse.ArgumentError as exc:
        raise CliError(str(exc)) from exc
    for key, value in vars(found).items():
        setattr(args, key, value)
    bad = [r for r in rest if "=" not in r]
    if bad:
        raise CliError(f"unexpected argument {bad[0]!r}: overrides are KEY=VALUE (see sgcd train --help)")
    args.overrides = rest


def main(args) -> int:
    from sgcd.cli import CliError
    from sgcd.trainer.config import ConfigError, make_config
    from sgcd.trainer.setup import TrainError
    from sgcd.trainer.trainer import resume, train

    split_overrides(args)
    try:
        if args.resume is not None:
            steps = None
            for text in args.overrides:
                key, _, value = text.partition("=")
                if key.strip() != "steps":
                    raise CliError(
                        f"--resume takes only steps=N as an override (the run keeps its config), got {key}"
                    )
                steps = make_config(None, [text]).steps
            summary = resume(
                args.resume,
                steps=steps,
                quiet=args.quiet,
                allow_config_change=bool(args.allow_config_change),
            )
            if summary.get("already_finished"):
                print(f"{args.resume} is already finished ({summary['steps']} steps); nothing to do")
                return 0
        else:
            cfg = make_config(args.preset, args.overrides)
            name = Path(args.preset or "default").stem
            out = args.out or Path("runs") / f"{name}-{cfg.algorithm.name}-{datetime.now():%Y%m%d-%H%M%S}"
            summary = train(cfg, out, quiet=args.quiet)
    except (ConfigError, TrainError) as exc:
        raise CliError(str(exc)) from exc
    before, after = summary.get("success_before"), summary.get("success_after")
    fmt = lambda x: "n/a" if x is None else f"{x:.3f}"  # noqa: E731
    print(
        f"held-out success: before {fmt(before)} -> after {fmt(after)}  ({summary['wall_s']:.0f} s, "
        f"{summary['steps']} steps, {summary['algorithm']})"
    )
    print(f"run folder: {summary['run_dir']}  (final model: {summary['final_model']})")
    return 0
