"""`sgcd report DIR`: a static, self-contained HTML page that explains a run (or a `sgcd compare` folder).

A run folder gets learning curves, credit-weight histograms and token heatmaps of sampled mixed groups; a folder
holding compare.json gets one page comparing the algorithms (the study's tables, paired tests and one verdict
per claim, then the curves). Figures are also written as PNG files beside the page.

For a compare folder, `--markdown FILE` also writes the study as Markdown (status, verdicts, tables, the
reproducing command) and its learning curves as a PNG beside it (FILE's folder/study_curves.png, or --curves):

    sgcd report runs/study --markdown docs/results.md
"""

from __future__ import annotations

from pathlib import Path


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "report",
        help="a self-contained HTML report of a run folder (or a compare folder)",
        description=__doc__,
    )
    parser.add_argument("dir", type=Path, help="RUN_DIR from `sgcd train`, or a folder with compare.json")
    parser.add_argument("--out", type=Path, default=None, help="output HTML file (default: DIR/report.html)")
    parser.add_argument(
        "--max-groups",
        type=int,
        default=8,
        help="sampled groups drawn as heatmaps, spread over the run (default 8)",
    )
    parser.add_argument(
        "--max-tokens",
        type=int,
        default=2048,
        help="tokens drawn per trajectory; the rest is cut (default 2048)",
    )
    parser.add_argument(
        "--markdown",
        type=Path,
        default=None,
        help="compare folders: also write the study as Markdown to this file",
    )
    parser.add_argument(
        "--curves",
        type=Path,
        default=None,
        help="with --markdown: the learning-curves PNG (default: study_curves.png beside the Markdown)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress display")
    parser.set_defaults(func=main)


def main(args) -> int:
    from sgcd.cli import CliError
    from sgcd.report import RunDirError, build_compare_report, build_report, is_compare_dir

    if args.max_groups < 0:
        raise CliError(f"--max-groups must be >= 0, got {args.max_groups}")
    if args.max_tokens < 1:
        raise CliError(f"--max-tokens must be >= 1, got {args.max_tokens}")
    if not args.dir.is_dir():
        raise CliError(f"{args.dir}: no such folder")
    if args.out is not None and args.out.suffix.lower() not in (".html", ".htm"):
        raise CliError(f"--out must name an .html file, got {args.out}")
    if args.markdown is not None and not is_compare_dir(args.dir):
        raise CliError(f"--markdown needs a compare folder (with compare.json); {args.dir} has none")
    if args.curves is not None and args.markdown is None:
        raise CliError("--curves goes with --markdown")
    if args.curves is not None and args.curves.suffix.lower() != ".png":
        raise CliError(f"--curves must name a .png file, got {args.curves}")
    try:
        if args.markdown is not None:
            from sgcd.report.study import write_study

            analysis, curves = write_study(args.dir, args.markdown, args.curves)
            print(
                f"wrote {args.markdown}"
                + (f" and {curves}" if curves is not None else " (no curves: no metrics)")
            )
            for line in analysis.verdict_lines:
                print(line)
        if is_compare_dir(args.dir):
            result = build_compare_report(args.dir, args.out, progress=not args.quiet)
        else:
            result = build_report(
                args.dir,
                args.out,
                max_groups=args.max_groups,
                max_tokens=args.max_tokens,
                progress=not args.quiet,
            )
    except RunDirError as exc:
        raise CliError(str(exc)) from None
    except OSError as exc:  # a read-only or full output folder
        where = f" ({exc.filename})" if exc.filename else ""
        raise CliError(f"writing the report failed: {exc.strerror or exc}{where}") from None
    figs = f"{len(result.png_paths)} PNGs in {result.png_paths[0].parent}" if result.png_paths else "no PNGs"
    print(
        f"wrote {result.html_path} ({result.html_bytes / 1e6:.2f} MB; {result.n_groups} groups, "
        f"{result.n_tokens} token spans; {figs})"
    )
    for note in result.notes:
        print(f"note: {note}")
    return 0
