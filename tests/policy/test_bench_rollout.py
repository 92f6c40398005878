"""`sgcd bench rollout` runs end to end on the tiny model and writes its figures (speed targets live in the
benchmark itself, never in a timed test)."""

from __future__ import annotations

import json

from sgcd.cli import main


def test_bench_rollout_tiny_writes_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    rc = main(
        [
            "bench",
            "rollout",
            "--models",
            "tiny",
            "--G",
            "2",
            "--max-new-tokens",
            "3",
            "--repeats",
            "1",
            "--threads",
            "1",
            "--json",
            str(out),
        ]
    )
    assert rc == 0
    data = json.loads(out.read_text())
    rows = {r["mode"]: r for r in data["rows"]}
    assert set(rows) == {"batched", "sequential"} and all(r["tokens_per_s"] > 0 for r in rows.values())
    assert all(r["peak_rss_mb"] > 50 for r in rows.values())
    assert data["speedup"]["tiny"] == rows["batched"]["tokens_per_s"] / rows["sequential"]["tokens_per_s"]
    assert "tiny" in capsys.readouterr().out
