"""The LLM summarizer against a real HTTP double on 127.0.0.1, through the real `openai` client.

Every fault yields a valid reference within the configured time bound, counts the right cause, and never
raises. Timeouts are tiny (0.5 s) so the suite stays fast.
"""

from __future__ import annotations

import json
import threading
import time

import pytest
from cref_groups import cancel_group

from sgcd.credit_reference import CreditReference, make_summarizer, offline_reference, select_evidence
from sgcd.credit_reference.leakage import guard_reference
from sgcd.credit_reference.llm import PROMPT_VERSION, parse_reference
from support.openai_double import OpenAIDouble, bad_body, drop, hang, http_error, rate_limited, reply

VALID = {
    "task_summary": "Cancel the reservation the user names and refund it.",
    "steps": [
        {"step_id": "S1", "tool": "get_reservation_details", "arg_pattern": "the reservation id the user gave",
         "polarity": "helpful", "why": "successes read the booking first", "evidence": {"succ": "2/2", "fail": "1/3"},
         "confidence": 0.7},
        {"step_id": "S2", "tool": "cancel_reservation", "arg_pattern": "that reservation id",
         "polarity": "helpful", "why": "the state change the task needs", "evidence": {"succ": "2/2", "fail": "0/3"},
         "confidence": 0.95},
    ],
    "first_divergence": {"step_id": "S2", "description": "failures never cancel"},
    "failure_modes": ["ends with an apology instead of cancelling"],
    "end_state_requirements": ["the reservation is cancelled"],
}  # fmt: skip
VALID_TEXT = json.dumps(VALID)
SCHEMA_BREAKING = json.dumps({"task_summary": "x", "steps": [{"step_id": "S1", "polarity": "great"}]})

OPTS = dict(timeout=0.5, retries=1, backoff_base=0.01, backoff_max=0.05, retry_after_max=0.6)


def _summarizer(srv: OpenAIDouble, **extra):
    return make_summarizer(
        "openai:test-model", base_url=srv.base_url, api_key_env="SGCD_TEST_KEY", **{**OPTS, **extra}
    )


def _offline():
    g = cancel_group()
    ev = select_evidence(g)
    return guard_reference(offline_reference(ev), ev)[0]


CASES = [
    # (name, script, source, fallback cause or None, requests the double sees)
    ("valid", [reply(VALID_TEXT)], "llm", None, 1),
    ("valid_in_fences", [reply(f"```json\n{VALID_TEXT}\n```")], "llm", None, 1),
    ("malformed_then_repaired", [reply("{'steps': oops}"), reply(VALID_TEXT)], "llm", None, 2),
    ("malformed", [reply("{'steps': oops}"), reply("still not json {")], "fallback", "invalid_json", 2),
    ("schema_breaking", [reply(SCHEMA_BREAKING), reply(SCHEMA_BREAKING)], "fallback", "schema", 2),
    ("http_500", [http_error(500), http_error(503)], "fallback", "http_5xx", 2),  # 1 try + 1 retry
    ("http_500_then_ok", [http_error(500), reply(VALID_TEXT)], "llm", None, 2),
    ("rate_limited", [rate_limited(0.3), rate_limited(0.3)], "fallback", "rate_limit", 2),
    ("rate_limited_then_ok", [rate_limited(0.3), reply(VALID_TEXT)], "llm", None, 2),
    ("hang", [hang(5.0), hang(5.0)], "fallback", "timeout", 2),
    ("dropped_connection", [drop(), drop()], "fallback", "connection", 2),
    ("bad_body", [bad_body(), bad_body()], "fallback", "bad_response", 2),
    ("html_page", [bad_body("text/html"), bad_body("text/html")], "fallback", "bad_response", 2),  # retried
    ("html_page_then_ok", [bad_body("text/html"), reply(VALID_TEXT)], "llm", None, 2),
    ("refusal", [reply(None, refusal="I can't help with that.")], "fallback", "refusal", 1),  # no retry
    ("http_400", [http_error(400, "bad request")], "fallback", "http_4xx", 1),  # no retry
]


@pytest.mark.parametrize("name, script, source, cause, n_requests", CASES, ids=[c[0] for c in CASES])
def test_fault_injection(name, script, source, cause, n_requests, monkeypatch):
    monkeypatch.setenv("SGCD_TEST_KEY", "sk-test-not-a-real-key")
    with OpenAIDouble(script) as srv:
        summ = _summarizer(srv)
        t0 = time.monotonic()
        ref = summ.summarize(cancel_group())  # must not raise
        elapsed = time.monotonic() - t0
        assert isinstance(ref, CreditReference)
        assert elapsed < summ.time_bound_s(), (elapsed, summ.time_bound_s())
        assert srv.request_count == n_requests
        m = summ.metrics()
        assert m[f"summarizer/source/{source}"] == 1.0
        assert m["summarizer/requests"] == n_requests
        if cause is None:
            assert m["summarizer/fallbacks"] == 0.0
            assert ref.steps[1].tool == "cancel_reservation" and ref.first_divergence.step_id == "S2"
        else:
            assert m["summarizer/fallbacks"] == 1.0 and m[f"summarizer/fallback/{cause}"] == 1.0
            assert ref == _offline()  # the fallback is exactly the offline reference
        body = srv.requests[0]["body"]
        assert body["temperature"] == 0 and body["response_format"] == {"type": "json_object"}
        assert body["model"] == "test-model"


def test_retry_after_is_honoured_and_hang_is_cut_at_the_timeout():
    with OpenAIDouble([rate_limited(0.3), reply(VALID_TEXT)]) as srv:
        _summarizer(srv).summarize(cancel_group())
        gap = srv.requests[1]["time"] - srv.requests[0]["time"]
        assert gap >= 0.3  # the backoff alone is at most 0.05 s: the wait came from Retry-After
    with OpenAIDouble([hang(5.0), reply(VALID_TEXT)]) as srv:
        summ = _summarizer(srv)
        t0 = time.monotonic()
        assert summ.summarize(cancel_group()).steps[0].tool == "get_reservation_details"
        assert 0.45 < time.monotonic() - t0 < 1.5  # one 0.5 s timeout, one short backoff, one answer


def test_malformed_repair_turn_shows_the_model_its_answer():
    with OpenAIDouble([reply("{'steps': oops}"), reply(VALID_TEXT)]) as srv:
        summ = _summarizer(srv)
        summ.summarize(cancel_group())
        repair = srv.requests[1]["body"]["messages"]
        assert repair[-2] == {"role": "assistant", "content": "{'steps': oops}"}
        assert "invalid JSON" in repair[-1]["content"]
        m = summ.metrics()
        assert m["summarizer/parse_failures"] == 1.0 and m["summarizer/repairs_ok"] == 1.0


def test_repair_turn_caps_what_it_sends_back():
    from sgcd.credit_reference.llm import REPAIR_ECHO_CHARS

    huge = "{" + "x" * 2_000_000  # a runaway answer (20 MB were seen): not sent back whole
    with OpenAIDouble([reply(huge), reply(VALID_TEXT)]) as srv:
        ref = _summarizer(srv).summarize(cancel_group())
        echoed = srv.requests[1]["body"]["messages"][-2]["content"]
        assert (
            len(echoed) < REPAIR_ECHO_CHARS + 100 and echoed.startswith("{xxx") and "characters cut" in echoed
        )
        assert ref.steps[1].tool == "cancel_reservation"


def test_budget_exhaustion_falls_back_without_requests():
    with OpenAIDouble([http_error(500), reply(VALID_TEXT)]) as srv:
        summ = _summarizer(srv, max_requests=1)
        assert summ.summarize(cancel_group()) == _offline()  # the retry would be request 2: over budget
        assert summ.summarize(cancel_group()) == _offline()  # nothing left: no request at all
        assert srv.request_count == 1
        assert summ.metrics()["summarizer/fallback/budget"] == 2.0


def test_token_budget():
    with OpenAIDouble([reply(VALID_TEXT, usage=(900, 200)), reply(VALID_TEXT)]) as srv:
        summ = _summarizer(srv, max_tokens=1000)
        summ.summarize(cancel_group())
        g2 = cancel_group()
        g2 = type(g2)(g2.task_id, g2.trajectories, g2.prompt, instruction="another task")  # no cache anyway
        summ.summarize(g2)  # 1100 tokens spent >= 1000: no second request
        m = summ.metrics()
        assert srv.request_count == 1 and m["summarizer/fallback/budget"] == 1.0
        assert (m["summarizer/prompt_tokens"], m["summarizer/completion_tokens"]) == (900.0, 200.0)


def test_concurrency_limit_and_parallel_groups():
    from dataclasses import replace

    from sgcd.credit_reference import summarize_groups

    in_flight, peak, lock = [0], [0], threading.Lock()

    def slow(body):
        with lock:
            in_flight[0] += 1
            peak[0] = max(peak[0], in_flight[0])
        time.sleep(0.2)
        with lock:
            in_flight[0] -= 1
        return reply(VALID_TEXT)

    groups = [replace(cancel_group(), instruction=f"task {i}") for i in range(4)]
    with OpenAIDouble(handler=slow) as srv:
        summ = _summarizer(srv, max_concurrency=2)
        refs = summarize_groups(summ, groups, max_concurrency=4)
        assert srv.request_count == 4 and peak[0] == 2  # parallel, but never more than the limit
        assert [r.steps[1].tool for r in refs] == ["cancel_reservation"] * 4


def test_parse_reference_rejects_dangling_divergence():
    bad = dict(VALID, first_divergence={"step_id": "S9", "description": "x"})
    with pytest.raises(Exception, match="S9"):
        parse_reference(json.dumps(bad))


def test_unknown_option_and_spec_are_named():
    with pytest.raises(ValueError, match="timeoutt"):
        make_summarizer("openai:m", timeoutt=1)
    with pytest.raises(ValueError, match="gpt"):
        make_summarizer("gpt")
    assert PROMPT_VERSION
