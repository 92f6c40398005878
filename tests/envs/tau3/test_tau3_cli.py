"""`sgcd eval --env tau3-airline ... --user ...`: per-task JSON with the DB/COMMUNICATE breakdown; errors."""

from __future__ import annotations

import json

from sgcd.cli import main


def test_eval_writes_per_task_json_with_breakdown(tmp_path, capsys):
    out = tmp_path / "gold.json"
    argv = ["eval", "--env", "tau3-airline", "--split", "test", "--policy", "scripted:read-only"]
    rc = main(
        [*argv, "--user", "scripted", "--limit", "3", "--trials", "2", "--json", str(out), "--no-progress"]
    )
    assert rc == 0
    result = json.loads(out.read_text())
    # the test split starts 2, 6, 8: the gold of 2 and 6 writes nothing (read-only succeeds), 8 books a flight
    by_task = {}
    for r in result["records"]:
        by_task.setdefault(r["task_id"], []).append((r["success"], r["breakdown"]))
    assert set(by_task) == {"2", "6", "8"} and all(len(v) == 2 for v in by_task.values())
    assert by_task["2"][0] == (True, {"db": 1.0, "communicate": 1.0})
    assert by_task["6"][1] == (True, {"db": 1.0, "communicate": 1.0})
    assert by_task["8"][0] == (False, {"db": 0.0, "communicate": 1.0})  # nothing booked; nothing to say
    # pass^k over 3 tasks x 2 identical trials: C(2,k)/C(2,k) = 1 for tasks 2 and 6, 0 for 8 -> 2/3 for k=1,2
    assert result["pass_k"] == {"1": 2 / 3, "2": 2 / 3}
    assert "pass^2" in capsys.readouterr().out


def test_bad_user_and_bad_option_are_one_line_errors(capsys):
    argv = ["eval", "--env", "tau3-airline", "--split", "test", "--policy", "scripted:gold", "--limit", "1"]
    assert main([*argv, "--user", "gpt4"]) == 2
    assert "user must be 'scripted' or 'openai:MODEL', got 'gpt4'" in capsys.readouterr().err
    assert main([*argv, "--option", "max_errors=lots"]) == 2
    assert "max_errors='lots'" in capsys.readouterr().err
