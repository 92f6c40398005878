"""The airline-lite written policy: the text the agent reads, and the same rules as functions the gold solver uses.

Rules are numbered R1..R7; a correct refusal changes nothing and names the rule (the verifier checks the number).
The tools do not enforce R1-R5 (as in tau-bench, the agent must), so a shortcut that skips the lookup a rule
needs sometimes succeeds and sometimes violates policy. Tools do enforce hard facts (ids exist, seats, balances).

Departure from tau-bench airline: far shorter (about 250 tokens) so the whole opening prompt fits a small model,
a fixed "today", and refusals cite a rule number instead of being judged by an LLM.
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

POLICY_TEXT = f"""You are an airline agent; today is {TODAY}. Handle the request with the tools; every tool argument is required.
R1 Change only reservations whose user_id is the requester's (check with get_reservation).
R2 Cancel only if booked today, business cabin, insured, or a flight in it was cancelled by us; never once a flight departed (date before today).
R3 Basic economy cannot change flights. A new flight needs the same route, not cancelled, not departed.
R4 Free bags per passenger (regular/silver/gold): basic_economy 0/1/2, economy 1/2/3, business 2/3/4. Extra bags cost {BAG_FEE} each (paid_bags). Bags can only be added.
R5 Compensation only if flight_status shows cancelled ({COMPENSATION["cancelled"]} per passenger) or delayed ({COMPENSATION["delayed"]} per passenger) and the user is silver/gold, insured or in business: issue a certificate.
R6 Pay only with the user's payment methods; a gift card must cover the amount.
R7 If no tool can do it, call transfer_to_human.
If a rule forbids the request, change nothing and name the rule (e.g. "R2"). Finish with a reply to the user."""


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
