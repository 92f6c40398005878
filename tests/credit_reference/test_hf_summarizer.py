"""`hf:MODEL`: a local transformers model as the summarizer (through load_policy), with the same fallback."""

from __future__ import annotations

import pytest
from cref_groups import cancel_group
from test_llm import VALID_TEXT, _offline

from sgcd.credit_reference import make_summarizer
from sgcd.policy.base import Completion


class ScriptedPolicy:
    """A TokenPolicy stand-in whose generate() plays scripted texts; records the prompts it was given."""

    def __init__(self, texts):
        self.texts, self.prompts, self.params = list(texts), [], []

    def encode_prompt(self, messages, tools):
        self.prompts.append(messages)
        return [1, 2, 3]

    def generate(self, prompts, params):
        self.params.append(params)
        text = self.texts.pop(0)
        if isinstance(text, Exception):
            raise text
        return [Completion(token_ids=(4, 5), logprobs=(0.0, 0.0), text=text, finished=True)]


@pytest.mark.parametrize(
    "texts, source, cause, n",
    [
        ([VALID_TEXT], "llm", None, 1),
        (["garbage", "more garbage"], "fallback", "invalid_json", 2),
        ([RuntimeError("CUDA out of memory")], "fallback", "error", 1),
    ],
)
def test_hf_backend_paths(monkeypatch, texts, source, cause, n):
    policy = ScriptedPolicy(texts)
    monkeypatch.setattr("sgcd.policy.models.load_policy", lambda spec: policy)
    summ = make_summarizer("hf:some-model")
    ref = summ.summarize(cancel_group())
    m = summ.metrics()
    assert m[f"summarizer/source/{source}"] == 1.0 and m["summarizer/requests"] == n
    assert policy.params[0].temperature == 0.0  # greedy
    assert policy.prompts[0][0].role == "system" and "Success 1" in policy.prompts[0][1].content
    if cause:
        assert m[f"summarizer/fallback/{cause}"] == 1.0 and ref == _offline()
    else:
        assert ref.steps[1].tool == "cancel_reservation"
        assert (m["summarizer/prompt_tokens"], m["summarizer/completion_tokens"]) == (3.0, 2.0)


def test_hf_tiny_model_never_raises():
    summ = make_summarizer("hf:tiny", max_new_tokens=4)  # random weights: its text is noise
    ref = summ.summarize(cancel_group())
    m = summ.metrics()
    assert ref == _offline() and m["summarizer/fallbacks"] == 1.0 and m["summarizer/requests"] >= 1
    assert m["summarizer/completion_tokens"] >= 1
