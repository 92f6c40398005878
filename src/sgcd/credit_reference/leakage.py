"""The leakage guard: literal identifiers and answers from the evidence never reach the teacher.

The reference tells the teacher *which kind* of step helps, not the answer: a teacher that sees "reservation
ZFA04Y, refund $120.00" would back tokens for knowing the answer rather than for acting well. Before a
reference reaches the teacher, every free-text field (task_summary, arg_pattern, why, the divergence
description, failure modes, end-state requirements) is scrubbed:

1. Literals taken from the group's evidence (all siblings, not only the shown ones) are replaced by an abstract
   pattern: string and number values of tool-call arguments -> `<arg name>` (e.g. `<reservation_id>`); the
   final answers, whole (3-200 chars) -> `<final answer>`; amounts, emails, dates, numbers of 3+ digits, decimals and
   id-like tokens found in answers, arguments, observations and the instruction -> `<amount>`, `<email>`,
   `<date>`, `<number>`, `<id>`.
2. Then pattern regexes run over the result anyway (an LLM may invent an id that is in no evidence):
   id-like tokens (letters and digits mixed, 4+ chars), emails and $-amounts.

Matching is case-insensitive at word boundaries, longest literal first. Values that the tool schemas
themselves spell out (enum members such as "economy", tool names) are public to the student and kept, as are
one-digit numbers and one-character strings. Step ids, tool names, polarity and counts are not free text and
are left alone. [ours: the paper says only that the reference is "training-only"; this guard is our design.]
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator
from typing import Any

from sgcd.credit_reference.evidence import GroupEvidence
from sgcd.credit_reference.schema import CreditReference

ID_RE = re.compile(r"(?<![\w<])(?=[\w-]*\d)(?=[\w-]*[A-Za-z])[A-Za-z0-9][\w-]{3,}(?![\w>])")
EMAIL_RE = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
AMOUNT_RE = re.compile(r"[$€£]\s?\d[\d,]*(?:\.\d+)?|(?<![\w.])\d[\d,]*\.\d{2}(?![\w.])")
DATE_RE = re.compile(r"(?<!\d)\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2})?)?(?!\d)")
NUMBER_RE = re.compile(r"(?<![\w.])(?:\d{3,}(?:\.\d+)?|\d+\.\d+)(?![\w.])")  # 3+ digits, or a decimal
_PATTERNS = (("email", EMAIL_RE), ("date", DATE_RE), ("amount", AMOUNT_RE), ("id", ID_RE))


def _walk(value: Any, key: str) -> Iterator[tuple[str, Any]]:
    """(argument name, scalar) pairs of a JSON value; list items keep their parent's name."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _walk(v, str(k))
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _walk(v, key)
    else:
        yield key, value


def _schema_words(value: Any, words: set[str] | None = None) -> set[str]:
    """Lower-cased strings the tool schemas spell out (enum members, tool and parameter names): public."""
    words = set() if words is None else words
    if isinstance(value, dict):
        for k, v in value.items():
            words.add(str(k).lower())
            _schema_words(v, words)
    elif isinstance(value, list | tuple):
        for v in value:
            _schema_words(v, words)
    elif isinstance(value, str) and len(value) <= 64:
        words.add(value.lower())
    return words


def _pattern_literals(text: str, out: dict[str, str]) -> None:
    for kind, regex in _PATTERNS + (("number", NUMBER_RE),):
        for m in regex.finditer(text):
            out.setdefault(m.group(0).strip(), f"<{kind}>")


def collect_literals(evidence: GroupEvidence) -> dict[str, str]:
    """literal (as it appears) -> abstract placeholder, for every literal the guard must keep out."""
    public = _schema_words(json.loads(json.dumps(evidence.tools, default=str)))
    literals: dict[str, str] = {}
    texts = [evidence.instruction]
    for ep in evidence.successes + evidence.failures:
        answer = ep.final_answer.strip()
        if 3 <= len(answer) <= 200:
            literals.setdefault(answer, "<final answer>")
        texts.append(answer)
        for step in ep.steps:
            texts.append(step.observation)
            for call in step.calls:
                for key, value in _walk(call.arguments, call.name):
                    if isinstance(value, bool) or value is None:
                        continue
                    if isinstance(value, int | float) and abs(value) < 10 and float(value).is_integer():
                        continue  # one-digit counts ("1 passenger") are not identifying
                    text = str(value).strip()
                    if len(text) >= 2 and text.lower() not in public:
                        literals.setdefault(text, f"<{key}>")
                        texts.append(text)
    for text in texts:
        _pattern_literals(text, literals)
    return {lit: ph for lit, ph in literals.items() if lit.lower() not in public}


def _literal_regex(literals: dict[str, str]) -> re.Pattern[str] | None:
    if not literals:
        return None
    alternatives = "|".join(re.escape(lit) for lit in sorted(literals, key=len, reverse=True))
    return re.compile(rf"(?<![\w])(?:{alternatives})(?![\w])", re.IGNORECASE)


class LeakageGuard:
    """Scrubs one group's literals out of references; `counts` accumulates what it removed, by kind."""

    def __init__(self, evidence: GroupEvidence) -> None:
        self.literals = collect_literals(evidence)
        self._public = _schema_words(json.loads(json.dumps(evidence.tools, default=str)))
        self._lower = {lit.lower(): ph for lit, ph in self.literals.items()}
        self._regex = _literal_regex(self.literals)
        self.counts: Counter[str] = Counter()

    def scrub(self, text: str) -> str:
        def literal(m: re.Match[str]) -> str:
            placeholder = self._lower[m.group(0).lower()]
            self.counts["literal"] += 1
            return placeholder

        if self._regex is not None:
            text = self._regex.sub(literal, text)
        for kind, regex in _PATTERNS:

            def pattern(m: re.Match[str], kind: str = kind) -> str:
                if m.group(0).lower() in self._public:  # a tool or parameter name such as get_user_v2
                    return m.group(0)
                self.counts[kind] += 1
                return f"<{kind}>"

            text = regex.sub(pattern, text)
        return text

    def guard(self, ref: CreditReference) -> CreditReference:
        s = self.scrub
        steps = [
            st.model_copy(update={"arg_pattern": s(st.arg_pattern), "why": s(st.why)}) for st in ref.steps
        ]
        div = ref.first_divergence
        if div is not None:
            div = div.model_copy(update={"description": s(div.description)})
        return ref.model_copy(
            update={
                "task_summary": s(ref.task_summary),
                "steps": steps,
                "first_divergence": div,
                "failure_modes": [s(x) for x in ref.failure_modes],
                "end_state_requirements": [s(x) for x in ref.end_state_requirements],
            }
        )


def guard_reference(ref: CreditReference, evidence: GroupEvidence) -> tuple[CreditReference, dict[str, int]]:
    """The scrubbed reference and how many replacements were made, by kind (literal, id, amount, ...)."""
    guard = LeakageGuard(evidence)
    out = guard.guard(ref)
    return out, dict(guard.counts)
