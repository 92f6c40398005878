"""The LLM summarizer: an external chat model reads the sibling contrast and writes the credit reference.

Flow for one group: select and render the evidence -> look up the content-addressed cache -> ask the backend
(temperature 0, JSON only) -> extract and validate the JSON -> on a parse or schema failure, one repair turn
(the model sees its answer and the error) -> cache the valid reference -> leakage guard -> return. Any failure
(timeout, HTTP error, refusal, invalid JSON after the repair, budget spent, an unexpected error) returns the
offline reference for that group and counts `fallback/<cause>`; nothing raises.

Departures [ours]: the prompt is our own (the paper's is not public), versioned by PROMPT_VERSION, which is part
of the cache key; groups that are not mixed skip the LLM (there is no contrast to summarize) and get the
offline reference, counted as `skipped_unmixed`.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

from pydantic import ValidationError

from sgcd.credit_reference.backends import SummarizerFailure
from sgcd.credit_reference.base import GroupLike, SummarizerStats, as_evidence, finish, safe_offline
from sgcd.credit_reference.cache import ReferenceCache, cache_key
from sgcd.credit_reference.schema import CreditReference

PROMPT_VERSION = "sgcd-credit-v1"

SYSTEM_PROMPT = """\
You audit attempts at one tool-use task. Every attempt came from the same agent on the same prompt; some \
succeeded and some failed. Your job: a stepwise credit reference that tells a trainer which kinds of steps made \
the difference between success and failure.

Answer with one JSON object and nothing else: no prose, no code fences. Use exactly these keys:
{"task_summary": "<one sentence: what the task asks, in general terms>",
 "steps": [{"step_id": "S1",
            "tool": "<tool name, or null for a reasoning or answer step>",
            "arg_pattern": "<where the arguments come from, e.g. 'the reservation id the user gave'>",
            "polarity": "helpful" | "harmful" | "neutral",
            "why": "<one sentence>",
            "evidence": {"succ": "<k/n successes shown that take this step>", "fail": "<k/n failures shown>"},
            "confidence": <number from 0 to 1>}],
 "first_divergence": {"step_id": "<a step_id from steps>", "description": "<where failures first go wrong>"},
 "failure_modes": ["<short phrase>"],
 "end_state_requirements": ["<what must be true of the environment at the end>"]}

Rules:
- One entry in steps per kind of action that matters, in the order a good attempt takes them: S1, S2, ...
- helpful: the successes take the step and the failures do not; harmful: the failures take it and the successes \
do not, or it fails with an error only in failures; neutral: it does not separate them.
- Never write literal values from the attempts: no ids, names, passwords, amounts, dates or answer text. \
Describe them abstractly ("the cheapest economy fare", "the user's second reservation").
- first_divergence.step_id must be one of the step ids; use null for first_divergence only if no failure \
departs from the successes in its actions."""

USER_TEMPLATE = "The attempts:\n\n{evidence}\n\nReply with the JSON object only."

REPAIR_TEMPLATE = (
    "That reply cannot be used: {error}. Reply again with only the corrected JSON object, with exactly the keys "
    "and value types described."
)

_FENCE_RE = re.compile(r"^```[a-zA-Z]*\s*|\s*```$")


# The repair turn shows the model its unusable answer; a runaway answer is cut to this many characters (head
# and tail), so one bad reply cannot make the next request as large as itself.
REPAIR_ECHO_CHARS = 4000


def _clip(text: str, limit: int = REPAIR_ECHO_CHARS) -> str:
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}\n[... {len(text) - 2 * half} characters cut ...]\n{text[-half:]}"


class ParseFailure(Exception):
    def __init__(self, cause: str, detail: str) -> None:
        super().__init__(detail)
        self.cause = cause  # "invalid_json" | "schema"


def parse_reference(text: str) -> CreditReference:
    """The JSON object in `text` (code fences and text around it tolerated), validated; else ParseFailure."""
    body = _FENCE_RE.sub("", text.strip())
    start, end = body.find("{"), body.rfind("}")
    if start < 0 or end <= start:
        raise ParseFailure("invalid_json", "no JSON object found")
    try:
        obj = json.loads(body[start : end + 1])
    except json.JSONDecodeError as exc:
        raise ParseFailure("invalid_json", f"invalid JSON ({exc.msg} at char {exc.pos})") from None
    try:
        return CreditReference.model_validate(obj)
    except ValidationError as exc:
        errs = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'object'}: {e['msg']}" for e in exc.errors()[:5]
        )
        raise ParseFailure("schema", f"schema violations: {errs}") from None


def build_messages(evidence_text: str) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": USER_TEMPLATE.format(evidence=evidence_text)},
    ]


class LLMSummarizer:
    """Summarize with a chat backend (`OpenAIBackend` or `HFBackend`), a cache, and the offline fallback."""

    def __init__(
        self,
        backend: Any,
        model: str,
        stats: SummarizerStats,
        cache: ReferenceCache | None = None,
        name: str | None = None,
    ) -> None:
        self.backend, self.model, self.stats, self.cache = backend, model, stats, cache
        self.name = name or f"llm:{model}"

    def metrics(self, reset: bool = False) -> dict[str, float]:
        return self.stats.snapshot(reset)

    def time_bound_s(self) -> float | None:
        """Longest one summarize() can take (the question and its repair), when the backend knows; else None."""
        bound = getattr(self.backend, "time_bound_s", None)
        return 2 * bound() if bound is not None else None

    def summarize(self, group: GroupLike) -> CreditReference:
        ev = as_evidence(group)
        if not ev.is_mixed:
            self.stats.count("skipped_unmixed")
            return finish(safe_offline(ev, self.stats), ev, self.stats, "offline")
        text = ev.render()
        key = cache_key(text, PROMPT_VERSION, self.model)
        if self.cache is not None:
            cached = self.cache.get(key)
            if cached is not None:
                self.stats.count("cache_hits")
                return finish(cached, ev, self.stats, "cache")
            self.stats.count("cache_misses")
        t0 = time.monotonic()
        try:
            ref = self._ask(text)
        except SummarizerFailure as exc:
            return self._fallback(ev, exc.cause)
        except Exception:  # noqa: BLE001 - a bug here must not stop the training step; counted
            return self._fallback(ev, "error")
        finally:
            self.stats.latency(time.monotonic() - t0)
        if self.cache is not None:
            try:
                self.cache.put(key, ref, self.model, PROMPT_VERSION)
            except OSError:
                self.stats.count("cache_write_errors")
        return finish(ref, ev, self.stats, "llm")

    def _fallback(self, ev: Any, cause: str) -> CreditReference:
        self.stats.count("fallbacks")
        self.stats.count(f"fallback/{cause}")
        return finish(safe_offline(ev, self.stats), ev, self.stats, "fallback")

    def _ask(self, evidence_text: str) -> CreditReference:
        messages = build_messages(evidence_text)
        reply = self.backend.complete(messages)
        try:
            return parse_reference(reply.text)
        except ParseFailure as exc:
            self.stats.count("parse_failures")
            self.stats.count(f"parse_failures/{exc.cause}")
            repair = messages + [
                {"role": "assistant", "content": _clip(reply.text)},
                {"role": "user", "content": REPAIR_TEMPLATE.format(error=exc)},
            ]
        self.stats.count("repairs")
        reply = self.backend.complete(repair)
        try:
            ref = parse_reference(reply.text)
        except ParseFailure as exc:
            self.stats.count("parse_failures")
            self.stats.count(f"parse_failures/{exc.cause}")
            raise SummarizerFailure(exc.cause, str(exc)) from None
        self.stats.count("repairs_ok")
        return ref
