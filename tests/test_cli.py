from sgcd import __version__
from sgcd.cli import main


def test_version(capsys):
    try:
        main(["--version"])
    except SystemExit as exc:
        assert exc.code == 0
    assert __version__ in capsys.readouterr().out


def test_help_lists_commands(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    assert "sgcd" in out and "COMMAND" in out


def test_python_dash_m_prints_one_line_errors():
    """`python -m sgcd.cli` runs the module as __main__; its errors must still be one line, not a traceback."""
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "sgcd.cli", "eval", "--env", "airline-lite", "--policy", "scripted:gold",
         "--trials", "0"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2 and proc.stderr == "sgcd eval: error: --trials must be >= 1, got 0\n", (
        proc.stderr
    )
