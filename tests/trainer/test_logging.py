"""Metrics logging: JSONL rows, byte offsets for resume, partial lines after a kill, NaN as null."""

from __future__ import annotations

import json

from sgcd.trainer.logging import JsonlLogger, MultiLogger, NullLogger, read_jsonl, truncate_jsonl


def test_jsonl_rows_offset_and_truncate(tmp_path):
    path = tmp_path / "metrics.jsonl"
    log = JsonlLogger(path)
    log.log({"reward/mean": 0.5, "loss/policy": float("nan")}, 1)
    offset = log.offset()
    log.log({"reward/mean": 0.75}, 2)
    log.close()
    rows = read_jsonl(path)
    assert rows == [{"step": 1, "loss/policy": None, "reward/mean": 0.5}, {"step": 2, "reward/mean": 0.75}]
    truncate_jsonl(path, offset)
    assert [r["step"] for r in read_jsonl(path)] == [1]


def test_partial_last_line_is_ignored(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text(json.dumps({"step": 1}) + "\n" + '{"step": 2, "rew')
    assert read_jsonl(path) == [{"step": 1}]


def test_multi_and_null_loggers(tmp_path):
    a, b = JsonlLogger(tmp_path / "a.jsonl"), JsonlLogger(tmp_path / "b.jsonl")
    multi = MultiLogger([a, NullLogger(), b])
    multi.log({"x/y": 1.0}, 3)
    multi.close()
    assert read_jsonl(tmp_path / "a.jsonl") == read_jsonl(tmp_path / "b.jsonl") == [{"step": 3, "x/y": 1.0}]
