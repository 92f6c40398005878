"""The tau^3 airline data: published hashes verified at load, loud failure on any change, user folders."""

from __future__ import annotations

import hashlib
import shutil

import pytest

from sgcd.envs.tau3_airline.data import (
    DATA_DIR_ENV,
    EXPECTED_SHA256,
    DataError,
    load_data,
    resolve_folder,
)


def _copy_airline(tmp_path, layout=("tau2", "domains", "airline")):
    src = resolve_folder(None)
    dst = tmp_path.joinpath(*layout)
    dst.mkdir(parents=True)
    for name in EXPECTED_SHA256:
        shutil.copyfile(src / name, dst / name)
    return dst


def test_wheel_data_is_the_published_release():
    data = load_data()
    assert data.verified
    for name, expected in EXPECTED_SHA256.items():
        assert hashlib.sha256((data.folder / name).read_bytes()).hexdigest() == expected
    # split_tasks.json: train 30 / test 20, disjoint, base = their union (the paper's 50 tasks)
    train, test, base = (set(data.splits[s]) for s in ("train", "test", "base"))
    assert (len(train), len(test), len(base)) == (30, 20, 50)
    assert not train & test and train | test == base
    assert {str(t["id"]) for t in data.tasks} == base


def test_modified_file_fails_loudly_naming_file_and_both_hashes(tmp_path):
    folder = _copy_airline(tmp_path)
    tasks = folder / "tasks.json"
    tasks.write_bytes(tasks.read_bytes().replace(b'"4"', b'"5"', 1))  # one changed character
    actual = hashlib.sha256(tasks.read_bytes()).hexdigest()
    with pytest.raises(DataError) as err:
        load_data(folder)
    msg = str(err.value)
    assert "tasks.json" in msg and actual in msg and EXPECTED_SHA256["tasks.json"] in msg
    assert "db.json" not in msg  # the untouched files are not blamed
    # an explicit opt-out loads the modified data (for deliberate experiments) and says it is unverified
    assert load_data(folder, verify=False).verified is False


def test_missing_file_is_named(tmp_path):
    folder = _copy_airline(tmp_path)
    (folder / "policy.md").unlink()
    with pytest.raises(DataError, match=r"policy\.md: missing"):
        load_data(folder)


def test_environment_variable_points_at_a_tau2_data_root(tmp_path, monkeypatch):
    _copy_airline(tmp_path / "root")
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path / "root"))
    data = load_data()
    assert data.folder == (tmp_path / "root" / "tau2" / "domains" / "airline").resolve()
    assert data.verified and len(data.tasks) == 50


def test_folder_without_tasks_is_refused(tmp_path):
    with pytest.raises(DataError, match="no airline tasks.json"):
        load_data(tmp_path)
