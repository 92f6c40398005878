"""The airline-lite tools: 5 reads, 6 writes, each a function over the task's database returning compact JSON.

Tools enforce hard facts only (ids exist, seats left, the payment method is the user's, a gift card covers the
amount, counts are sane); the written policy's rules (ownership, cancel / change eligibility, bag allowance,
compensation) are the agent's job, as in tau-bench. A refused call raises ToolError and changes nothing.

Departure from tau-bench airline: fewer, flatter tools and outputs with only the fields the policy needs;
ids and amounts are deterministic functions of the database (no clock, no global random state).
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable
from typing import Any

from sgcd.envs.airline_lite.db import DB
from sgcd.envs.airline_lite.policy import BAG_FEE, INSURANCE_FEE, TODAY
from sgcd.envs.toolcalls import ToolError, ToolSpec, compact_json

STR, INT, BOOL = {"type": "string"}, {"type": "integer"}, {"type": "boolean"}
CABIN = {"type": "string", "enum": ["basic_economy", "economy", "business"]}


def _obj(**props: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": props, "required": list(props)}


def _user(db: DB, uid: str) -> dict[str, Any]:
    if uid not in db["users"]:
        raise ToolError(f"user {uid!r} not found")
    return db["users"][uid]


def _res(db: DB, rid: str) -> dict[str, Any]:
    if rid not in db["reservations"]:
        raise ToolError(f"reservation {rid!r} not found")
    return db["reservations"][rid]


def _flight(db: DB, fid: str) -> dict[str, Any]:
    if fid not in db["flights"]:
        raise ToolError(f"flight {fid!r} not found")
    return db["flights"][fid]


def _charge(db: DB, uid: str, payment_id: str, amount: int) -> None:
    """Charge (amount > 0) or refund (amount < 0) a payment method of user `uid`."""
    methods = _user(db, uid)["payment_methods"]
    if payment_id not in methods:
        raise ToolError(f"payment method {payment_id!r} is not one of the user's")
    method = methods[payment_id]
    if "balance" in method:
        if method["balance"] < amount:
            raise ToolError(f"{payment_id} balance {method['balance']} does not cover {amount}")
        method["balance"] -= amount


def get_user(db: DB, a: dict[str, Any]) -> str:
    u = _user(db, a["user_id"])
    return compact_json({"user_id": a["user_id"], **u})


def get_reservation(db: DB, a: dict[str, Any]) -> str:
    r = _res(db, a["reservation_id"])
    legs = [
        {"flight_id": f, **{k: db["flights"][f][k] for k in ("origin", "destination", "date")}}
        for f in r["flights"]
    ]
    return compact_json({"reservation_id": a["reservation_id"], **r, "flights": legs})


def search_flights(db: DB, a: dict[str, Any]) -> str:
    rows = [
        {"flight_id": fid, **{k: f[k] for k in ("time", "status", "price", "seats")}}
        for fid, f in sorted(db["flights"].items())
        if (f["origin"], f["destination"], f["date"]) == (a["origin"], a["destination"], a["date"])
    ]
    return compact_json(rows)


def flight_status(db: DB, a: dict[str, Any]) -> str:
    f = _flight(db, a["flight_id"])
    return compact_json(
        {"flight_id": a["flight_id"], **{k: f[k] for k in ("origin", "destination", "date", "status")}}
    )


_OPS: dict[type, Callable[..., Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.USub: operator.neg,
}


def _eval(node: ast.AST) -> float:
    if (
        isinstance(node, ast.Constant)
        and isinstance(node.value, (int, float))
        and not isinstance(node.value, bool)
    ):
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        return _OPS[type(node.op)](_eval(node.left), _eval(node.right))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _OPS:
        return _OPS[type(node.op)](_eval(node.operand))
    raise ToolError("only numbers, + - * / and parentheses are allowed")


def calculate(db: DB, a: dict[str, Any]) -> str:
    expr = a["expression"]
    if len(expr) > 200:
        raise ToolError("expression too long")
    try:
        value = _eval(ast.parse(expr, mode="eval").body)
    except (SyntaxError, ZeroDivisionError, ValueError, OverflowError, RecursionError) as exc:
        raise ToolError(f"cannot calculate {expr!r}: {type(exc).__name__}") from None
    if not math.isfinite(value):
        raise ToolError(f"cannot calculate {expr!r}: result is not a finite number")
    value = round(value, 2)
    return str(int(value) if value == int(value) else value)


def book_reservation(db: DB, a: dict[str, Any]) -> str:
    uid, fid, cabin, pax = a["user_id"], a["flight_id"], a["cabin"], a["passengers"]
    _user(db, uid)
    flight = _flight(db, fid)
    if not 1 <= pax <= 5:
        raise ToolError("passengers must be 1 to 5")
    if flight["seats"][cabin] < pax:
        raise ToolError(f"only {flight['seats'][cabin]} {cabin} seats left on {fid}")
    amount = flight["price"][cabin] * pax + (INSURANCE_FEE * pax if a["insurance"] else 0)
    _charge(db, uid, a["payment_id"], amount)
    flight["seats"][cabin] -= pax
    rid = f"NEW{db['next_booking']:03d}"
    db["next_booking"] += 1
    db["reservations"][rid] = {
        "user_id": uid,
        "flights": [fid],
        "cabin": cabin,
        "passengers": pax,
        "bags": 0,
        "paid_bags": 0,
        "insurance": a["insurance"],
        "status": "active",
        "booked_on": TODAY,
        "payments": [{"payment_id": a["payment_id"], "amount": amount}],
    }
    db["users"][uid]["reservations"].append(rid)
    return compact_json({"reservation_id": rid, "charged": amount})


def cancel_reservation(db: DB, a: dict[str, Any]) -> str:
    r = _res(db, a["reservation_id"])
    if r["status"] != "active":
        raise ToolError("reservation is already cancelled")
    refund = 0
    for p in r["payments"]:
        method = db["users"][r["user_id"]]["payment_methods"].get(p["payment_id"], {})
        if "balance" in method:
            method["balance"] += p["amount"]
        refund += p["amount"]
    r["status"] = "cancelled"
    return compact_json({"reservation_id": a["reservation_id"], "status": "cancelled", "refunded": refund})


def change_flight(db: DB, a: dict[str, Any]) -> str:
    r = _res(db, a["reservation_id"])
    old, new = a["flight_id"], a["new_flight_id"]
    if r["status"] != "active" or old not in r["flights"]:
        raise ToolError(f"flight {old!r} is not in an active reservation {a['reservation_id']}")
    new_flight = _flight(db, new)
    if new_flight["seats"][r["cabin"]] < r["passengers"]:
        raise ToolError(f"not enough {r['cabin']} seats on {new}")
    diff = (new_flight["price"][r["cabin"]] - db["flights"][old]["price"][r["cabin"]]) * r["passengers"]
    _charge(db, r["user_id"], a["payment_id"], diff)
    new_flight["seats"][r["cabin"]] -= r["passengers"]
    db["flights"][old]["seats"][r["cabin"]] += r["passengers"]
    r["flights"] = [new if f == old else f for f in r["flights"]]
    r["payments"].append({"payment_id": a["payment_id"], "amount": diff})
    return compact_json({"reservation_id": a["reservation_id"], "flights": r["flights"], "charged": diff})


def update_baggage(db: DB, a: dict[str, Any]) -> str:
    r = _res(db, a["reservation_id"])
    total, paid = a["total_bags"], a["paid_bags"]
    if r["status"] != "active":
        raise ToolError("reservation is cancelled")
    if not 0 <= paid <= total <= 20:
        raise ToolError("need 0 <= paid_bags <= total_bags <= 20")
    fee = BAG_FEE * max(0, paid - r["paid_bags"])
    _charge(db, r["user_id"], a["payment_id"], fee)
    r["bags"], r["paid_bags"] = total, paid
    if fee:
        r["payments"].append({"payment_id": a["payment_id"], "amount": fee})
    return compact_json(
        {"reservation_id": a["reservation_id"], "bags": total, "paid_bags": paid, "charged": fee}
    )


def issue_certificate(db: DB, a: dict[str, Any]) -> str:
    user = _user(db, a["user_id"])
    if not 0 < a["amount"] <= 1000:
        raise ToolError("amount must be 1 to 1000")
    cid = f"certificate_{len(db['certificates']) + 1}"
    user["payment_methods"][cid] = {"type": "certificate", "balance": a["amount"]}
    db["certificates"].append({"user_id": a["user_id"], "amount": a["amount"]})
    return compact_json({"certificate_id": cid, "amount": a["amount"]})


def transfer_to_human(db: DB, a: dict[str, Any]) -> str:
    _user(db, a["user_id"])
    db["transfers"].append({"user_id": a["user_id"]})  # the free-text summary is not part of the state
    return "Transferred to a human agent."


# name -> (description, parameters, implementation, is_write); order is the order the agent sees
TOOLS: dict[str, tuple[str, dict[str, Any], Callable[[DB, dict[str, Any]], str], bool]] = {
    "get_user": (
        "",
        _obj(user_id=STR),
        get_user,
        False,
    ),
    "get_reservation": ("", _obj(reservation_id=STR), get_reservation, False),
    "search_flights": (
        "",
        _obj(origin=STR, destination=STR, date=STR),
        search_flights,
        False,
    ),
    "flight_status": ("", _obj(flight_id=STR), flight_status, False),
    "calculate": ("", _obj(expression=STR), calculate, False),
    "book_reservation": (
        "",
        _obj(user_id=STR, flight_id=STR, cabin=CABIN, passengers=INT, payment_id=STR, insurance=BOOL),
        book_reservation,
        True,
    ),
    "cancel_reservation": ("", _obj(reservation_id=STR), cancel_reservation, True),
    "change_flight": (
        "",
        _obj(reservation_id=STR, flight_id=STR, new_flight_id=STR, payment_id=STR),
        change_flight,
        True,
    ),
    "update_baggage": (
        "",
        _obj(reservation_id=STR, total_bags=INT, paid_bags=INT, payment_id=STR),
        update_baggage,
        True,
    ),
    "issue_certificate": (
        "",
        _obj(user_id=STR, amount=INT),
        issue_certificate,
        True,
    ),
    "transfer_to_human": (
        "",
        _obj(user_id=STR, summary=STR),
        transfer_to_human,
        True,
    ),
}
WRITE_TOOLS = frozenset(name for name, (_, _, _, w) in TOOLS.items() if w)


def make_tools(db: DB) -> dict[str, ToolSpec]:
    """The tools bound to one database (the env's live copy)."""
    return {
        name: ToolSpec(name, desc, params, (lambda a, fn=fn: fn(db, a)), write)
        for name, (desc, params, fn, write) in TOOLS.items()
    }


def schemas() -> tuple[dict[str, Any], ...]:
    """The OpenAI function schemas the agent sees, marked for the compact tool block (sgcd.policy.chat).

    `required` stays in the schemas: the compact signatures show it for free (no `?`), so the policy text no
    longer spends a sentence on "every argument is required".
    """
    return tuple(
        ToolSpec(n, d, p, lambda a: "", w, tool_format="compact").schema()
        for n, (d, p, _, w) in TOOLS.items()
    )
