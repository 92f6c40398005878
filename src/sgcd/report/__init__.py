"""Run reports: credit heatmaps, learning curves, summaries (static, self-contained HTML + PNG).

    build_report(run_dir, out=None, max_groups=8, max_tokens=2048) -> ReportResult
    build_compare_report(compare_dir, out=None) -> ReportResult
    is_compare_dir(path) -> bool
    study.write_study(compare_dir, md_path, curves=None) -> (Analysis, curves PNG path | None)

Imports matplotlib and jinja2 (never torch), so `sgcd report` is quick to start.
"""

from sgcd.report.compare import build_compare_report, is_compare_dir
from sgcd.report.render import ReportResult, build_report
from sgcd.report.rundir import RunDirError

__all__ = ["ReportResult", "RunDirError", "build_compare_report", "build_report", "is_compare_dir"]
