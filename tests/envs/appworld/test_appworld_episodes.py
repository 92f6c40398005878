"""End to end on synthetic tasks built with the real appworld package: scripted agent programs through the env,
AppWorld's own evaluator, TGC/SGC, the eval path, concurrency and the function-call mode."""

from __future__ import annotations

import json
import threading
from dataclasses import replace

import pytest

from sgcd.envs.appworld import make_domain, tgc_sgc
from sgcd.envs.appworld.env import AppWorldEnv
from sgcd.envs.appworld.synthetic import SPLITS, correct_script, wrong_script
from sgcd.types import Episode


def reply(code: str) -> str:
    return f"I will do this step.\n```python\n{code}```"


def run(domain, task, code: str):
    env = domain.make_env(task)
    env.reset()
    return env.step(reply(code))


def test_splits_and_tasks_come_from_the_data(domain):
    assert domain.splits() == ["dev", "test_normal", "train"]
    tasks = domain.tasks("test_normal")
    assert [t.task_id for t in tasks] == SPLITS["test_normal"]
    assert tasks[0].family == "5a1e0a1" and "titled 'packing'" in tasks[0].instruction
    with pytest.raises(ValueError, match="unknown appworld split 'test'"):
        domain.tasks("test")


@pytest.mark.parametrize("task_id", SPLITS["test_normal"])
def test_correct_program_passes_and_wrong_one_fails(domain, task_id):
    task = next(t for t in domain.tasks("test_normal") if t.task_id == task_id)
    good = run(domain, task, correct_script(task_id))
    # every synthetic task has 3 ground-truth tests; the correct program passes them all
    assert good.done and good.reward == 1.0
    assert (good.info["pass_count"], good.info["fail_count"], good.info["pass_fraction"]) == (3, 0, 1.0)
    ep = good.info["episode"]
    assert isinstance(ep, Episode) and ep.success and ep.task_id == task_id and len(ep.steps) == 1
    assert ep.steps[0].calls[0].is_write  # login / create_note / complete_task are POSTs
    bad = run(domain, task, wrong_script(task_id))
    # the wrong program completes the task but gets one requirement wrong: 2 of 3 tests pass
    assert bad.done and bad.reward == 0.0
    assert (bad.info["pass_count"], bad.info["fail_count"]) == (2, 1)
    assert bad.info["pass_fraction"] == pytest.approx(2 / 3)
    assert not bad.info["episode"].success and bad.info["failures"][0]["requirement"]


def test_multi_turn_session_keeps_state_and_shows_output(domain):
    task = domain.tasks("train")[0]
    env = domain.make_env(task)
    obs = env.reset()
    assert obs.messages[0].role == "system" and "```python" in obs.messages[0].content
    assert obs.messages[1].content == f"Task: {task.instruction}"
    first = env.step(reply("docs = apis.api_docs.show_api_descriptions(app_name='simple_note')\nprint(docs)"))
    assert not first.done and "create_note" in first.messages[0].content
    second = env.step(reply("print(len(docs) > 5)"))  # `docs` survives between turns
    assert not second.done and "True" in second.messages[0].content
    last = env.step(reply(correct_script(task.task_id)))
    assert last.done and last.reward == 1.0 and len(last.info["episode"].steps) == 3


def test_turn_without_code_is_an_error_and_max_turns_still_evaluates(domain):
    task = domain.tasks("train")[0]
    env = domain.make_env(task)
    env.reset()
    results = [env.step("I think I am done.") for _ in range(4)]  # the fixture's max_turns is 4
    assert all(not r.done for r in results[:3]) and "No code block found" in results[0].messages[0].content
    end = results[3]
    # nothing was done: not completed (test 1 fails), no note added (test 2), nothing to compare (test 3)
    assert end.done and end.reward == 0.0 and (end.info["pass_count"], end.info["fail_count"]) == (0, 3)
    assert end.info["reason"] == "max_turns (4) reached"
    assert all(s.error for s in end.info["episode"].steps)


class ScriptAgent:
    """A TextAgent that writes the correct program, except for the task ids it is told to get wrong."""

    def __init__(self, task, wrong: set[str]):
        self.code = (wrong_script if task.task_id in wrong else correct_script)(task.task_id)

    def act(self, messages, tools):
        return reply(self.code)


def test_tgc_sgc_through_the_eval_path(domain):
    from sgcd.eval import evaluate
    from sgcd.eval.runners import TextAgentRunner

    runner = TextAgentRunner(agent_factory=lambda task: ScriptAgent(task, wrong={"5a1e0b2_2"}))
    result = evaluate(runner, domain, "test_normal", progress=False)
    assert [r.success for r in result.records] == [True, True, True, True, False]
    # 4 of 5 tasks pass: TGC 80; scenario 5a1e0a1 passes fully, 5a1e0b2 has a failing task: SGC 1/2 = 50
    assert domain.extra_metrics(result.episodes) == {"tgc": 80.0, "sgc": 50.0}
    assert tgc_sgc([r.task_id for r in result.records], [r.success for r in result.records])["sgc"] == 50.0
    # all of scenario 5a1e0b2 run, one task wrong: that scenario's SGC is 0
    dev = evaluate(runner, domain, "dev", progress=False)
    assert domain.extra_metrics(dev.episodes) == {"tgc": 50.0, "sgc": 0.0}


def test_episodes_run_concurrently_on_separate_workers(domain):
    tasks = domain.tasks("dev")
    envs = [domain.make_env(t) for t in tasks]
    for env in envs:
        env.reset()
    pids = {env._worker.pid for env in envs}
    assert len(pids) == 2  # one world per process
    out: dict[str, float] = {}

    def finish(env):
        out[env.task.task_id] = env.step(reply(correct_script(env.task.task_id))).reward

    threads = [threading.Thread(target=finish, args=(e,)) for e in envs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert out == {"5a1e0b2_1": 1.0, "5a1e0b2_2": 1.0}


def test_function_call_mode(domain, synthetic_root, appworld_python):
    fdomain = make_domain(root=str(synthetic_root), python=appworld_python, mode="function",
                          tool_apps="supervisor,simple_note")  # fmt: skip
    tools = fdomain.tools()
    names = {t["function"]["name"] for t in tools}
    assert {"supervisor__complete_task", "simple_note__create_note"} <= names
    task = domain.tasks("train")[1]  # 'ideas' / 'a tiny bot'
    limits = replace(domain.config.limits, mode="function", max_turns=6)
    env = AppWorldEnv(task, domain.pool, limits, tools)
    obs = env.reset()
    assert obs.tools == tools and "<tool_call>" in obs.messages[0].content

    def call(name, **args):
        return env.step(f'<tool_call>{{"name": "{name}", "arguments": {json.dumps(args)}}}</tool_call>')

    pw = json.loads(call("supervisor__show_account_passwords").messages[0].content)
    password = next(p["password"] for p in pw if p["account_name"] == "simple_note")
    bad = call("simple_note__nonexistent_api")
    assert bad.messages[0].role == "tool" and "unknown tool" in bad.messages[0].content and not bad.done
    login = call("simple_note__login", username="ada.lovelace@example.com", password=password)
    token = json.loads(login.messages[0].content)["access_token"]
    call("simple_note__create_note", title="ideas", content="a tiny bot", access_token=token)
    end = call("supervisor__complete_task")
    assert end.done and end.reward == 1.0 and end.info["pass_count"] == 3
    fdomain.close()


def test_sgcd_eval_prints_tgc_and_sgc(synthetic_root, appworld_python, tmp_path, capsys):
    from sgcd.cli import main

    replay = tmp_path / "replay.jsonl"
    with replay.open("w") as f:
        for tid in SPLITS["test_normal"]:
            code = (wrong_script if tid == "5a1e0b2_2" else correct_script)(tid)
            f.write(json.dumps({"task_id": tid, "turns": [reply(code)]}) + "\n")
    args = ["eval", "--env", "appworld", "--split", "test_normal", "--policy", f"replay:{replay}"]
    args += ["--option", f"root={synthetic_root}", "--option", f"python={appworld_python}"]
    args += ["--option", "workers=1", "--no-progress"]
    assert main(args) == 0
    # 4 of 5 pass (TGC 80); scenario 5a1e0b2 has the failing task (SGC 1 of 2 = 50)
    assert "appworld metrics: tgc 80.0, sgc 50.0" in capsys.readouterr().out


def test_batched_model_runner_drives_worlds_in_lockstep(domain):
    """The token-level rollout (PolicyRunner.run_batch with the tiny model) over AppWorld envs: both worlds open
    at once, each episode runs to the env's max_turns (4) and is evaluated by AppWorld."""
    from sgcd.eval import evaluate, make_runner

    runner = make_runner("tiny", domain, max_new_tokens=8, batch_size=2)
    result = evaluate(runner, domain, "dev", progress=False, batch_size=2)
    assert [r.task_id for r in result.records] == SPLITS["dev"]
    for ep in result.episodes:
        assert ep.info["reason"] == "max_turns (4) reached" and ep.info["num_tests"] == 3
        assert len(ep.steps) == 4 and not ep.success
    assert domain.extra_metrics(result.episodes) == {"tgc": 0.0, "sgc": 0.0}
