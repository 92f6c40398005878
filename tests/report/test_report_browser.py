"""The report in a real browser (headless Chromium, offline): it renders every token span, logs nothing to the
console, fetches nothing, and hostile token text stays text. Screenshots are kept under artifacts/report/."""

from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path

import pytest
from report_browser import keep_artifact, open_page, requires_chromium
from report_synthetic import make_run_dir
from test_report_render import RESOURCE_RE

from sgcd.cli import main as cli_main
from sgcd.report import build_report

pytestmark = [pytest.mark.browser, requires_chromium]

TOKEN_SPAN_RE = re.compile(r'<span class="tk( mk)?"')


def _check_rendered(dom: str, n_tokens: int) -> None:
    """The script drew one span per token in the blob, and no token text became markup."""
    assert len(TOKEN_SPAN_RE.findall(dom)) == n_tokens
    assert f'data-rendered="{n_tokens}"' in dom
    assert re.search(r'<img[^>]*src="x"', dom) is None and "<script>alert" not in dom


def test_the_checks_can_fail(tmp_path):
    # A page that logs an error, throws, and fetches an image: all three must be seen.
    page = tmp_path / "bad.html"
    page.write_text('<html><body><img src="https://example.invalid/x.png">'
                    '<script>console.error("boom"); undefinedThing();</script></body></html>')  # fmt: skip
    run = open_page(page.as_uri(), tmp_path)
    assert any("boom" in line for line in run.console) and any("Uncaught" in line for line in run.console)
    assert run.requests == ["https://example.invalid/x.png"]


def test_synthetic_report_renders_offline_without_console_errors(tmp_path):
    run_dir = make_run_dir(tmp_path)
    result = build_report(run_dir)
    shot = tmp_path / "report.png"
    page = open_page(result.html_path.as_uri(), tmp_path, screenshot=shot)
    assert page.console == [] and page.requests == []
    _check_rendered(page.dom, result.n_tokens)
    assert page.dom.count('class="sib ok"') + page.dom.count('class="sib bad"') == 24  # 6 groups x 4 siblings
    assert shot.read_bytes()[:4] == b"\x89PNG" and shot.stat().st_size > 20_000  # a page, not a blank
    keep_artifact(shot, "synthetic_report.png")


def test_fragment_shows_one_group_and_chosen_siblings(tmp_path):
    run_dir = make_run_dir(tmp_path)
    result = build_report(run_dir)
    page = open_page(result.html_path.as_uri() + "#g=1&s=0,3", tmp_path)
    assert page.console == []
    assert re.search(r'<body class="focus"', page.dom)
    # 6 groups: all but group 1 hidden; in group 1 the siblings 1 and 2 are hidden, 0 and 3 shown
    assert len(re.findall(r'class="group hide"', page.dom)) == 5
    group1 = page.dom[page.dom.index('id="g1"') : page.dom.index('id="g2"')]
    assert 'id="lo-label">w = 0.800<' in page.dom  # colour saturates at 1 - eps by default (eps = 0.2)
    assert re.findall(r'class="sib (?:ok|bad)( hide)?" data-s="(\d)"', group1) == [
        ("", "0"),
        (" hide", "1"),
        (" hide", "2"),
        ("", "3"),
    ]


def _coin_domain():
    """The trainer tests' `test-coin` domain (about half the tiny model's replies succeed, so groups are mixed):
    on airline-lite the random tiny model never succeeds, every smoke step is skipped and no group is sampled."""
    folder = str(Path(__file__).resolve().parents[1] / "trainer")
    if folder not in sys.path:  # the same module object the trainer tests import, when they ran first
        sys.path.append(folder)
    module = importlib.import_module("coin_domain")
    module.register()
    return module


def test_smoke_run_report_in_chromium(tmp_path, capsys):
    """Issue 8, Must show 1 and 2: `sgcd train --preset smoke`, `sgcd report`, then Chromium (offline)."""
    _coin_domain()
    run_dir = tmp_path / "smoke"
    args = [
        "train",
        "--preset",
        "smoke",
        "--out",
        str(run_dir),
        "--quiet",
        "env.name=test-coin",
        "env.options={}",
    ]
    assert cli_main(args) == 0
    capsys.readouterr()
    assert cli_main(["report", str(run_dir), "--quiet"]) == 0
    printed = capsys.readouterr().out
    n_tokens = int(re.search(r"(\d+) token spans", printed).group(1))
    assert n_tokens > 0, f"the smoke run sampled no groups for heatmaps:\n{printed}"
    html_path = run_dir / "report.html"
    html = html_path.read_text()
    assert html_path.stat().st_size < 10_000_000 and RESOURCE_RE.search(html) is None
    assert (run_dir / "report_figures" / "reward.png").is_file()
    shot = tmp_path / "smoke_report.png"
    page = open_page(html_path.as_uri(), tmp_path, screenshot=shot)
    assert page.console == [] and page.requests == []
    _check_rendered(page.dom, n_tokens)
    keep_artifact(shot, "smoke_report.png")
    with capsys.disabled():
        print(f"\nsmoke report: {printed.strip()}")


def test_auto_colour_scale_from_fragment(tmp_path):
    run_dir = make_run_dir(tmp_path)
    result = build_report(run_dir)
    page = open_page(result.html_path.as_uri() + "#scale=auto", tmp_path)
    assert page.console == []
    # the synthetic weights are 1 + N(0, 0.1) clamped to [0.6, 1.4]: their p99 |w - 1| lies well inside
    # (0.1, 0.4), so the label moves off 0.800 to 1 - p99, strictly between 0.6 and 0.9
    low = float(re.search(r'id="lo-label">w = ([0-9.]+)<', page.dom).group(1))
    assert 0.6 < low < 0.9 and low != 0.8
