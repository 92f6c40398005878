"""evaluate + runners on airline-lite with scripted policies (Must show 1), and the runner spec dispatch."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from sgcd.envs.airline_lite import make_domain
from sgcd.eval import TextAgentRunner, evaluate, make_runner


@pytest.fixture(scope="module")
def domain():
    return make_domain()  # the real test split: 300 tasks


def run(domain, spec, **kw):
    return evaluate(make_runner(spec, domain), domain, "test", progress=False, policy=spec, **kw)


def test_gold_read_only_and_noisy_on_the_whole_test_split(domain):
    gold = run(domain, "scripted:gold")
    assert gold.n_tasks == 300 and gold.success_rate == 1.0 and gold.tool_errors == 0
    assert all(row["success"] == 1.0 for row in gold.per_family.values())
    ro = run(domain, "scripted:read-only")
    no_write = {t.task_id for t in domain.tasks("test") if t.data["writes"] == 0}
    succeeded = {r.task_id for r in ro.records if r.success}
    assert succeeded == no_write  # exactly the tasks whose gold has no write
    assert all(r.gold_has_write == (r.task_id not in no_write) for r in ro.records)
    rates = [run(domain, f"scripted:noisy:{p}").success_rate for p in (0.1, 0.3, 0.5)]
    assert 1.0 > rates[0] > rates[1] > rates[2] > 0.0, rates


def test_trials_give_pass_k_and_records(domain):
    res = run(domain, "scripted:noisy:0.3", trials=3, limit=40)
    assert res.n_tasks == 40 and len(res.records) == 120 and sorted(res.pass_k) == [1, 2, 3]
    assert res.pass_k[1] == pytest.approx(res.success_rate)
    assert res.pass_k[1] >= res.pass_k[2] >= res.pass_k[3]
    d = res.to_dict()
    assert d["pass_k"].keys() == {"1", "2", "3"} and len(d["records"]) == 120 and "episodes" not in d


class Boom:
    def act(self, messages, tools):
        raise ConnectionError("server down")


def test_agent_errors_fail_the_episode_then_stop_the_run(domain):
    runner = TextAgentRunner(agent=Boom())
    envs = [domain.make_env(t) for t in domain.tasks("test")[:4]]
    eps = runner.run(envs)
    assert [e.success for e in eps] == [False] * 4 and "server down" in eps[0].info["agent_error"]
    with pytest.raises(RuntimeError, match="5 times in a row"):
        runner.run([domain.make_env(t) for t in domain.tasks("test")[4:8]])


def test_make_runner_dispatch(domain, monkeypatch):
    import sgcd.rollout as rollout

    seen = {}

    def fake_from_spec(spec, **kw):
        seen.update(spec=spec, **kw)
        return "policy-runner"

    monkeypatch.setattr(rollout.PolicyRunner, "from_spec", staticmethod(fake_from_spec))
    assert (
        make_runner("hf:/models/x", domain, temperature=0.5, max_new_tokens=64, device="cpu")
        == "policy-runner"
    )
    assert seen["spec"] == "/models/x" and seen["sampling"].temperature == 0.5
    assert seen["sampling"].max_new_tokens == 64 and seen["device"] == "cpu"
    runner = make_runner("openai:some-model", domain, base_url="http://127.0.0.1:9/v1", temperature=0.0)
    assert isinstance(runner, TextAgentRunner) and runner.agent.model == "some-model"
    assert runner.agent.base_url == "http://127.0.0.1:9/v1" and runner.agent.temperature == 0.0
    with pytest.raises(ValueError, match="unknown options"):
        make_runner("scripted:gold", domain, colour=1)


def test_eval_never_imports_credit_reference():
    code = (
        "import sys; from sgcd.envs.airline_lite import make_domain; from sgcd.eval import evaluate, make_runner;"
        "d = make_domain(test_size=3); evaluate(make_runner('scripted:gold', d), d, 'test', progress=False);"
        "import sgcd.commands.eval, sgcd.commands.env;"
        "print([m for m in sys.modules if m.startswith('sgcd.credit_reference') or m == 'torch'])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"  # neither the credit reference nor torch for a scripted evaluation


def test_openai_policy_end_to_end_against_a_local_double(tmp_path):
    # a real HTTP server on 127.0.0.1 speaking the chat-completions protocol; it answers with the gold turn
    # for the task it recognises from the user message (native tool calls), so success must be 1.0
    from sgcd.cli import main
    from sgcd.envs.toolcalls import parse_tool_calls
    from support.openai_double import OpenAIDouble, reply

    domain = make_domain(test_size=4)
    gold = {t.instruction: domain.gold_turns(t) for t in domain.tasks("test")}

    def handler(body):
        msgs = body["messages"]
        instruction = next(m["content"] for m in msgs if m["role"] == "user")
        turn = gold[instruction][sum(m["role"] == "assistant" for m in msgs)]
        calls, _ = parse_tool_calls(turn)
        return reply(None, tool_calls=[(c.name, c.arguments) for c in calls]) if calls else reply(turn)

    out = tmp_path / "o.json"
    with OpenAIDouble(handler=handler) as srv:
        args = ["eval", "--env", "airline-lite", "--policy", "openai:double", "--base-url", srv.base_url]
        assert main(args + ["--option", "test_size=4", "--no-progress", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["success_rate"] == 1.0 and data["n_tasks"] == 4 and data["tool_errors"] == 0


class CounterDomain:
    """A toy domain (not airline-lite): task k asks for k increments then the answer "k"."""

    name = "counter"

    def splits(self):
        return ["test"]

    def tasks(self, split):
        from sgcd.envs.base import Task

        return [Task(f"counter/{k}", split, f"k{k}", f"increment {k} times") for k in range(4)]

    def gold_turns(self, task):
        from sgcd.envs.toolcalls import format_tool_call

        k = int(task.family[1:])
        return [format_tool_call("peek", {})] + [format_tool_call("inc", {"by": 1})] * k + [str(k)]

    def is_write_tool(self, name):
        return name == "inc"

    def make_env(self, task):
        from sgcd.envs.toolcalls import ToolEnv, ToolSpec
        from sgcd.types import Message, Observation

        state = {"n": 0}
        schema = {"type": "object", "properties": {"by": {"type": "integer"}}, "required": ["by"]}
        tools = {
            "inc": ToolSpec(
                "inc", "add", schema, lambda a: str(state.__setitem__("n", state["n"] + a["by"])), True
            ),
            "peek": ToolSpec("peek", "read", {"type": "object", "properties": {}}, lambda a: str(state["n"])),
        }
        k = int(task.family[1:])
        opening = Observation((Message("user", task.instruction),), tuple(t.schema() for t in tools.values()))
        return ToolEnv(task, opening, tools, lambda ans: (float(state["n"] == k and ans == str(k)), {}))


def test_generic_pieces_work_on_any_domain_with_the_hooks():
    dom = CounterDomain()
    gold = evaluate(make_runner("scripted:gold", dom), dom, "test", progress=False)
    assert gold.success_rate == 1.0 and gold.health["write_share"] == pytest.approx(
        3 / 4
    )  # k = 0 has no write
    ro = evaluate(make_runner("scripted:read-only", dom), dom, "test", progress=False)
    # read-only succeeds only on k = 0, the one task whose gold has no write
    assert [r.success for r in ro.records] == [True, False, False, False]
    assert [r.gold_has_write for r in ro.records] == [False, True, True, True]
