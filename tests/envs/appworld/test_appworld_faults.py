"""Faults: hung actions, crashing workers, hostile code, the trainer's clock, and sockets."""

from __future__ import annotations

import datetime
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sgcd.envs.appworld.env import AppWorldEnv, EnvLimits
from sgcd.envs.appworld.synthetic import correct_script

# AppWorld's own cell limit 1 s (an observation); our hard deadline 6 s (the worker is killed)
LIMITS = EnvLimits(max_turns=20, appworld_timeout_s=1, action_timeout_s=6)


@pytest.fixture
def fdomain(domain):
    return domain  # the session's domain and worker pool; envs here get LIMITS


def reply(code: str) -> str:
    return f"```python\n{code}\n```"


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/status").read_text().split("State:")[1].split()[0] != "Z"


def fresh_env(domain, i=0):
    env = AppWorldEnv(domain.tasks("train")[i], domain.pool, LIMITS)
    env.reset()
    return env


def test_plain_infinite_loop_hits_appworlds_limit_and_the_episode_goes_on(fdomain):
    env = fresh_env(fdomain)
    r = env.step(reply("while True:\n    pass"))
    assert not r.done and "timed out after 1 seconds" in r.messages[0].content
    assert env.step(reply(correct_script(env.task.task_id))).reward == 1.0


def test_hung_action_is_killed_and_the_worker_replaced(fdomain):
    env = fresh_env(fdomain)
    pid, replaced = env._worker.pid, fdomain.pool.replaced
    # swallows AppWorld's SIGALRM timeout, so only the hard deadline can stop it
    hang = "while True:\n    try:\n        while True:\n            pass\n    except BaseException:\n        pass"
    t0 = time.monotonic()
    r = env.step(reply(hang))
    assert 6 <= time.monotonic() - t0 < 30
    assert r.done and r.reward == 0.0 and r.info["timed_out"]
    assert r.info["failure"] == f"execute timed out after 6s; worker {pid} killed"
    assert not r.info["episode"].success and r.info["episode"].steps[-1].error
    assert not alive(pid) and fdomain.pool.replaced == replaced + 1
    again = fresh_env(fdomain)
    assert again._worker.pid != pid
    assert again.step(reply(correct_script(again.task.task_id))).reward == 1.0


@pytest.mark.parametrize("how", ["model code aborts the interpreter", "killed from outside"])
def test_crashing_worker_fails_the_episode_and_is_replaced(fdomain, how):
    env = fresh_env(fdomain)
    pid, replaced = env._worker.pid, fdomain.pool.replaced
    if how == "killed from outside":
        os.kill(pid, signal.SIGKILL)
        r, code = env.step(reply("print(1)")), -9
    else:
        r, code = env.step(reply("getattr(builtins.__import__('os'), 'abort')()")), -6
    assert r.done and r.reward == 0.0 and not r.info["timed_out"]
    assert r.info["failure"].startswith(f"worker {pid} crashed during execute (exit code {code})")
    assert not alive(pid) and fdomain.pool.replaced == replaced + 1
    again = fresh_env(fdomain)
    assert again.step(reply(correct_script(again.task.task_id))).reward == 1.0


def test_hostile_code_is_refused_or_contained(fdomain, tmp_path, monkeypatch):
    mark = tmp_path / "pwned"
    secret = tmp_path / "secret.txt"
    secret.write_text("s3cret-value")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(0.5)
    port = listener.getsockname()[1]
    monkeypatch.setenv("SGCD_TEST_API_KEY", "sk-should-not-leak")
    victim = subprocess.Popen(["sleep", "60"])  # a process of ours the model code tries to kill
    env = fresh_env(fdomain, 2)
    attempts = {
        # refused by AppWorld's guard (syntax check: module or function not allowed)
        "import subprocess\nsubprocess.run(['touch', MARK])": "not allowed: subprocess",
        "import os\nos.system('touch ' + MARK)": "not allowed: os.system",
        "open(MARK, 'w').write('x')": "not allowed: builtins.open",
        "import socket": "not allowed: socket",
        # guard bypasses, contained by the worker's audit hook
        "getattr(builtins.__import__('io'), 'FileIO')(MARK, 'w')": "PermissionError: writing files",
        "print(getattr(builtins.__import__('io'), 'FileIO')(SECRET).read())": "outside the AppWorld worker sandbox",
        # the ground truth sits in the data folder; pathlib reads pass AppWorld's guard, our hook refuses them
        "import pathlib\nprint(pathlib.Path('data/tasks/TASK/ground_truth/answer.json').read_text())": "outside",
        "import pathlib\nprint(pathlib.Path(ROOT, 'data', 'datasets', 'train.txt').read_text())": "outside",
        # nor is it in memory: walking the heap finds a world that never loaded it
        "gc = builtins.__import__('gc')\nw = [o for o in gc.get_objects() if type(o).__name__ == 'AppWorld']\n"
        "print(len(w), w[0].task.ground_truth)": "1 None",
        "s = builtins.__import__('socket').socket()\ns.connect(('127.0.0.1', PORT))": "socket.connect is not allowed",
        "getattr(builtins.__import__('os'), 'execv')('/bin/touch', ['touch', MARK])": "os.exec is not allowed",
        # no-op'd by AppWorld's guard while code runs: nothing happens
        "builtins.__import__('subprocess').Popen(['touch', MARK])": "Execution successful",
        "getattr(builtins.__import__('os'), 'kill')(VICTIM, 9)": "Execution successful",
        # the worker's environment is scrubbed: no API keys reach model code
        "import os\nprint(os.environ.get('SGCD_TEST_API_KEY'), 'OPENAI_API_KEY' in os.environ)": "None False",
    }
    for code, expected in attempts.items():
        code = code.replace("MARK", repr(str(mark))).replace("SECRET", repr(str(secret)))
        code = code.replace("TASK", env.task.task_id).replace("ROOT", repr(str(fdomain.root)))
        r = env.step(reply(code.replace("PORT", str(port)).replace("VICTIM", str(victim.pid))))
        assert not r.done, code
        assert expected in r.messages[0].content, (code, r.messages[0].content)
        assert "s3cret-value" not in r.messages[0].content and "5a1e0a1_1" not in r.messages[0].content
    assert not mark.exists()
    assert victim.poll() is None  # still running
    victim.kill()
    victim.wait()
    with pytest.raises(TimeoutError):
        listener.accept()  # nobody connected
    listener.close()
    assert env.step(reply(correct_script(env.task.task_id))).reward == 1.0


def test_trainer_clock_is_never_frozen(fdomain):
    before_wall, before_mono = time.time(), time.monotonic()
    env = fresh_env(fdomain)
    r = env.step(reply("import datetime\nprint(datetime.datetime.now().isoformat())"))
    assert r.messages[0].content == "Output:\n```\n2023-05-18T12:00:00\n```"  # the world's frozen clock
    time.sleep(0.2)
    wall = time.time() - before_wall
    assert wall >= 0.2 and abs(wall - (time.monotonic() - before_mono)) < 0.5  # our clock moves in real time
    assert datetime.datetime.now().year >= 2024
    assert "appworld" not in sys.modules and "freezegun" not in sys.modules
    env.step(reply(correct_script(env.task.task_id)))


def _inet_inodes(pid: int) -> set[str]:
    inodes = set()
    for table in ("tcp", "tcp6", "udp", "udp6", "raw", "raw6"):
        path = Path(f"/proc/{pid}/net/{table}")
        if path.exists():
            inodes |= {line.split()[9] for line in path.read_text().splitlines()[1:] if line.strip()}
    return inodes


def test_workers_hold_no_network_socket(fdomain):
    env = fresh_env(fdomain)  # a world open, mid-episode
    env.step(reply("print(apis.supervisor.show_profile())"))
    pids = fdomain.pool.pids
    assert pids
    for pid in pids:
        links = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
        sockets = {link[len("socket:[") : -1] for link in links if link.startswith("socket:[")}
        # no TCP/UDP/raw socket at all, so nothing can listen on any address (only pipes to the trainer)
        assert not sockets & _inet_inodes(pid), (pid, sockets)
    env.step(reply(correct_script(env.task.task_id)))
