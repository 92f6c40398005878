"""Config values that used to pass validation and fail later (or never): NaN and inf in any numeric field, zero
where the code divides by the value, a seed beyond int64, and presets that are not UTF-8 YAML files."""

from __future__ import annotations

import dataclasses
import re
import typing

import pytest

from sgcd.cli import main
from sgcd.trainer.config import ConfigError, RunConfig, make_config


def _float_fields(cls=RunConfig, prefix=""):
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            yield from _float_fields(hints[f.name], f"{prefix}{f.name}.")
        elif hints[f.name] is float:
            yield f"{prefix}{f.name}"


FLOATS = list(_float_fields())


@pytest.mark.parametrize("value", ["nan", ".nan", "inf", "-inf", ".inf"])
@pytest.mark.parametrize("key", FLOATS)
def test_every_numeric_field_refuses_nan_and_inf(key, value):
    with pytest.raises(ConfigError, match="^" + re.escape(key) + ": expected a finite number") as info:
        make_config(None, [f"{key}={value}"])
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "override, pattern",
    [
        ("credit.eps=0", r"credit\.eps: 0\.0 must be greater than 0\.0"),
        ("credit.gate_h0=0", r"credit\.gate_h0: 0\.0 must be greater than 0\.0"),
        ("sampling.top_p=0", r"sampling\.top_p: 0\.0 must be greater than 0\.0"),
        ("optim.beta2=1", r"optim\.beta2: 1\.0 must be less than 1\.0"),
        (f"seed={2**63}", r"seed: 9223372036854775808 is above the maximum 9223372036854775807"),
        ("seed=-1", r"seed: -1 is below the minimum 0"),
    ],
)
def test_values_that_would_fail_later_are_refused_now(override, pattern):
    with pytest.raises(ConfigError, match=pattern):
        make_config(None, [override])


def test_nan_on_the_command_line_is_one_line_and_exit_2(tmp_path, capsys):
    assert main(["train", "--out", str(tmp_path / "run"), "credit.eps=nan"]) == 2
    err = capsys.readouterr().err
    assert err == "sgcd train: error: credit.eps: expected a finite number, got nan\n"
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("kind", ["latin-1", "binary", "folder"])
def test_a_preset_that_is_not_a_yaml_text_file_is_one_line(tmp_path, capsys, kind):
    preset = tmp_path / "p.yaml"
    if kind == "folder":
        preset.mkdir()
    elif kind == "binary":
        preset.write_bytes(bytes(range(256)) * 4)
    else:
        preset.write_bytes("steps: 3 # caf\xe9\n".encode("latin-1"))
    assert main(["train", "--preset", str(preset), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"sgcd train: error: {preset}: "), err
