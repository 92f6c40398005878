"""`sgcd bench core` runs end to end on a tiny batch and writes consistent JSON (speed targets live in the bench)."""

from __future__ import annotations

import json

from sgcd.cli import main


def test_bench_core_tiny(tmp_path, capsys):
    import torch

    threads = torch.get_num_threads()
    out = tmp_path / "bench.json"
    rc = main(["bench", "core", "--batch", "2", "--tokens", "16", "--vocab", "32", "--repeats", "2",
               "--chunk", "5", "--json", str(out)])  # fmt: skip
    assert rc == 0
    assert torch.get_num_threads() == threads  # the bench's --threads 1 does not leak into the caller
    result = json.loads(out.read_text())
    med = result["median_s"]
    assert med["log_softmax"] > 0 and med["core_total"] > 0
    assert result["ratio"] == med["core_total"] / med["log_softmax"]
    assert len(result["runs_s"]["log_softmax"]) == 2 and result["chunk"] == 5
    assert "ratio (credit + advantages + loss) / log_softmax" in capsys.readouterr().out


def test_bench_core_rejects_bad_sizes(capsys):
    assert main(["bench", "core", "--batch", "0"]) == 2
    assert "--batch must be >= 1" in capsys.readouterr().err
