"""The airline-lite database: a small world (flights, users, reservations) generated from one integer seed.

Each task owns one generated instance (its seed comes from the domain seed, the split and the task index), so
the verifier can rebuild a fresh copy at will. The database is plain JSON-able dicts keyed by id; its hash is
sha256 of sorted-keys compact JSON, so it never depends on dict order, wall clock or process.

Departure from tau-bench airline: one small world per task (3 users, ~12 flights, ~6 reservations) instead of
one shared large database, and "today" is a fixed date, so outputs stay short enough for a 135M model's context.
"""

from __future__ import annotations

import hashlib
import json
import random
from typing import Any

from sgcd.envs.airline_lite.policy import TODAY, paid_bags
from sgcd.envs.toolcalls import compact_json

AIRPORTS = ("SFO", "JFK", "ORD", "LAX", "SEA", "BOS", "DEN", "ATL", "MIA", "DFW")
CABINS = ("basic_economy", "economy", "business")
MEMBERSHIPS = ("regular", "silver", "gold")
FIRST = (
    "mia",
    "noah",
    "ava",
    "liam",
    "emma",
    "omar",
    "yuki",
    "lena",
    "ravi",
    "sofia",
    "ivan",
    "chen",
    "amir",
)
LAST = ("lee", "garcia", "smith", "khan", "rossi", "novak", "kim", "silva", "brown", "ito", "patel", "meyer")
DATES = tuple(f"2024-05-{d:02d}" for d in range(10, 23))  # 10 May .. 22 May; TODAY is the 15th
TIMES = ("06:40", "08:15", "10:30", "13:05", "15:50", "18:20", "21:10")

DB = dict[str, Any]


def seed_of(*parts: Any) -> int:
    """A 63-bit seed from any parts, stable across processes and machines (not Python's salted hash())."""
    digest = hashlib.sha256(":".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def db_hash(db: DB) -> str:
    """Canonical hash of a database: sha256 of sorted-keys compact JSON."""
    return hashlib.sha256(compact_json(db).encode()).hexdigest()


def _flights(rng: random.Random) -> dict[str, dict[str, Any]]:
    a, b, c = rng.sample(AIRPORTS, 3)
    routes = [(a, b), (b, a), (a, c)]
    flights: dict[str, dict[str, Any]] = {}
    numbers = rng.sample(range(100, 1000), 16)
    for origin, dest in routes:
        base = rng.randrange(80, 400, 10)
        for date in sorted(rng.sample(DATES, 4)):
            for _ in range(1 if rng.random() < 0.6 else 2):
                fid = f"HA{numbers.pop()}"
                past = date < TODAY
                status = (
                    "landed" if past else rng.choices(["scheduled", "delayed", "cancelled"], [6, 2, 1])[0]
                )
                flights[fid] = {
                    "origin": origin,
                    "destination": dest,
                    "date": date,
                    "time": rng.choice(TIMES),
                    "status": status,
                    "price": {
                        "basic_economy": base * 7 // 10 + rng.randrange(0, 40, 10),
                        "economy": base + rng.randrange(0, 60, 10),
                        "business": base * 3 + rng.randrange(0, 100, 10),
                    },
                    "seats": {cabin: rng.randrange(0, 9) for cabin in CABINS},
                }
                if not numbers:
                    return flights
    return flights


def _users(rng: random.Random) -> dict[str, dict[str, Any]]:
    users: dict[str, dict[str, Any]] = {}
    names = rng.sample([(f, s) for f in FIRST for s in LAST], 3)
    for first, last in names:
        uid = f"{first}_{last}_{rng.randrange(100, 1000)}"
        card = f"credit_card_{rng.randrange(1000, 10000)}"
        payments: dict[str, dict[str, Any]] = {card: {"type": "credit_card"}}
        if rng.random() < 0.6:
            payments[f"gift_card_{rng.randrange(1000, 10000)}"] = {
                "type": "gift_card",
                "balance": rng.randrange(0, 400, 10),
            }
        users[uid] = {
            "name": f"{first.title()} {last.title()}",
            "membership": rng.choices(MEMBERSHIPS, [5, 3, 2])[0],
            "payment_methods": payments,
            "reservations": [],
        }
    return users


def new_reservation_id(rng: random.Random, taken: dict[str, Any]) -> str:
    letters = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    while True:
        rid = "".join(rng.choice(letters) for _ in range(6))
        if rid not in taken:
            return rid


def add_reservation(db: DB, rng: random.Random, uid: str, flight_ids: list[str], **fields: Any) -> str:
    """Add a paid reservation for user `uid` (fields override the random cabin / passengers / bags / ...)."""
    cabin = fields.get("cabin") or rng.choice(CABINS)
    pax = fields.get("passengers") or rng.choice((1, 1, 2, 3))
    price = sum(db["flights"][f]["price"][cabin] for f in flight_ids) * pax
    insurance = fields.get("insurance", rng.random() < 0.3)
    payment = fields.get("payment") or next(iter(sorted(db["users"][uid]["payment_methods"])))
    rid = new_reservation_id(rng, db["reservations"])
    bags = fields.get("bags", rng.randrange(0, 2 * pax + 1))
    paid = paid_bags(bags, cabin, db["users"][uid]["membership"], pax)
    db["reservations"][rid] = {
        "user_id": uid,
        "flights": list(flight_ids),
        "cabin": cabin,
        "passengers": pax,
        "bags": bags,
        "paid_bags": paid,
        "insurance": insurance,
        "status": "active",
        "booked_on": fields.get("booked_on") or rng.choice(DATES[:5]),
        "payments": [{"payment_id": payment, "amount": price + (30 * pax if insurance else 0)}],
    }
    db["users"][uid]["reservations"].append(rid)
    return rid


def generate_db(seed: int) -> DB:
    """A fresh world for one task instance: 3 users, ~12 flights on 3 routes, 1-2 reservations per user."""
    rng = random.Random(seed)
    db: DB = {
        "flights": _flights(rng),
        "users": _users(rng),
        "reservations": {},
        "certificates": [],
        "transfers": [],
    }
    db["next_booking"] = 1
    fids = sorted(db["flights"])
    for uid in sorted(db["users"]):
        for _ in range(rng.choice((1, 2))):
            first = rng.choice(fids)
            add_reservation(db, rng, uid, [first])
    return db


def clone(db: DB) -> DB:
    """A deep copy (a JSON round trip: the database is plain JSON, and this is ~4x faster than deepcopy)."""
    return json.loads(json.dumps(db))
