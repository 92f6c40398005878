"""airline-lite: splits, determinism (also across processes), gold solutions, verifier, options, prompt size."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from sgcd.envs import Domain, Env, get_domain
from sgcd.envs.airline_lite import FAMILY_ORDER, answer_has, make_domain
from sgcd.envs.airline_lite.db import db_hash, generate_db
from sgcd.envs.toolcalls import format_tool_call

SMALL = {"train_size": 300, "dev_size": 40, "test_size": 120}


@pytest.fixture(scope="module")
def domain():
    return make_domain(**SMALL)


def play(domain, task, turns):
    env = domain.make_env(task)
    env.reset()
    result = None
    for text in turns:
        result = env.step(text)
        if result.done:
            break
    return result


def test_registry_and_contract(domain):
    d = get_domain("airline-lite", test_size=5)
    assert isinstance(d, Domain) and isinstance(d.make_env(d.tasks("test")[0]), Env)
    assert d.name == "airline-lite" and d.splits() == ["train", "dev", "test"]
    obs = d.make_env(d.tasks("test")[0]).reset()
    assert [m.role for m in obs.messages] == ["system", "user"]
    assert "R1" in obs.messages[0].content and len(obs.tools) >= 10
    assert {t["function"]["name"] for t in obs.tools} >= {
        "get_user",
        "cancel_reservation",
        "transfer_to_human",
    }


def test_gold_succeeds_on_every_task_of_every_split(domain):
    for split in domain.splits():
        for task in domain.tasks(split):
            r = play(domain, task, domain.gold_turns(task))
            assert r.done and r.reward == 1.0, (task.task_id, r.info.get("verifier"))
            ep = r.info["episode"]
            assert ep.success and ep.task_id == task.task_id and ep.steps[-1].final
            writes = sum(c.is_write for s in ep.steps for c in s.calls)
            assert writes == task.data["writes"]


def test_horizons_span_two_to_ten_plus_and_filters_work(domain):
    horizons = [t.data["horizon"] for t in domain.tasks("train")]
    assert min(horizons) == 2 and max(horizons) >= 10
    short = make_domain(max_horizon=3, train_size=50)
    assert all(t.data["horizon"] <= 3 for t in short.tasks("train")) and len(short.tasks("train")) == 50
    only = make_domain(families="cancel,res_info", test_size=20)
    assert {t.family for t in only.tasks("test")} == {"cancel", "res_info"}
    # ids are stable under a filter: the filtered task is the same task as in the unfiltered split
    full = {t.task_id: t for t in domain.tasks("test")}
    for t in only.tasks("test")[:6]:
        assert full[t.task_id].instruction == t.instruction


def test_every_family_appears_and_test_is_balanced(domain):
    fams = [t.family for t in domain.tasks("test")]
    assert sorted(set(fams)) == sorted(FAMILY_ORDER)
    assert {fams.count(f) for f in FAMILY_ORDER} == {12}  # 120 tasks / 10 families, round robin


def test_test_never_shares_an_instance_with_train(domain):
    train = make_domain(seed=0, train_size=600).tasks("train")
    test = domain.tasks("test")
    assert not {t.data["start_hash"] for t in train} & {t.data["start_hash"] for t in test}
    assert not {t.data["seed"] for t in train} & {t.data["seed"] for t in test}
    # the test split does not depend on the training seed; train does
    assert [t.instruction for t in make_domain(seed=7, test_size=20).tasks("test")] == [
        t.instruction for t in domain.tasks("test")[:20]
    ]
    assert make_domain(seed=7, train_size=5).tasks("train")[0].data["seed"] != train[0].data["seed"]


_DUMP = (
    "import json; from sgcd.envs.airline_lite import make_domain; d = make_domain(train_size=40, test_size=40);"
    "print(json.dumps([[t.task_id, t.instruction, t.data['start_hash'], t.data['gold_hash'], t.data['gold']]"
    " for s in ('train', 'test') for t in d.tasks(s)]))"
)


def test_same_seed_same_tasks_and_hashes_across_processes():
    outs = []
    for hash_seed in ("1", "987"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        proc = subprocess.run(
            [sys.executable, "-c", _DUMP], capture_output=True, text=True, env=env, check=True
        )
        outs.append(json.loads(proc.stdout))
    assert outs[0] == outs[1] and len(outs[0]) == 80
    here = make_domain(train_size=40, test_size=40)
    mine = [[t.task_id, t.instruction, t.data["start_hash"], t.data["gold_hash"], t.data["gold"]] for s in ("train", "test") for t in here.tasks(s)]  # fmt: skip
    assert mine == outs[0]


def test_db_hash_is_canonical():
    db = generate_db(3)
    reordered = {k: db[k] for k in reversed(list(db))}
    assert db_hash(db) == db_hash(reordered) and db_hash(db) == db_hash(generate_db(3))
    assert db_hash(db) != db_hash(generate_db(4))


def test_verifier_needs_both_state_and_required_answer(domain):
    task = next(t for t in domain.tasks("test") if t.family == "add_bags" and t.data["outcome"] == "write")
    gold = domain.gold_turns(task)
    r = play(domain, task, gold[:-1] + ["Done, your bags are added."])  # right state, no amount
    assert r.reward == 0.0 and r.info["verifier"]["db_match"] and not r.info["verifier"]["answer_ok"]
    r = play(domain, task, [gold[-1]])  # right words, nothing done
    assert r.reward == 0.0 and not r.info["verifier"]["db_match"] and r.info["verifier"]["db_unchanged"]


def test_tool_outputs_are_compact_json(domain):
    task = domain.tasks("test")[1]
    env = domain.make_env(task)
    env.reset()
    r = env.step(format_tool_call("get_user", {"user_id": task.data["intent"]["user_id"]}))
    out = r.messages[0].content
    assert r.messages[0].role == "tool" and r.messages[0].name == "get_user"
    assert json.loads(out) and ": " not in out and "\n" not in out


def test_answer_has_matches_whole_tokens():
    assert answer_has("You were charged $1,050.", "1050")
    assert not answer_has("charged 150", "50") and not answer_has("rule R20", "R2")
    assert answer_has("Your cabin is basic economy", "basic_economy") and answer_has("per R2.", "R2")


def test_bad_options_are_named():
    with pytest.raises(ValueError, match="unknown families"):
        make_domain(families="cancel,nope")
    with pytest.raises(ValueError, match="unknown option 'colour'"):
        make_domain(colour=1)
    with pytest.raises(ValueError, match="no task of families"):
        make_domain(families="multi_cancel", max_horizon=2, test_size=5).tasks("test")
    with pytest.raises(ValueError, match="no split 'val'"):
        make_domain(test_size=1).tasks("val")


def test_opening_prompt_is_compact(domain):
    # approximate SmolLM2 tokens as chars / 3.5 (measured ratio ~3.4-3.6 on these texts; see docs)
    obs = domain.make_env(domain.tasks("test")[0]).reset()
    tools = json.dumps(list(obs.tools), separators=(",", ":"))
    longest = max(len(t.instruction) for t in domain.tasks("test"))
    assert (len(obs.messages[0].content) + len(tools) + longest) / 3.5 < 1200


def test_calculator_tool(domain):
    env = domain.make_env(domain.tasks("test")[0])
    env.reset()
    outs = [env.step(format_tool_call("calculate", {"expression": e})).messages[0].content for e in ("2*50+30", "7/2", "1e308*10", "__import__('os')", "1/0")]  # fmt: skip
    # 2*50+30 = 130; 7/2 = 3.5; overflow to inf, a name and a division by zero are refused, never raised
    assert outs[:2] == ["130", "3.5"] and all(
        o.startswith("Error: cannot calculate") or o.startswith("Error: only") for o in outs[2:]
    )
    assert env.counts.internal_errors == 0
