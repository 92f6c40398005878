"""The OpenAI test double answers the real `openai` client as scripted, and fails the way it is told to."""

from __future__ import annotations

import time

import openai
import pytest

from support.openai_double import (
    OpenAIDouble,
    bad_body,
    drop,
    hang,
    http_error,
    openai_double,  # noqa: F401 - the fixture
    rate_limited,
    reply,
)

MSGS = [{"role": "user", "content": "hi"}]


def _client(srv: OpenAIDouble, timeout: float = 0.5) -> openai.OpenAI:
    return openai.OpenAI(base_url=srv.base_url, api_key="sk-secret-test", max_retries=0, timeout=timeout)


def test_reply_roundtrip_and_records_without_auth():
    with OpenAIDouble([reply('{"a": 1}', usage=(11, 3))]) as srv:
        out = _client(srv).chat.completions.create(model="m", messages=MSGS, temperature=0)
        assert out.choices[0].message.content == '{"a": 1}'
        assert (out.usage.prompt_tokens, out.usage.completion_tokens) == (11, 3)
        assert srv.request_count == 1
        rec = srv.requests[0]
        assert rec["body"]["messages"] == MSGS and rec["body"]["temperature"] == 0
        assert "authorization" not in rec["headers"]
        assert "sk-secret-test" not in repr(srv.requests)


def test_tool_calls_and_handler(openai_double):  # noqa: F811 - fixture
    openai_double.set_handler(lambda body: reply(None, tool_calls=[("book", {"id": body["model"]})]))
    out = _client(openai_double).chat.completions.create(model="xyz", messages=MSGS)
    call = out.choices[0].message.tool_calls[0]
    assert call.function.name == "book" and call.function.arguments == '{"id": "xyz"}'
    assert out.choices[0].finish_reason == "tool_calls"


@pytest.mark.parametrize(
    "fault, exc",
    [
        (http_error(500), openai.InternalServerError),
        (rate_limited(0.2), openai.RateLimitError),
        (hang(3.0), openai.APITimeoutError),
        (drop(), openai.APIConnectionError),
        (bad_body(), Exception),
    ],
)
def test_faults_raise_the_client_error(fault, exc):
    with OpenAIDouble([fault]) as srv:
        t0 = time.monotonic()
        with pytest.raises(exc) as info:
            _client(srv, timeout=0.3).chat.completions.create(model="m", messages=MSGS)
        assert time.monotonic() - t0 < 2.0  # the hang is cut by the client timeout, not waited out
        if fault["kind"] == "rate_limited":
            assert info.value.response.headers["retry-after"] == "0.2"
        assert srv.request_count == 1


def test_exhausted_script_is_a_500():
    with OpenAIDouble() as srv:
        with pytest.raises(openai.InternalServerError):
            _client(srv).chat.completions.create(model="m", messages=MSGS)
