"""Every airline-lite policy rule, through tasks whose correct outcome is a refusal (R7: a hand-over).

For each rule: the gold refusal succeeds; the tempting shortcut (doing what the user asked without the check
the rule needs) fails; the same refusal without naming the rule fails; and the rule number alone is not
enough when the refusal is wrong (an acting task answered with a refusal fails).
"""

from __future__ import annotations

import json

import pytest

from sgcd.envs.airline_lite import build_world, make_domain
from sgcd.envs.toolcalls import format_tool_call, parse_tool_calls

RULES = ("R1", "R2", "R3", "R4", "R5", "R6")


@pytest.fixture(scope="module")
def domain():
    return make_domain(train_size=500)


def play(domain, task, turns):
    env = domain.make_env(task)
    env.reset()
    for text in turns:
        r = env.step(text)
        if r.done:
            return r
    return env.step("Done.")


def refusals(domain, rule):
    return [t for t in domain.tasks("train") if t.data["outcome"] == "refuse" and t.data["rule"] == rule]


def shortcut(task) -> list[str] | None:
    """Do what the user asked without the policy check: the write call a careless agent would make."""
    it, db = task.data["intent"], build_world(task.family, task.data["seed"])[0]
    rid = it.get("reservation_id")
    if task.family in ("cancel", "multi_cancel"):
        call = format_tool_call("cancel_reservation", {"reservation_id": rid or it["reservation_ids"][0]})
    elif task.family == "add_bags":
        bags = db["reservations"][rid]["bags"]
        total = it["set"] if "set" in it else bags + it["add"]
        args = {
            "reservation_id": rid,
            "total_bags": total,
            "paid_bags": total,
            "payment_id": it["payment_id"],
        }
        call = format_tool_call("update_baggage", args)
    elif task.family == "compensation":
        call = format_tool_call("issue_certificate", {"user_id": it["user_id"], "amount": 100})
    elif task.family == "change_flight":
        res = db["reservations"][rid]
        old = db["flights"][res["flights"][0]]
        new = next(
            fid for fid, f in sorted(db["flights"].items())
            if (f["origin"], f["destination"], f["date"]) == (old["origin"], old["destination"], it["date"])
            and f["seats"][res["cabin"]] >= res["passengers"]
        )  # fmt: skip
        args = {"reservation_id": rid, "flight_id": res["flights"][0], "new_flight_id": new}
        call = format_tool_call("change_flight", {**args, "payment_id": it["payment_id"]})
    elif task.family == "book":
        row = json.loads(task.data["gold"][0].split("<tool_call>")[1].split("</tool_call>")[0])["arguments"]
        fid = next(f for f, v in sorted(db["flights"].items()) if (v["origin"], v["destination"], v["date"]) == (row["origin"], row["destination"], row["date"]))  # fmt: skip
        args = {k: it[k] for k in ("user_id", "cabin", "passengers", "payment_id", "insurance")}
        call = format_tool_call("book_reservation", {**args, "flight_id": fid})
    else:
        return None
    return [call, "All done as you asked."]


@pytest.mark.parametrize("rule", RULES)
def test_rule_refusals(domain, rule):
    tasks = refusals(domain, rule)
    assert len(tasks) >= 5, f"too few {rule} refusal tasks in 500 train tasks"
    for task in tasks:
        gold = domain.gold_turns(task)
        assert rule in task.data["required"] and task.data["writes"] == 0
        assert play(domain, task, gold).reward == 1.0, task.task_id
        # the same lookups, a refusal that does not say which rule: fails on the answer check
        r = play(domain, task, gold[:-1] + ["Sorry, I cannot do that."])
        assert r.reward == 0.0 and r.info["verifier"]["db_match"], task.task_id
        # the tempting shortcut: act without the check; violates the rule (state changed or a tool refused)
        short = shortcut(task)
        assert short is not None, task.family
        r = play(domain, task, short)
        assert r.reward == 0.0, (task.task_id, short)
        # either the state now breaks the rule, or a hard fact stopped the call (R6 always: payment tools check
        # balances; R1 when the requester's card is charged for another user's reservation)
        refused_by_tool = r.info["episode"].steps[0].calls[0].error
        assert refused_by_tool or not r.info["verifier"]["db_unchanged"], (task.task_id, short)
        if rule in (
            "R2",
            "R3",
            "R4",
            "R5",
        ):  # rules only the agent enforces: the tools let the shortcut through
            assert not refused_by_tool, (task.task_id, r.info["episode"].steps[0].observation)


def test_rule_number_is_not_a_free_pass(domain):
    # acting tasks of the same families: refusing with a plausible rule number fails (state differs from gold)
    acting = [t for t in domain.tasks("train") if t.data["outcome"] == "write" and t.family != "transfer"]
    assert len(acting) > 50
    for task in acting[:40]:
        r = play(domain, task, ["I cannot do that under policy R1, R2, R3, R4, R5 and R6."])
        assert r.reward == 0.0 and r.info["verifier"]["db_unchanged"]


def test_r7_requests_no_tool_can_do_go_to_a_human(domain):
    tasks = [t for t in domain.tasks("train") if t.family == "transfer"]
    assert tasks
    for task in tasks[:20]:
        assert play(domain, task, domain.gold_turns(task)).reward == 1.0
        # refusing instead of handing over changes nothing, but the gold hand-over is a recorded state change
        assert play(domain, task, ["Sorry, I cannot do that (R7)."]).reward == 0.0


def test_refusal_gold_uses_only_reads(domain):
    for rule in RULES:
        for task in refusals(domain, rule)[:10]:
            names = [
                json.loads(t[len("<tool_call>") : -len("</tool_call>")])["name"]
                for t in domain.gold_turns(task)[:-1]
            ]
            assert all(domain.is_write_tool(n) is False for n in names), (task.task_id, names)


def test_the_shortcut_succeeds_on_acting_variants(domain):
    # skipping every lookup and playing only the gold writes and answer wins whenever acting is right: the
    # same shortcut that loses on the refusal variants above (so credit must go to the lookup step)
    families = ("cancel", "add_bags", "compensation", "change_flight")
    acting = [t for t in domain.tasks("train") if t.family in families and t.data["outcome"] == "write"]
    assert {t.family for t in acting} == set(families)
    for task in acting[:40]:
        gold = domain.gold_turns(task)
        writes_only = [
            t for t in gold[:-1] if any(domain.is_write_tool(c.name) for c in parse_tool_calls(t)[0])
        ]
        assert writes_only and len(writes_only) < len(gold) - 1, task.task_id  # some lookup was skipped
        assert play(domain, task, writes_only + gold[-1:]).reward == 1.0, task.task_id
