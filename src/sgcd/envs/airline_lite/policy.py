"""The airline-lite written policy: the text the agent reads, and the same rules as functions the gold solver uses.

Rules are numbered R1..R7; a correct refusal changes nothing and names the rule (the verifier checks the number).
The tools do not enforce R1-R5 (as in tau-bench, the agent must), so a shortcut that skips the lookup a rule
needs sometimes succeeds and sometimes violates policy. Tools do enforce hard facts (ids exist, seats, balances).

Departure from tau-bench airline: far shorter (about 230 SmolLM2 tokens) so the whole opening prompt, with the
compact tool block, stays under 500 tokens for a small model; a fixed "today"; refusals cite a rule number
instead of being judged by an LLM.
"""

from __future__ import annotations

from typing import Any

TODAY = "2024-05-15"
BAG_FEE = 50
INSURANCE_FEE = 30
# free checked bags per passenger: cabin -> membership -> bags
FREE_BAGS = {
    "basic_economy": {"regular": 0, "silver": 1, "gold": 2},
    "economy": {"regular": 1, "silver": 2, "gold": 3},
    "business": {"regular": 2, "silver": 3, "gold": 4},
}
COMPENSATION = {"cancelled": 100, "delayed": 50}  # per passenger

HEADER = f"Airline agent; today is {TODAY}."


def _bag_rule() -> str:
    """R4's allowance, written from FREE_BAGS as a cabin base plus a membership bonus (the table is additive)."""
    base = {cabin: row["regular"] for cabin, row in FREE_BAGS.items()}
    bonus = {m: n - base["basic_economy"] for m, n in FREE_BAGS["basic_economy"].items() if m != "regular"}
    cabins = ", ".join(f"{cabin.replace('_', ' ')} {n}" for cabin, n in base.items())
    plus = ", ".join(f"{m} +{n}" for m, n in bonus.items())
    return (
        f"Free bags per passenger: {cabins}; {plus}. Extra bags cost {BAG_FEE} each (paid_bags); "
        "bags can only be added."
    )


# The rules the agent reads, by number (refusals name the number; the verifier checks it).
RULES = {
    "R1": "Change only the requester's reservations (user_id from get_reservation).",
    "R2": "Cancel only if booked today, business, insured or with a cancelled flight, "
    "and no flight departed (date before today).",
    "R3": "Basic economy cannot change flights; a new flight needs the same route, not cancelled, not departed.",
    "R4": _bag_rule(),
    "R5": f"Certificate only if flight_status shows cancelled ({COMPENSATION['cancelled']} per passenger) or "
    f"delayed ({COMPENSATION['delayed']}) and the user is silver/gold, insured or business.",
    "R6": "Pay only with the user's payment methods; gift cards must cover the amount.",
    "R7": "If no tool can do it, call transfer_to_human.",
}
CLOSING = "If a rule forbids it, change nothing and name the rule."
# The system prompt: header, one line per rule, closing. How to call tools and to finish with a reply to the user
# is the tool block's instruction (sgcd.policy.chat), so it is not repeated here.
POLICY_TEXT = "\n".join([HEADER, *(f"{rule} {text}" for rule, text in RULES.items()), CLOSING])


def free_bags(cabin: str, membership: str, passengers: int) -> int:
    """R4: free checked bags for a whole reservation."""
    return FREE_BAGS[cabin][membership] * passengers


def paid_bags(total: int, cabin: str, membership: str, passengers: int) -> int:
    """R4: how many of `total` bags are paid."""
    return max(0, total - free_bags(cabin, membership, passengers))


def departed(flight: dict[str, Any]) -> bool:
    return flight["date"] < TODAY


def cancel_rule(res: dict[str, Any], flights: list[dict[str, Any]], owner_ok: bool) -> str | None:
    """The rule that forbids cancelling `res` (R1 / R2), or None when cancelling is allowed."""
    if not owner_ok:
        return "R1"
    if res["status"] != "active" or any(departed(f) for f in flights):
        return "R2"
    if (
        res["booked_on"] == TODAY
        or res["cabin"] == "business"
        or res["insurance"]
        or any(f["status"] == "cancelled" for f in flights)
    ):
        return None
    return "R2"


def compensation(flight_status: str, membership: str, cabin: str, insured: bool, passengers: int) -> int:
    """R5: the certificate amount, 0 when the user gets none."""
    if flight_status not in COMPENSATION:
        return 0
    if membership in ("silver", "gold") or insured or cabin == "business":
        return COMPENSATION[flight_status] * passengers
    return 0
