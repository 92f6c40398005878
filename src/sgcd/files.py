"""Small-file writes that a reader never sees half done: the one atomic write of summary.json, compare.json,
study.json and a study's Markdown. Standard library only, so every layer (trainer, report) can use it.
"""

from __future__ import annotations

import os
from pathlib import Path


def write_atomic_text(path: Path | str, text: str) -> None:
    """Write a small text file atomically: a temp file beside it (named by this process), fsync, rename."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
