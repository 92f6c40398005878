"""A compare page embeds only files inside the study folder: compare.json cannot pull any local file (an
absolute path, `..`, a link out of the folder) into a page meant to be shared."""

from __future__ import annotations

import json

import pytest

from sgcd.cli import main

SECRET = "PRIVATE-KEY-MATERIAL-0b7e"


@pytest.mark.parametrize("how", ["absolute", "dotdot", "symlink"])
@pytest.mark.parametrize("key", ["table", "plot"])
def test_compare_json_cannot_embed_a_file_outside_the_folder(tmp_path, capsys, key, how):
    secret = tmp_path / "secret.md"
    secret.write_text(f"| {SECRET} |\n")
    study = tmp_path / "study"
    study.mkdir()
    if how == "absolute":
        named = str(secret)
    elif how == "dotdot":
        named = "../secret.md"
    else:
        (study / "innocent.md").symlink_to(secret)
        named = "innocent.md"
    (study / "compare.json").write_text(json.dumps({"algorithms": ["grpo"], "runs": [], key: named}))
    assert main(["report", str(study), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert (
        err.count("\n") == 1 and f"compare.json: '{key}' names" in err and "outside the study folder" in err
    )
    for path in study.rglob("*"):
        if path.is_file() and not path.is_symlink():
            assert SECRET not in path.read_text(errors="replace")
