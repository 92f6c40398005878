"""airline-lite task families: each sets up a scenario in a fresh world and states the request (`setup`), and
solves it like a careful agent would, from the request and tool outputs only (`solve`, the gold solver).

setup(rng, db) -> (instruction, intent): may edit the generated world so the scenario exists (for example make a
reservation insured or a flight cancelled); `intent` is what the user asked, nothing the agent could not read.
solve(gold, intent): calls tools through `Gold` (which records the gold turns) and decides with the policy
functions, ending with `gold.answer(text, required, rule)`.

Families and their gold horizons (assistant turns: tool-call turns + the final answer):
    res_info 2, flight_status 2, allowance 3, transfer 2               (reads / hand-over)
    cancel 2-4 (refusals R1, R2), add_bags 2-4 (R1, R4, R6), compensation 2-5 (R1, R5),
    change_flight 2-4 (R1, R3), book 3-4 (R6)                          (one write or a refusal)
    multi_cancel 3-16 (14 is the longest in the default 5000 train tasks) (several writes and refusals)
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from typing import Any

from sgcd.envs.airline_lite import policy as P
from sgcd.envs.airline_lite.db import DB, add_reservation
from sgcd.envs.airline_lite.tools import TOOLS
from sgcd.envs.toolcalls import format_tool_call

Intent = dict[str, Any]


@dataclass
class Gold:
    """The gold solver's hands: runs tools on its own database copy and records the assistant turns."""

    db: DB
    turns: list[str] = field(default_factory=list)
    writes: int = 0
    required: tuple[str, ...] = ()
    rule: str | None = None

    def call(self, name: str, **args: Any) -> Any:
        self.turns.append(format_tool_call(name, args))
        self.writes += int(TOOLS[name][3])
        out = TOOLS[name][2](self.db, args)  # a ToolError here is a bug in a family, on purpose not caught
        try:
            return json.loads(out)
        except json.JSONDecodeError:
            return out

    def answer(self, text: str, required: tuple[str, ...] = (), rule: str | None = None) -> None:
        self.turns.append(text)
        self.required, self.rule = tuple(required), rule

    def refuse(self, rule: str, why: str) -> None:
        self.answer(
            f"I'm sorry, I cannot do that: {why} (policy {rule}). Nothing was changed.", (rule,), rule
        )


def _hello(rng: random.Random, db: DB, uid: str) -> str:
    name = db["users"][uid]["name"]
    return rng.choice(
        [
            f"Hi, I'm {name}, user id {uid}.",
            f"My user id is {uid}.",
            f"Hello! {name} here (user {uid}).",
            f"This is {name}; my user ID: {uid}.",
            f"Good morning, {uid} speaking.",
        ]
    )


def _user_res(db: DB, uid: str) -> list[str]:
    return [r for r in db["users"][uid]["reservations"] if db["reservations"][r]["status"] == "active"]


def _future_flights(db: DB) -> list[str]:
    return [f for f in sorted(db["flights"]) if db["flights"][f]["date"] >= P.TODAY]


def reservation_for(rng: random.Random, db: DB, uid: str, **fields: Any) -> str:
    """A new active reservation for `uid` on a random not-departed flight unless `flights` is given."""
    flights = fields.pop("flights", None) or [rng.choice(_future_flights(db))]
    return add_reservation(db, rng, uid, flights, **fields)


def _other_user(rng: random.Random, db: DB, uid: str) -> str:
    return rng.choice([u for u in sorted(db["users"]) if u != uid])


def _owner_ok(gold: Gold, res: dict[str, Any], uid: str) -> bool:
    if res["user_id"] != uid:
        gold.refuse("R1", f"reservation {res['reservation_id']} is not yours")
        return False
    return True


# ---- reads -------------------------------------------------------------------------------------------------

RES_FIELDS = {
    "bags": "checked bags",
    "passengers": "passengers",
    "cabin": "cabin",
    "booked_on": "booking date",
}


def setup_res_info(rng: random.Random, db: DB) -> tuple[str, Intent]:
    uid = rng.choice(sorted(db["users"]))
    rid = rng.choice(_user_res(db, uid))
    fld = rng.choice(sorted(RES_FIELDS))
    ask = rng.choice(
        [
            f"What is the {RES_FIELDS[fld]} on reservation {rid}?",
            f"Tell me the {RES_FIELDS[fld]} of {rid}.",
            f"Could you look up the {RES_FIELDS[fld]} for my booking {rid}?",
        ]
    )
    return f"{_hello(rng, db, uid)} {ask}", {"user_id": uid, "reservation_id": rid, "field": fld}


def solve_res_info(gold: Gold, it: Intent) -> None:
    res = gold.call("get_reservation", reservation_id=it["reservation_id"])
    value = str(res[it["field"]])
    gold.answer(f"The {RES_FIELDS[it['field']]} on reservation {it['reservation_id']}: {value}.", (value,))


def setup_flight_status(rng: random.Random, db: DB) -> tuple[str, Intent]:
    uid = rng.choice(sorted(db["users"]))
    fid = rng.choice(sorted(db["flights"]))
    ask = rng.choice(
        [
            f"Is flight {fid} on time?",
            f"What's the status of flight {fid}?",
            f"Any news on {fid}?",
            f"Is {fid} delayed or cancelled?",
        ]
    )
    return f"{_hello(rng, db, uid)} {ask}", {"user_id": uid, "flight_id": fid}


def solve_flight_status(gold: Gold, it: Intent) -> None:
    st = gold.call("flight_status", flight_id=it["flight_id"])
    gold.answer(f"Flight {it['flight_id']} on {st['date']} is {st['status']}.", (st["status"],))


def setup_allowance(rng: random.Random, db: DB) -> tuple[str, Intent]:
    uid = rng.choice(sorted(db["users"]))
    rid = rng.choice(_user_res(db, uid))
    ask = rng.choice(
        [
            f"How many checked bags can I bring for free on {rid}?",
            f"What is the free bag allowance for {rid}?",
            f"How many free checked bags come with {rid}, in total?",
        ]
    )
    return f"{_hello(rng, db, uid)} {ask}", {"user_id": uid, "reservation_id": rid}


def solve_allowance(gold: Gold, it: Intent) -> None:
    res = gold.call("get_reservation", reservation_id=it["reservation_id"])
    user = gold.call("get_user", user_id=it["user_id"])
    n = P.free_bags(res["cabin"], user["membership"], res["passengers"])
    gold.answer(f"Reservation {it['reservation_id']} includes {n} free checked bags in total.", (str(n),))


TRANSFER_ASKS = (
    "I need to change the passenger name on {rid}.",
    "Please refund {rid} to a different card than the one I paid with.",
    "I need wheelchair assistance on my trip {rid}.",
    "Can I bring my dog in the cabin on {rid}?",
)


def setup_transfer(rng: random.Random, db: DB) -> tuple[str, Intent]:
    uid = rng.choice(sorted(db["users"]))
    ask = rng.choice(TRANSFER_ASKS).format(rid=rng.choice(_user_res(db, uid)))
    return f"{_hello(rng, db, uid)} {ask}", {"user_id": uid, "ask": ask}


def solve_transfer(gold: Gold, it: Intent) -> None:
    gold.call("transfer_to_human", user_id=it["user_id"], summary=it["ask"])
    gold.answer("No tool can do this, so I transferred you to a human agent (R7).")


# ---- registry ----------------------------------------------------------------------------------------------
