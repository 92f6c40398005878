"""The offline summarizer: a deterministic credit reference from signature statistics (algorithm.md §3).

Exactly §3: each action is canonicalized as `tool(sorted arg keys)`; for each signature p_s = share of
successes containing it, p_f = share of failures containing it; helpful if p_s - p_f >= 0.5, harmful if
p_f - p_s >= 0.5 or it errors only in failures; confidence = |p_s - p_f|. Each failure is aligned to its nearest
success with difflib over signature sequences; the first mismatch is the first divergence. Failures that lack
the final state-changing call the successes share are flagged.

Choices the paper leaves open [ours]:
- shares are counted over *all* siblings of the group (the LLM reads only the selected ones), in exact
  fractions, so 2/3 - 1/6 is exactly 0.5;
- the alignment leaves out a success's own failed calls (an error changes nothing the failures must copy),
  so "action k" counts the nearest success's calls that worked; an error signature is never "helpful" (a
  failed call that happens to sit in a success is at best neutral);
- a call that returned an error has its own signature, `tool(keys)!error` (evidence.signature). Without the
  split, one failure that calls `get_reservation_details` with a wrong id would make a call every success
  relies on "harmful" by the errors-only-in-failures clause; with it, the good call stays helpful and the
  erroring call is the harmful step, and the clause reads literally: an error signature no success contains;
- "helpful" is tested before "harmful" (they can only both hold for an error signature some success shares);
- steps are ordered by first appearance in the successes (shortest first), then failure-only signatures;
- the group's first divergence is the earliest point (in the nearest success's actions) over all failures; a
  failure whose signature sequence equals its success's is compared on argument values; if those match too,
  it differs only in its answer, which failure_modes says, and contributes no divergence;
- a group with no success or no failure has no contrast: every step is neutral with confidence 0;
- beyond §3, two answer-level lines: when every success's final answer states the same ids/numbers and a
  failure's leaves one out, failure_modes and end_state_requirements say so (counts only, never the values).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from sgcd.credit_reference.evidence import (
    ERROR_MARK,
    GroupEvidence,
    episode_calls,
    episode_signatures,
    first_mismatch,
    nearest_success,
    success_calls,
    truncate,
)
from sgcd.credit_reference.evidence import signature as _sig
from sgcd.credit_reference.leakage import ID_RE, NUMBER_RE
from sgcd.credit_reference.schema import CreditReference, FirstDivergence, StepCredit, StepEvidence
from sgcd.types import Episode

HELPFUL_MARGIN = Fraction(1, 2)


@dataclass(frozen=True)
class SignatureStats:
    """Counts of one signature over the group: siblings containing it, and calls of it that errored."""

    signature: str
    tool: str
    keys: tuple[str, ...]
    n_succ: int
    n_fail: int
    err_succ: int
    err_fail: int


def _contains(episodes: tuple[Episode, ...], sig: str) -> int:
    return sum(sig in episode_signatures(e) for e in episodes)


def _errors(episodes: tuple[Episode, ...], sig: str) -> int:
    return sum(1 for e in episodes for c in episode_calls(e) if c.error and _sig(c) == sig)


def signature_stats(ev: GroupEvidence) -> list[SignatureStats]:
    """One entry per distinct signature: successes' signatures first (shortest success first), then failures'."""
    ordered_succ = sorted(ev.successes, key=lambda e: len(e.steps))
    order: list[str] = []
    for ep in ordered_succ + list(ev.failures):
        for sig in episode_signatures(ep):
            if sig not in order:
                order.append(sig)
    out = []
    for sig in order:
        tool, _, rest = sig.removesuffix(ERROR_MARK).partition("(")
        keys = tuple(k for k in rest.rstrip(")").split(",") if k)
        out.append(
            SignatureStats(
                sig, tool, keys, _contains(ev.successes, sig), _contains(ev.failures, sig),
                _errors(ev.successes, sig), _errors(ev.failures, sig),
            )
        )  # fmt: skip
    return out


def label(st: SignatureStats, n_succ: int, n_fail: int) -> tuple[str, Fraction]:
    """(polarity, p_s - p_f) of one signature by §3's rule; no contrast (n_succ or n_fail is 0) -> neutral."""
    if n_succ == 0 or n_fail == 0:
        return "neutral", Fraction(0)
    diff = Fraction(st.n_succ, n_succ) - Fraction(st.n_fail, n_fail)
    if diff >= HELPFUL_MARGIN:
        return ("neutral" if st.signature.endswith(ERROR_MARK) else "helpful"), diff
    if -diff >= HELPFUL_MARGIN or (st.err_fail > 0 and st.err_succ == 0):
        return "harmful", diff
    return "neutral", diff


def _why(st: SignatureStats, polarity: str, ns: int, nf: int) -> str:
    base = f"made by {st.n_succ}/{ns} successes and {st.n_fail}/{nf} failures"
    if polarity == "harmful" and st.err_fail and not st.err_succ:
        return f"{base}; it returned an error {st.err_fail} time(s), only in failures"
    if polarity == "helpful":
        return f"{base}; successes rely on it"
    if polarity == "harmful":
        return f"{base}; failures make it more often"
    if st.signature.endswith(ERROR_MARK):
        return f"{base}; a failed call changes nothing, so it earns no credit"
    return f"{base}; it does not separate successes from failures"


@dataclass(frozen=True)
class Divergence:
    """Where one failure first departs from its nearest success (indices into their call sequences)."""

    failure: int
    success: int
    fail_pos: int
    succ_pos: int
    kind: str  # "calls" | "arguments"
    signature: str  # the step the reference points at
    description: str


def _divergence(k: int, fail: Episode, succs: list[Episode]) -> Divergence | None:
    f_sigs = episode_signatures(fail)
    s_sig_lists = [[_sig(c) for c in success_calls(s)] for s in succs]
    j = nearest_success(f_sigs, s_sig_lists)
    s_sigs = s_sig_lists[j]
    mm = first_mismatch(f_sigs, s_sigs)
    if mm is not None:
        i, jj = mm
        theirs = f_sigs[i] if i < len(f_sigs) else "nothing more (it stops calling tools)"
        if jj < len(s_sigs):
            desc = f"at action {jj + 1} the successes call {s_sigs[jj]}, where a failure calls {theirs}"
            return Divergence(k, j, i, jj, "calls", s_sigs[jj], desc)
        desc = f"after the successes' last action, a failure goes on to call {f_sigs[i]}"
        return Divergence(k, j, i, jj, "calls", f_sigs[i], desc)
    f_calls, s_calls = episode_calls(fail), success_calls(succs[j])
    for pos, (fc, sc) in enumerate(zip(f_calls, s_calls)):
        if fc.arguments != sc.arguments or fc.error != sc.error:
            desc = f"a failure makes the same calls, but action {pos + 1} ({f_sigs[pos]}) gets other values"
            return Divergence(k, j, pos, pos, "arguments", f_sigs[pos], desc)
    return None


def _final_write(ep: Episode) -> str | None:
    writes = [_sig(c) for c in episode_calls(ep) if c.is_write and not c.error]
    return writes[-1] if writes else None


def _end_state(ev: GroupEvidence) -> tuple[list[str], list[str]]:
    """(end_state_requirements, failure modes about missing state changes)."""
    succ_writes = [{_sig(c) for c in episode_calls(e) if c.is_write and not c.error} for e in ev.successes]
    shared = set.intersection(*succ_writes) if succ_writes else set()
    reqs = [f"{w} completes without error (all {len(ev.successes)} successes do)" for w in sorted(shared)]
    modes = []
    finals = {_final_write(e) for e in ev.successes}
    if len(finals) == 1 and None not in finals:
        (final,) = finals
        lacking = sum(
            1 for f in ev.failures if final not in {_sig(c) for c in episode_calls(f) if not c.error}
        )
        if lacking:
            modes.append(
                f"{lacking}/{len(ev.failures)} failures never complete the state-changing call {final} "
                "that every success ends with"
            )
    if shared:
        answer_only = sum(1 for f in ev.failures if not any(c.is_write for c in episode_calls(f)))
        if answer_only:
            modes.append(
                f"{answer_only}/{len(ev.failures)} failures end with a reply and no state-changing call"
            )
    elif ev.successes and not any(succ_writes):
        reqs.append("no state-changing call (no success makes one)")
    return reqs, modes


def _answer_facts(answer: str) -> set[str]:
    """Id-like tokens and numbers a final answer states (compared, never written into the reference)."""
    return {m.group(0).lower() for rx in (ID_RE, NUMBER_RE) for m in rx.finditer(answer)}


def _answer_gap(ev: GroupEvidence) -> tuple[list[str], list[str]]:
    """(requirements, failure modes) about details every success's final answer states and failures leave out."""
    if not ev.successes or not ev.failures:
        return [], []
    common = set.intersection(*(_answer_facts(e.final_answer) for e in ev.successes))
    if not common:
        return [], []
    lacking = sum(1 for f in ev.failures if not common <= _answer_facts(f.final_answer))
    req = [
        f"the final answer states the {len(common)} detail(s) (ids, numbers) every success's answer states"
    ]
    if not lacking:
        return req, []
    return req, [
        f"{lacking}/{len(ev.failures)} failures' final answers leave out details every success states"
    ]


def offline_reference(ev: GroupEvidence, max_steps: int = 16) -> CreditReference:
    """The §3 offline reference of one group (deterministic; never raises on a well-formed group)."""
    ns, nf = len(ev.successes), len(ev.failures)
    stats = signature_stats(ev)
    succs = sorted(ev.successes, key=lambda e: len(e.steps))
    divs = [d for k, f in enumerate(ev.failures) if succs and (d := _divergence(k, f, succs)) is not None]
    first = min(divs, key=lambda d: (d.succ_pos, d.kind != "calls", d.failure), default=None)
    rows = []
    for st in stats:
        polarity, diff = label(st, ns, nf)
        rows.append((st, polarity, abs(diff)))
    if len(rows) > max_steps:  # keep the most confident, always the divergence step, in their order
        keep = sorted(rows, key=lambda r: -r[2])[:max_steps]
        keep_sigs = {r[0].signature for r in keep} | ({first.signature} if first else set())
        rows = [r for r in rows if r[0].signature in keep_sigs]
    steps, ids = [], {}
    for n, (st, polarity, conf) in enumerate(rows, start=1):
        ids[st.signature] = f"S{n}"
        pattern = ", ".join(st.keys) if st.keys else "(no arguments)"
        if st.signature.endswith(ERROR_MARK):
            pattern += "; the call returned an error"
        steps.append(
            StepCredit(
                step_id=f"S{n}", tool=st.tool, arg_pattern=pattern, polarity=polarity,
                why=_why(st, polarity, ns, nf),
                evidence=StepEvidence(succ=f"{st.n_succ}/{ns}", fail=f"{st.n_fail}/{nf}"),
                confidence=round(float(conf), 4),
            )
        )  # fmt: skip
    reqs, modes = _end_state(ev)
    answer_reqs, answer_modes = _answer_gap(ev)
    reqs, modes = reqs + answer_reqs, modes + answer_modes
    for st, polarity, _ in rows:
        if polarity == "harmful":
            modes.append(f"{st.signature}: made by {st.n_fail}/{nf} failures and {st.n_succ}/{ns} successes")
        elif st.err_fail:
            modes.append(f"{st.signature}: returned an error {st.err_fail} time(s) in failures")
    same = [k for k, f in enumerate(ev.failures) if succs and all(d.failure != k for d in divs)]
    if same:
        modes.append(f"{len(same)} failure(s) make the same calls with the same values as a success; "
                     "they differ only in the final answer")  # fmt: skip
    divergence = (
        FirstDivergence(step_id=ids[first.signature], description=first.description) if first else None
    )
    return CreditReference(
        task_summary=truncate(ev.instruction, 200) or f"task {ev.task_id}",
        steps=steps,
        first_divergence=divergence,
        failure_modes=modes,
        end_state_requirements=reqs,
    )
