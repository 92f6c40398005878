"""airline-lite families whose correct outcome is a write or a refusal (see `families.py` for the contract).

Each setup draws a variant (an acting case or a refusal under one rule) and shapes the world so the variant
holds; the solver never sees the variant, only the request and tool outputs, and reaches it by the policy.
The tempting shortcut in every family is to act without the lookup the rule needs: it succeeds on the acting
variants and violates policy on the refusal variants.
"""

from __future__ import annotations

import copy
import random
from typing import Any

from sgcd.envs.airline_lite import policy as P
from sgcd.envs.airline_lite.db import CABINS, DATES, DB
from sgcd.envs.airline_lite.families import (
    Gold,
    Intent,
    _future_flights,
    _hello,
    _other_user,
    _owner_ok,
    reservation_for,
)

PAST = [d for d in DATES if d < P.TODAY]
WHY = ("my plans changed", "I'm sick", "the meeting was moved", "family reasons")


def _uid(rng: random.Random, db: DB) -> str:
    return rng.choice(sorted(db["users"]))


def _past_flight(rng: random.Random, db: DB) -> str:
    fid = rng.choice(sorted(db["flights"]))
    db["flights"][fid].update(date=rng.choice(PAST), status="landed")
    return fid


def _card(db: DB, uid: str) -> str:
    return next(p for p in sorted(db["users"][uid]["payment_methods"]) if p.startswith("credit_card"))


def _gift(rng: random.Random, db: DB, uid: str, balance: int) -> str:
    methods = db["users"][uid]["payment_methods"]
    gid = next(
        (p for p in sorted(methods) if p.startswith("gift_card")), f"gift_card_{rng.randrange(1000, 10000)}"
    )
    methods[gid] = {"type": "gift_card", "balance": balance}
    return gid


# ---- cancel ------------------------------------------------------------------------------------------------

CANCEL_VARIANTS = ("today", "business", "insured", "airline", "plain", "departed", "other")


def cancel_scenario(rng: random.Random, db: DB, uid: str, variant: str) -> str:
    """A reservation (for `uid`, or another user for "other") that is cancellable or not as `variant` says."""
    base = {
        "cabin": rng.choice(["basic_economy", "economy"]),
        "insurance": False,
        "booked_on": rng.choice(PAST),
    }
    owner = _other_user(rng, db, uid) if variant == "other" else uid
    fid = rng.choice(_future_flights(db))
    db["flights"][fid]["status"] = (
        "cancelled" if variant == "airline" else rng.choice(["scheduled", "delayed"])
    )
    if variant == "today":
        base["booked_on"] = P.TODAY
    elif variant == "business":
        base["cabin"] = "business"
    elif variant in ("insured", "departed"):
        base["insurance"] = True
    if variant == "departed":
        fid = _past_flight(rng, db)
    return reservation_for(rng, db, owner, flights=[fid], **base)


def setup_cancel(rng: random.Random, db: DB) -> tuple[str, Intent]:
    uid = _uid(rng, db)
    rid = cancel_scenario(rng, db, uid, rng.choice(CANCEL_VARIANTS))
    ask = rng.choice(
        [
            f"Please cancel reservation {rid}, {rng.choice(WHY)}.",
            f"I want to cancel {rid} and get a refund.",
            f"Cancel {rid} for me please; {rng.choice(WHY)}.",
        ]
    )
    return f"{_hello(rng, db, uid)} {ask}", {"user_id": uid, "reservation_id": rid}


def try_cancel(gold: Gold, uid: str, rid: str) -> str | None:
    """Look up and cancel `rid` if the policy allows; returns the refund text, or the rule that forbids it."""
    res = gold.call("get_reservation", reservation_id=rid)
    if res["user_id"] != uid:
        return "R1"
    if res["status"] != "active" or any(leg["date"] < P.TODAY for leg in res["flights"]):
        return "R2"
    ok = res["booked_on"] == P.TODAY or res["cabin"] == "business" or res["insurance"]
    for leg in res["flights"]:
        if ok:
            break
        ok = gold.call("flight_status", flight_id=leg["flight_id"])["status"] == "cancelled"
    if not ok:
        return "R2"
    out = gold.call("cancel_reservation", reservation_id=rid)
    return str(out["refunded"])


def solve_cancel(gold: Gold, it: Intent) -> None:
    result = try_cancel(gold, it["user_id"], it["reservation_id"])
    if result == "R1":
        gold.refuse("R1", f"reservation {it['reservation_id']} is not yours")
    elif result == "R2":
        gold.refuse("R2", "it is not eligible for cancellation")
    else:
        gold.answer(f"Reservation {it['reservation_id']} is cancelled; {result} will be refunded.", (result,))


def setup_multi_cancel(rng: random.Random, db: DB) -> tuple[str, Intent]:
    uid = _uid(rng, db)
    k = rng.randint(2, 5)
    rids = [cancel_scenario(rng, db, uid, rng.choice(CANCEL_VARIANTS[:-1])) for _ in range(k)]
    listed = ", ".join(rids[:-1]) + f" and {rids[-1]}"
    ask = rng.choice(
        [
            f"Cancel my reservations {listed} wherever the policy allows.",
            f"I'd like to cancel {listed}, if allowed.",
            f"Please cancel {listed} if the rules allow it.",
        ]
    )
    return f"{_hello(rng, db, uid)} {ask}", {"user_id": uid, "reservation_ids": rids}


def solve_multi_cancel(gold: Gold, it: Intent) -> None:
    done, refused = [], []
    for rid in it["reservation_ids"]:
        result = try_cancel(gold, it["user_id"], rid)
        (refused if result in ("R1", "R2") else done).append(rid)
    text = f"Cancelled: {', '.join(done) or 'none'}."
    if refused:
        text += f" Not cancelled (policy R2): {', '.join(refused)}."
    gold.answer(text, tuple(done) + (("R2",) if refused else ()), "R2" if refused and not done else None)


# ---- bags --------------------------------------------------------------------------------------------------


def setup_add_bags(rng: random.Random, db: DB) -> tuple[str, Intent]:
    uid = _uid(rng, db)
    variant = rng.choice(["card", "card", "gift", "poor_gift", "remove", "other"])
    owner = _other_user(rng, db, uid) if variant == "other" else uid
    cabin = "basic_economy" if variant == "poor_gift" else rng.choice(CABINS)
    rid = reservation_for(rng, db, owner, cabin=cabin, bags=rng.randint(1, 3))
    if variant == "poor_gift":
        db["users"][uid]["membership"] = "regular"
        db["reservations"][rid]["paid_bags"] = db["reservations"][rid]["bags"]
    n = rng.randint(1, 3)
    pay = _card(db, uid)
    if variant in ("gift", "poor_gift"):
        pay = _gift(rng, db, uid, 400 if variant == "gift" else rng.randrange(0, 50 * n, 10))
    if variant == "remove":
        n = db["reservations"][rid]["bags"] - 1
        ask = f"Please change reservation {rid} to {n} checked bags in total."
        return f"{_hello(rng, db, uid)} {ask}", {
            "user_id": uid,
            "reservation_id": rid,
            "set": n,
            "payment_id": pay,
        }
    ask = rng.choice(
        [
            f"Add {n} checked bags to {rid}, paid with {pay}.",
            f"I need {n} more bags on {rid}; use {pay}.",
            f"Please put {n} extra checked bags on {rid} and charge {pay}.",
        ]
    )
    return f"{_hello(rng, db, uid)} {ask}", {
        "user_id": uid,
        "reservation_id": rid,
        "add": n,
        "payment_id": pay,
    }


def solve_add_bags(gold: Gold, it: Intent) -> None:
    rid = it["reservation_id"]
    res = gold.call("get_reservation", reservation_id=rid)
    if not _owner_ok(gold, res, it["user_id"]):
        return
    total = res["bags"] + it["add"] if "add" in it else it["set"]
    if total < res["bags"]:
        return gold.refuse("R4", "checked bags can only be added, not removed")
    user = gold.call("get_user", user_id=it["user_id"])
    paid = max(res["paid_bags"], P.paid_bags(total, res["cabin"], user["membership"], res["passengers"]))
    fee = P.BAG_FEE * (paid - res["paid_bags"])
    method = user["payment_methods"].get(it["payment_id"])
    if method is None or method.get("balance", fee) < fee:
        return gold.refuse("R6", f"{it['payment_id']} cannot cover {fee}")
    gold.call(
        "update_baggage", reservation_id=rid, total_bags=total, paid_bags=paid, payment_id=it["payment_id"]
    )
    gold.answer(f"Reservation {rid} now has {total} checked bags; you were charged {fee}.", (str(fee),))


# ---- compensation ------------------------------------------------------------------------------------------


def setup_compensation(rng: random.Random, db: DB) -> tuple[str, Intent]:
    uid = _uid(rng, db)
    variant = rng.choice(["member", "insured", "business", "ineligible", "not_confirmed", "other"])
    claim = rng.choice(["cancelled", "delayed"])
    owner = _other_user(rng, db, uid) if variant == "other" else uid
    fid = rng.choice(_future_flights(db))
    db["flights"][fid]["status"] = "scheduled" if variant == "not_confirmed" else claim
    eligible = variant in ("member", "not_confirmed", "other")
    db["users"][uid]["membership"] = rng.choice(["silver", "gold"]) if eligible else "regular"
    fields: dict[str, Any] = {"insurance": variant == "insured", "flights": [fid]}
    fields["cabin"] = "business" if variant == "business" else rng.choice(["basic_economy", "economy"])
    rid = reservation_for(rng, db, owner, **fields)
    ask = rng.choice(
        [
            f"My flight {fid} on reservation {rid} was {claim}. I want compensation.",
            f"Flight {fid} ({rid}) got {claim}, what do I get?",
            f"{fid} on my booking {rid} was {claim}; is there any compensation?",
        ]
    )
    return f"{_hello(rng, db, uid)} {ask}", {"user_id": uid, "reservation_id": rid, "flight_id": fid}


def solve_compensation(gold: Gold, it: Intent) -> None:
    res = gold.call("get_reservation", reservation_id=it["reservation_id"])
    if not _owner_ok(gold, res, it["user_id"]):
        return
    user = gold.call("get_user", user_id=it["user_id"])
    status = gold.call("flight_status", flight_id=it["flight_id"])["status"]
    amount = P.compensation(status, user["membership"], res["cabin"], res["insurance"], res["passengers"])
    if amount == 0:
        return gold.refuse("R5", f"flight {it['flight_id']} is {status} and no compensation applies")
    gold.call("issue_certificate", user_id=it["user_id"], amount=amount)
    gold.answer(f"I issued a certificate of {amount} for the {status} flight.", (str(amount),))


# ---- change flight -----------------------------------------------------------------------------------------

PREFS = {"cheapest": "the cheapest one", "earliest": "the earliest one"}


def _pick(rows: list[dict[str, Any]], cabin: str, pax: int, pref: str) -> dict[str, Any] | None:
    ok = [r for r in rows if r["seats"][cabin] >= pax and r["status"] != "cancelled"]
    key = (
        (lambda r: (r["price"][cabin], r["flight_id"]))
        if pref == "cheapest"
        else (lambda r: (r["time"], r["flight_id"]))
    )
    return min(ok, key=key) if ok else None


def _open_date(rng: random.Random, db: DB, ref: str, cabin: str, pax: int, avoid: str) -> str:
    """A future date (not `avoid`) with a bookable flight on the route of flight `ref` (made so if needed)."""
    route = (db["flights"][ref]["origin"], db["flights"][ref]["destination"])
    fids = [
        f
        for f in _future_flights(db)
        if (db["flights"][f]["origin"], db["flights"][f]["destination"]) == route
    ]
    fids = [f for f in fids if db["flights"][f]["date"] != avoid]
    if fids:
        flight = db["flights"][rng.choice(fids)]
    else:  # no other future flight on this route: open one
        flight = copy.deepcopy(db["flights"][ref])
        flight["date"] = next(d for d in DATES if d >= P.TODAY and d != avoid)
        db["flights"][f"HA{1000 + len(db['flights'])}"] = flight
    flight["status"] = "scheduled"
    flight["seats"][cabin] = max(flight["seats"][cabin], pax)
    return flight["date"]


def setup_change_flight(rng: random.Random, db: DB) -> tuple[str, Intent]:
    uid = _uid(rng, db)
    variant = rng.choice(["ok", "ok", "basic", "departed", "other"])
    owner = _other_user(rng, db, uid) if variant == "other" else uid
    cabin = "basic_economy" if variant == "basic" else rng.choice(["economy", "business"])
    fid = _past_flight(rng, db) if variant == "departed" else rng.choice(_future_flights(db))
    rid = reservation_for(rng, db, owner, flights=[fid], cabin=cabin)
    f = db["flights"][fid]
    date = _open_date(rng, db, fid, cabin, db["reservations"][rid]["passengers"], f["date"])
    pref, pay = rng.choice(sorted(PREFS)), _card(db, uid)
    ask = rng.choice(
        [
            f"Please move {rid} to a flight on {date}, {PREFS[pref]}; charge any difference to {pay}.",
            f"Can you change {rid} to {date}? I'd like {PREFS[pref]}. Use {pay} for any fare difference.",
        ]
    )
    intent = {"user_id": uid, "reservation_id": rid, "date": date, "preference": pref, "payment_id": pay}
    return f"{_hello(rng, db, uid)} {ask}", intent


def solve_change_flight(gold: Gold, it: Intent) -> None:
    res = gold.call("get_reservation", reservation_id=it["reservation_id"])
    if not _owner_ok(gold, res, it["user_id"]):
        return
    leg = res["flights"][0]
    if res["cabin"] == "basic_economy":
        return gold.refuse("R3", "basic economy flights cannot be changed")
    if leg["date"] < P.TODAY:
        return gold.refuse("R3", "the flight has already departed")
    rows = gold.call("search_flights", origin=leg["origin"], destination=leg["destination"], date=it["date"])
    new = _pick(rows, res["cabin"], res["passengers"], it["preference"])
    assert new is not None, "setup guarantees a bookable flight"
    out = gold.call(
        "change_flight", reservation_id=it["reservation_id"], flight_id=leg["flight_id"],
        new_flight_id=new["flight_id"], payment_id=it["payment_id"],
    )  # fmt: skip
    text = f"Changed to flight {new['flight_id']} on {it['date']}; fare difference {out['charged']}."
    gold.answer(text, (new["flight_id"],))


# ---- book --------------------------------------------------------------------------------------------------


def setup_book(rng: random.Random, db: DB) -> tuple[str, Intent]:
    uid = _uid(rng, db)
    variant = rng.choice(["card", "gift", "poor_gift"])
    fid = rng.choice(_future_flights(db))
    f = db["flights"][fid]
    cabin, pax, ins = rng.choice(CABINS), rng.randint(1, 3), rng.random() < 0.4
    date = _open_date(rng, db, fid, cabin, pax, "")
    rows = [
        {"flight_id": k, **v}
        for k, v in sorted(db["flights"].items())
        if (v["origin"], v["destination"], v["date"]) == (f["origin"], f["destination"], date)
    ]
    pref = rng.choice(sorted(PREFS))
    pick = _pick(rows, cabin, pax, pref)
    assert pick is not None
    cost = (pick["price"][cabin] + (P.INSURANCE_FEE if ins else 0)) * pax
    pay = (
        _card(db, uid)
        if variant == "card"
        else _gift(rng, db, uid, cost + 100 if variant == "gift" else cost // 2)
    )
    extra = "with travel insurance" if ins else "without insurance"
    seats = f"{pax} {cabin.replace('_', ' ')} seat(s) from {f['origin']} to {f['destination']} on {date}"
    ask = rng.choice(
        [
            f"Book {seats}, {PREFS[pref]}, {extra}, paid with {pay}.",
            f"I need {seats}. Pick {PREFS[pref]}, {extra}, and charge {pay}.",
        ]
    )
    intent = {
        "user_id": uid,
        "origin": f["origin"],
        "destination": f["destination"],
        "date": date,
        "cabin": cabin,
    }
    intent.update(passengers=pax, insurance=ins, preference=pref, payment_id=pay)
    return f"{_hello(rng, db, uid)} {ask}", intent


def solve_book(gold: Gold, it: Intent) -> None:
    rows = gold.call("search_flights", origin=it["origin"], destination=it["destination"], date=it["date"])
    pick = _pick(rows, it["cabin"], it["passengers"], it["preference"])
    assert pick is not None, "setup guarantees a bookable flight"
    user = gold.call("get_user", user_id=it["user_id"])
    cost = (pick["price"][it["cabin"]] + (P.INSURANCE_FEE if it["insurance"] else 0)) * it["passengers"]
    method = user["payment_methods"].get(it["payment_id"])
    if method is None or method.get("balance", cost) < cost:
        return gold.refuse("R6", f"{it['payment_id']} cannot cover {cost}")
    out = gold.call(
        "book_reservation", user_id=it["user_id"], flight_id=pick["flight_id"], cabin=it["cabin"],
        passengers=it["passengers"], payment_id=it["payment_id"], insurance=it["insurance"],
    )  # fmt: skip
    gold.answer(
        f"Booked {pick['flight_id']}: reservation {out['reservation_id']}, total {cost}.",
        (out["reservation_id"],),
    )
