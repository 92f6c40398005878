"""Sibling contrast -> training-only stepwise credit reference (LLM and offline), and the teacher context.

    ref = make_summarizer("offline").summarize(group)          # never raises; leakage-guarded
    refs = summarize_groups(summarizer, groups, max_concurrency=4)
    scores = teacher_scores(policy, group, ref)                # ref=None: the student's computation exactly

See docs/credit_reference.md. Imports stay light: `openai` and models load only when an LLM summarizer asks.
"""

from sgcd.credit_reference.base import OfflineSummarizer, Summarizer, SummarizerStats
from sgcd.credit_reference.evidence import GroupEvidence, select_evidence, signature
from sgcd.credit_reference.factory import make_summarizer, summarize_groups
from sgcd.credit_reference.group_io import group_from_json, group_to_json
from sgcd.credit_reference.leakage import guard_reference
from sgcd.credit_reference.offline import offline_reference
from sgcd.credit_reference.schema import CreditReference, FirstDivergence, StepCredit, StepEvidence
from sgcd.credit_reference.teacher import (
    TeacherInputs,
    render_reference,
    teacher_inputs,
    teacher_messages,
    teacher_prefixes,
    teacher_scores,
)

__all__ = [
    "CreditReference",
    "FirstDivergence",
    "GroupEvidence",
    "OfflineSummarizer",
    "StepCredit",
    "StepEvidence",
    "Summarizer",
    "SummarizerStats",
    "TeacherInputs",
    "group_from_json",
    "group_to_json",
    "guard_reference",
    "make_summarizer",
    "offline_reference",
    "render_reference",
    "select_evidence",
    "signature",
    "summarize_groups",
    "teacher_inputs",
    "teacher_messages",
    "teacher_prefixes",
    "teacher_scores",
]
