"""The leakage guard: no literal id or answer string from the evidence survives into the teacher prompt."""

from __future__ import annotations

import json

from cref_groups import (
    ANSWER,
    FLIGHT,
    PASSWORD,
    REFUND,
    RES_ID,
    USER_ID,
    WRONG_RES_ID,
    call,
    cancel_group,
    episode,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from test_llm import OPTS

from sgcd.credit_reference import (
    CreditReference,
    guard_reference,
    make_summarizer,
    render_reference,
    select_evidence,
    teacher_messages,
)
from support.openai_double import OpenAIDouble, reply

LITERALS = [
    USER_ID,
    RES_ID,
    WRONG_RES_ID,
    FLIGHT,
    PASSWORD,
    REFUND,
    "1,234.50",
    ANSWER,
    "Your flight could not be changed.",
]

# An LLM answer that quotes the evidence verbatim everywhere it can.
LEAKY = {
    "task_summary": f"User {USER_ID} with password {PASSWORD} wants {RES_ID} cancelled.",
    "steps": [
        {"step_id": "S1", "tool": "get_reservation_details", "arg_pattern": f"reservation_id={RES_ID}",
         "polarity": "helpful", "why": f"reads flight {FLIGHT}; wrong id {WRONG_RES_ID} fails",
         "evidence": {"succ": "2/2", "fail": "1/3"}, "confidence": 0.7},
        {"step_id": "S2", "tool": "cancel_reservation", "arg_pattern": f"'{RES_ID}', reason change_of_plan",
         "polarity": "helpful", "why": f"refund of {REFUND} (1234.5 in the record)",
         "evidence": {"succ": "2/2", "fail": "0/3"}, "confidence": 0.9},
    ],
    "first_divergence": {"step_id": "S2", "description": "failures say: Your flight could not be changed."},
    "failure_modes": [f"answering '{ANSWER.lower()}' without cancelling", "an invented id XK42PZ9"],
    "end_state_requirements": [f"{RES_ID} cancelled, {REFUND} refunded to {USER_ID}@example.com"],
}  # fmt: skip


def _teacher_text(ref: CreditReference) -> str:
    g = cancel_group()
    clean = {m.content for m in g.prompt.messages}
    # what the teacher sees beyond the clean prompt the student also sees
    return "\n".join(m.content for m in teacher_messages(g.prompt.messages, ref) if m.content not in clean)


def test_no_literal_survives_from_an_llm_reference(monkeypatch):
    monkeypatch.setenv("SGCD_TEST_KEY", "x")
    with OpenAIDouble([reply(json.dumps(LEAKY))]) as srv:
        summ = make_summarizer("openai:m", base_url=srv.base_url, api_key_env="SGCD_TEST_KEY", **OPTS)
        ref = summ.summarize(cancel_group())
    assert summ.metrics()["summarizer/source/llm"] == 1.0
    text = _teacher_text(ref)
    assert text.startswith("You are an airline agent.\n\nTraining-only credit reference")
    for lit in LITERALS + ["1234.5", "XK42PZ9", "pa55w0rd"]:
        assert lit.lower() not in text.lower(), (lit, text)
    # the abstract patterns stand in for them, and the enum value the tools spell out stays
    assert "<reservation_id>" in text and "<final answer>" in text and "change_of_plan" in text
    assert summ.metrics()["summarizer/leakage_removed"] >= 12


def test_offline_reference_is_guarded_too():
    ref = make_summarizer("offline").summarize(cancel_group())
    text = render_reference(ref)
    for lit in LITERALS:
        assert lit.lower() not in text.lower(), lit
    assert ref.task_summary.startswith("You are <user_id> (password <id>")


def test_guard_counts_by_kind():
    ev = select_evidence(cancel_group())
    ref = CreditReference.model_validate(
        {"task_summary": f"cancel {RES_ID}; mail a@b.io; pay $5.00 on 2024-05-01", "steps": []}
    )
    out, counts = guard_reference(ref, ev)
    # RES_ID is a literal from the arguments; the email, amount and date are caught by the pattern pass
    assert out.task_summary == "cancel <reservation_id>; mail <email>; pay <amount> on <date>"
    assert counts == {"literal": 1, "email": 1, "amount": 1, "date": 1}


_ids = st.from_regex(r"[A-Z]{2}[0-9]{2}[A-Z0-9]{2,6}", fullmatch=True)
_words = st.from_regex(r"[a-z]{3,8}( [a-z]{3,8}){1,4}", fullmatch=True)


@settings(max_examples=40, deadline=None)
@given(rid=_ids, answer=_words, secret=st.from_regex(r"[a-z]{4,8}[0-9]{1,3}[!#$]", fullmatch=True))
def test_property_no_evidence_literal_survives(rid, answer, secret):
    eps = [
        episode("s", True, [call("lookup", id=rid), call("login", write=True, password=secret)], answer),
        episode("f", False, [call("lookup", id=rid)], "no"),
    ]
    ev = select_evidence(eps)
    leaky = CreditReference.model_validate({
        "task_summary": f"{answer} for {rid}",
        "steps": [{"step_id": "S1", "tool": "lookup", "arg_pattern": f"id {rid.lower()} then {secret}",
                   "polarity": "helpful", "why": answer.upper(), "evidence": {"succ": "1/1", "fail": "1/1"},
                   "confidence": 0.0}],
        "failure_modes": [f"'{answer}'", f"{secret} typed twice"],
    })  # fmt: skip
    ref, counts = guard_reference(leaky, ev)
    text = render_reference(ref).lower()
    for lit in (rid, answer, secret):
        assert lit.lower() not in text
    assert sum(counts.values()) >= 6


def test_tool_and_parameter_names_with_digits_are_public():
    tools = ({"type": "function", "function": {"name": "get_user_v2", "parameters": {"type": "object",
              "properties": {"address1": {"type": "string"}}}}},)  # fmt: skip
    eps = [
        episode("s", True, [call("get_user_v2", address1="12 Elm St")], "ok"),
        episode("f", False, [], "no"),
    ]
    ev = select_evidence(eps, tools=tools)
    ref = CreditReference.model_validate(
        {"task_summary": "call get_user_v2 with address1 = 12 Elm St, not user X9Y8Z7", "steps": []}
    )
    out, counts = guard_reference(ref, ev)
    assert out.task_summary == "call get_user_v2 with address1 = <address1>, not user <id>"
    assert counts == {"literal": 1, "id": 1}
