"""Headless Chromium for the report tests: load a file:// page offline, dump its DOM, screenshot it, and collect
what the page wrote to the console (Chromium logs console messages and uncaught errors as `INFO:CONSOLE`).

Network is cut (every host name resolves to nothing: --host-resolver-rules) and every request is recorded
(--log-net-log): `BrowserRun.requests` lists the http(s) requests the *page* started. Chromium's own background
requests (update and time checks, started with initiator "not an origin") are left out of that list; a page
opened from file:// has the opaque origin, initiator "null". Failed image loads are not console messages, which
is why the net log is read at all.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)
requires_chromium = pytest.mark.skipif(
    CHROMIUM is None,
    reason="chromium is not installed: run `bash scripts/setup_browser.sh` (Debian's chromium)",
)
ARTIFACTS = (
    Path(os.environ.get("SGCD_ARTIFACTS", Path(__file__).resolve().parents[2] / "artifacts")) / "report"
)
CONSOLE_RE = re.compile(r":CONSOLE[:(\]]|Uncaught|net::ERR_", re.IGNORECASE)


@dataclass
class BrowserRun:
    dom: str  # the DOM after the page's scripts ran (--dump-dom)
    console: list[str]  # console messages, uncaught errors and failed loads (empty for a clean page)
    requests: list[str]  # http(s) URLs the page tried to fetch (empty for a self-contained page)
    screenshot: Path | None


def _flags(profile: Path) -> list[str]:
    return [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--host-resolver-rules=MAP * ~NOTFOUND",
        f"--user-data-dir={profile}",
        "--enable-logging=stderr",
        "--v=0",
    ]


def _chromium(args: list[str], profile: Path) -> subprocess.CompletedProcess:
    assert CHROMIUM is not None
    return subprocess.run(
        [CHROMIUM, *_flags(profile), *args], capture_output=True, text=True, timeout=180, check=False
    )


def page_requests(netlog: Path) -> list[str]:
    """http(s) URLs of the URL requests in a Chromium net log that a page started (initiator not "not an origin")."""
    text = netlog.read_text()
    try:
        log = json.loads(text)
    except json.JSONDecodeError:  # a log cut short: close the event list
        log = json.loads(text.rstrip().rstrip(",") + "]}")
    names = {v: k for k, v in log["constants"]["logEventTypes"].items()}
    urls = []
    for event in log.get("events", []):
        params = event.get("params") or {}
        url = str(params.get("url", ""))
        if names.get(event.get("type")) == "URL_REQUEST_START_JOB" and url.startswith(("http:", "https:")):
            if params.get("initiator") != "not an origin":
                urls.append(url)
    return urls


def open_page(url: str, workdir: Path, screenshot: Path | None = None, size=(1400, 2200)) -> BrowserRun:
    """Load `url` twice (DOM dump with a net log, then screenshot) in fresh profiles under workdir."""
    netlog = workdir / "netlog.json"
    dom_run = _chromium(["--dump-dom", f"--log-net-log={netlog}", url], workdir / "profile-dom")
    assert dom_run.returncode == 0, f"chromium --dump-dom failed: {dom_run.stderr[-2000:]}"
    console = [line for line in dom_run.stderr.splitlines() if CONSOLE_RE.search(line)]
    if screenshot is not None:
        shot = _chromium([f"--screenshot={screenshot}", f"--window-size={size[0]},{size[1]}", url],
                         workdir / "profile-shot")  # fmt: skip
        assert shot.returncode == 0 and screenshot.is_file(), (
            f"chromium --screenshot failed: {shot.stderr[-2000:]}"
        )
        console += [line for line in shot.stderr.splitlines() if CONSOLE_RE.search(line)]
    return BrowserRun(dom_run.stdout, console, page_requests(netlog), screenshot)


def keep_artifact(path: Path, name: str) -> Path:
    """Copy a screenshot to artifacts/report/ (gitignored) so it survives pytest's tmp clean-up."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    target = ARTIFACTS / name
    shutil.copyfile(path, target)
    return target
