"""Loud failures in `sgcd eval` (issue 19, item 4): a broken endpoint (unreachable, refused key, unknown model) is
not a score of 0.000 but one line on stderr and a non-zero exit; a working endpoint whose answers fail the tasks
is still an evaluation (exit 0, success 0.000)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import sgcd
from sgcd.cli import main
from sgcd.eval.runners import TextAgentRunner
from sgcd.policy.base import EndpointError
from support.openai_double import OpenAIDouble, http_error, reply

SRC = Path(sgcd.__file__).resolve().parents[1]


def test_unreachable_endpoint_is_one_line_and_non_zero():
    # the Must-show command, as a user types it (port 9 has no server)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "sgcd.cli", "eval", "--policy", "openai:x"]
    cmd += ["--base-url", "http://127.0.0.1:9/v1", "--limit", "2"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr and "success" not in done.stdout
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("sgcd eval: error: openai:x: endpoint http://127.0.0.1:9/v1 cannot be reached")


@pytest.mark.parametrize(
    ("status", "says"), [(401, "refused the API key (HTTP 401)"), (404, "answered 404 for model 'm'")]
)
def test_refused_key_or_unknown_model_stops_at_once(status, says, capsys):
    with OpenAIDouble(handler=lambda body: http_error(status, "nope")) as srv:
        args = ["eval", "--policy", "openai:m", "--base-url", srv.base_url, "--limit", "3"]
        assert main(args) == 2
        assert srv.request_count == 1  # the first failure ends it: no 3 tasks scored 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and says in err and "(no task was scored)" in err


def test_task_failures_are_still_an_evaluation(capsys):
    with OpenAIDouble(handler=lambda body: reply("I cannot help with that.")) as srv:
        assert main(["eval", "--policy", "openai:m", "--base-url", srv.base_url, "--limit", "2"]) == 0
    out = capsys.readouterr().out
    assert "0.000" in out and "2 tasks" in out


class _Agent:
    def __init__(self, exc: Exception) -> None:
        self.exc = exc

    def act(self, messages, tools):
        raise self.exc


def test_runner_fails_the_episode_but_lets_endpoint_errors_through():
    from sgcd.envs import get_domain

    domain = get_domain("airline-lite", test_size=2)
    env = domain.make_env(domain.tasks("test")[0])
    episode = TextAgentRunner(agent=_Agent(ValueError("bad answer"))).run_one(env)
    assert not episode.success and "bad answer" in episode.info["agent_error"]
    with pytest.raises(EndpointError, match="down"):
        TextAgentRunner(agent=_Agent(EndpointError("down"))).run_one(domain.make_env(domain.tasks("test")[1]))
