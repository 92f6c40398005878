"""The upstream airline tools behind tau2's calling conventions: outputs, errors, fresh databases, schemas."""

from __future__ import annotations

import json
from functools import lru_cache

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sgcd.envs.tau3_airline.data import load_data
from sgcd.envs.tau3_airline.tools import TOOL_NAMES, WRITE_TOOLS, Toolkit, to_json_str, tool_schemas


def test_fourteen_tools_six_of_them_write():
    assert len(TOOL_NAMES) == 14
    assert WRITE_TOOLS == {
        "book_reservation",
        "cancel_reservation",
        "send_certificate",
        "update_reservation_baggages",
        "update_reservation_flights",
        "update_reservation_passengers",
    }


def test_errors_are_observations_in_tau2_words():
    kit = Toolkit(load_data())
    assert kit.call("fly_me", {}) == ("Error: Tool 'fly_me' not found.", True)
    out, err = kit.call("get_user_details", {})
    assert err and out.startswith("Error: ") and "missing 1 required positional argument: 'user_id'" in out
    assert kit.call("get_user_details", {"user_id": "nobody"}) == ("Error: User nobody not found", True)
    assert kit.call("calculate", {"expression": "2 + 2"}) == ("4.0", False)  # str(round(float(4), 2))
    out, err = kit.call("calculate", {"expression": "9**9**9"})  # our guard: no minute-long powers
    assert err and "exponent" in out
    assert kit.call("calculate", {"expression": "2**10"}) == ("1024.0", False)


def test_baggage_update_charges_the_gift_card_by_hand():
    # EHGLP3 (emma_kim_9957) has 0 non-free bags; going to 1 costs 50 * (1 - 0) = 50, taken from
    # gift_card_9562694 (balance 103.0 -> 53.0) and appended to the payment history.
    kit = Toolkit(load_data())
    args = {"reservation_id": "EHGLP3", "total_baggages": 2, "nonfree_baggages": 1}
    out, err = kit.call("update_reservation_baggages", {**args, "payment_id": "gift_card_9562694"})
    assert not err
    res = json.loads(out)
    assert (res["total_baggages"], res["nonfree_baggages"]) == (2, 1)
    assert res["payment_history"][-1] == {"payment_id": "gift_card_9562694", "amount": 50}
    assert kit.db.users["emma_kim_9957"].payment_methods["gift_card_9562694"].amount == 53.0


def test_each_toolkit_has_its_own_fresh_database():
    data = load_data()
    a, b = Toolkit(data), Toolkit(data)
    assert a.db_hash() == b.db_hash()
    out, err = a.call("cancel_reservation", {"reservation_id": "EHGLP3"})
    assert not err and json.loads(out)["status"] == "cancelled"
    # refund = the negated original payment (208 on credit_card_5832574)
    assert json.loads(out)["payment_history"][-1] == {"payment_id": "credit_card_5832574", "amount": -208}
    assert a.db_hash() != b.db_hash()
    assert b.db.reservations["EHGLP3"].status is None
    assert Toolkit(data).db_hash() == b.db_hash()  # the shared parse was not touched


def test_serialisation_follows_tau2():
    assert to_json_str("plain") == "plain"  # strings verbatim
    assert to_json_str([1, None, {"a": True}]) == '["1", null, {"a": "True"}]'  # scalars become strings


def test_schemas_are_openai_functions_matching_signatures():
    schemas = {s["function"]["name"]: s for s in tool_schemas()}
    assert set(schemas) == set(TOOL_NAMES)
    book = schemas["book_reservation"]["function"]
    assert book["description"] == "Book a reservation."
    params = book["parameters"]
    assert params["type"] == "object"
    assert set(params["required"]) == {
        "user_id", "origin", "destination", "flight_type", "cabin", "flights", "passengers",
        "payment_methods", "total_baggages", "nonfree_baggages", "insurance",
    }  # fmt: skip
    assert params["properties"]["cabin"]["enum"] == ["business", "economy", "basic_economy"]
    assert "FlightInfo" in params["$defs"]
    assert schemas["list_all_airports"]["function"]["parameters"]["properties"] == {}


_json = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.text(max_size=4),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    name=st.sampled_from(TOOL_NAMES + ("nope",)),
    args=st.dictionaries(st.text(max_size=12), _json, max_size=4),
)
def test_any_call_returns_text_and_never_raises(name, args):
    kit = _shared_kit()
    out, err = kit.call(name, args)
    assert isinstance(out, str) and isinstance(err, bool)
    if err:
        assert out.startswith("Error: ")


@lru_cache(maxsize=1)
def _shared_kit() -> Toolkit:
    return Toolkit(load_data())  # one database for all examples: calls may change it, which is fine here
