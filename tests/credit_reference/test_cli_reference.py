"""Group JSONL round trip and `sgcd reference show | demo`."""

from __future__ import annotations

import json

import pytest
from cref_groups import cancel_group

from sgcd.cli import main
from sgcd.credit_reference import group_from_json, group_to_json, make_summarizer


def test_group_json_round_trip():
    g = cancel_group()
    ref = make_summarizer("offline").summarize(g)
    record = json.loads(json.dumps(group_to_json(g, reference=ref, step=3)))
    assert group_from_json(record) == g  # text level: episodes, prompt, tools, instruction
    assert record["reference"] == ref.model_dump(mode="json") and record["step"] == 3
    with pytest.raises(ValueError, match="'siblings'"):
        group_from_json({"task_id": "x"})


def test_show_group_file_computes_a_reference(tmp_path, capsys):
    path = tmp_path / "groups.jsonl"
    path.write_text(json.dumps(group_to_json(cancel_group())) + "\n")
    assert main(["reference", "show", str(path), "--plain"]) == 0
    out = capsys.readouterr().out
    assert "reference: offline" in out and "--- evidence ---" in out
    assert "Training-only credit reference, derived from sibling attempts" in out
    assert "=== Failure 3" in out and '"summarizer/references": 1.0' in out


def test_show_run_dir_uses_the_stored_reference_side_by_side(tmp_path, capsys):
    g = cancel_group()
    ref = make_summarizer("offline").summarize(g)
    record = group_to_json(g, reference=ref, step=7)
    del record["prompt"]  # the trainer's sample lines carry no prompt; it is optional
    (tmp_path / "samples").mkdir()
    (tmp_path / "samples" / "step_000007.jsonl").write_text(json.dumps(record) + "\n")
    assert main(["reference", "show", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "step 7" in out and "reference: stored" in out and "Credit reference" in out


def test_show_errors_are_one_line(tmp_path, capsys):
    assert main(["reference", "show", str(tmp_path / "nope.jsonl")]) == 2
    assert "does not exist" in capsys.readouterr().err
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"task_id": "x"}\n')
    assert main(["reference", "show", str(bad)]) == 2
    assert "lacks key 'siblings'" in capsys.readouterr().err
    assert main(["reference", "show", str(bad), "--index", "4"]) == 2
    assert "out of range" in capsys.readouterr().err
    assert main(["reference", "show", str(bad), "--summarizer", "gpt4"]) == 2


def test_demo_on_airline_lite_writes_a_group_show_reads(tmp_path, capsys):
    out_file = tmp_path / "demo.jsonl"
    assert (
        main(
            [
                "reference",
                "demo",
                "--env",
                "airline-lite",
                "--index",
                "8",
                "--plain",
                "--write",
                str(out_file),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "===== Group: airline-lite/train/00008" in out and "Teacher system prompt" in out
    record = json.loads(out_file.read_text())
    group = group_from_json(record)
    assert group.is_mixed and len(group.trajectories) == 5
    assert main(["reference", "show", str(out_file), "--plain"]) == 0
    assert "reference: stored" in capsys.readouterr().out
