"""The offline summarizer (§3) on hand-built groups with labels derived by hand in the comments."""

from __future__ import annotations

import random

from cref_groups import call, cancel_group, episode
from hypothesis import given, settings
from hypothesis import strategies as st

from sgcd.credit_reference import make_summarizer, offline_reference, select_evidence
from sgcd.credit_reference.offline import label, signature_stats


def _by_sig(ref, ev):
    """{signature: step} using the offline reference's order, which follows signature_stats(ev)."""
    return {s.signature: step for s, step in zip(signature_stats(ev), ref.steps)}


def _toy_group():
    # succ1, succ2: lookup(x) verify(x) commit(x)[write]
    # fail1:        lookup(x) guess(y)               -> departs at action 2 (verify vs guess)
    # fail2:        lookup(x) verify(x) guess(y)     -> departs at action 3 (commit vs guess)
    lookup, verify = call("lookup", x="a1"), call("verify", x="a1")
    commit, guess = call("commit", write=True, x="a1"), call("guess", y="b2")
    return [
        episode("s1", True, [lookup, verify, commit], "done"),
        episode("s2", True, [lookup, verify, commit], "done"),
        episode("f1", False, [lookup, guess], "gave up"),
        episode("f2", False, [lookup, verify, guess], "gave up"),
    ]


def test_toy_group_labels_and_divergence():
    ev = select_evidence(_toy_group())
    ref = offline_reference(ev)
    got = {s.tool: (s.polarity, s.evidence.succ, s.evidence.fail, s.confidence) for s in ref.steps}
    assert got == {
        "lookup": ("neutral", "2/2", "2/2", 0.0),  # p_s - p_f = 1 - 1 = 0
        "verify": ("helpful", "2/2", "1/2", 0.5),  # 1 - 1/2 = 1/2 >= 1/2: helpful (boundary included)
        "commit": ("helpful", "2/2", "0/2", 1.0),  # only successes take it
        "guess": ("harmful", "0/2", "2/2", 1.0),  # only failures make it
    }
    assert [s.step_id for s in ref.steps] == ["S1", "S2", "S3", "S4"]  # order of first appearance
    # fail1 departs at action 2 (success: verify), fail2 at action 3 (commit): the earliest is verify = S2
    assert ref.first_divergence.step_id == "S2"
    assert "at action 2" in ref.first_divergence.description
    assert ref.end_state_requirements == ["commit(x) completes without error (all 2 successes do)"]
    assert any(
        "2/2 failures never complete the state-changing call commit(x)" in m for m in ref.failure_modes
    )


def test_cancel_group_labels():
    g = cancel_group()
    ev = select_evidence(g)
    ref = offline_reference(ev)
    by_sig = {sig: (s.step_id, s.polarity, s.evidence.succ, s.evidence.fail, s.confidence)
              for sig, s in _by_sig(ref, ev).items()}  # fmt: skip
    # Order: shorter success B first (grd, cancel), then A's gud, then failures' new signatures (D, E).
    assert by_sig == {
        "get_reservation_details(reservation_id)": ("S1", "helpful", "2/2", "1/3", 0.6667),  # 1 - 1/3 = 2/3
        "cancel_reservation(reason,reservation_id)": ("S2", "helpful", "2/2", "0/3", 1.0),
        "get_user_details(user_id)": ("S3", "neutral", "1/2", "2/3", 0.1667),  # |1/2 - 2/3| = 1/6
        # erroring calls have their own signature: 0/2 vs 1/3, errors only in failures -> harmful, conf 1/3
        "update_reservation_flights(flights,reservation_id)!error": ("S4", "harmful", "0/2", "1/3", 0.3333),
        "get_reservation_details(reservation_id)!error": ("S5", "harmful", "0/2", "1/3", 0.3333),
    }
    # E = [grd!error] vs nearest success B = [grd, cancel] (both ratios 0; the first, shorter one wins):
    # they differ at action 1, earlier than C (action 3) and D (action 2) -> the divergence is S1.
    assert ref.first_divergence.step_id == "S1"
    # every failure lacks a successful cancel_reservation; C and E make no state-changing call at all
    assert ref.failure_modes[:2] == [
        "3/3 failures never complete the state-changing call cancel_reservation(reason,reservation_id) "
        "that every success ends with",
        "2/3 failures end with a reply and no state-changing call",
    ]


def test_exact_half_margin_uses_exact_fractions():
    # 7 of 10 successes and 2 of 10 failures call `check`: 7/10 - 2/10 = 1/2 exactly -> helpful.
    # (In floats 0.7 - 0.2 = 0.49999999999999994, which would wrongly say neutral.)
    eps = [
        episode(f"s{i}", True, [call("check", k=1)] if i < 7 else [call("other")], "ok") for i in range(10)
    ]
    eps += [
        episode(f"f{i}", False, [call("check", k=1)] if i < 2 else [call("other")], "no") for i in range(10)
    ]
    ref = offline_reference(select_evidence(eps))
    check = next(s for s in ref.steps if s.tool == "check")
    assert (check.polarity, check.confidence) == ("helpful", 0.5)


def test_same_calls_different_values_diverge_on_arguments():
    # success and failure both call find(q) then pay(amount); the failure pays another amount
    eps = [
        episode("s", True, [call("find", q="x"), call("pay", write=True, amount=10)], "paid"),
        episode("f", False, [call("find", q="x"), call("pay", write=True, amount=99)], "paid"),
    ]
    ref = offline_reference(select_evidence(eps))
    assert ref.first_divergence.step_id == "S2"  # pay(amount), action 2
    assert "same calls" in ref.first_divergence.description


def test_identical_failure_has_no_divergence():
    eps = [episode("s", True, [call("find", q="x")], "A"), episode("f", False, [call("find", q="x")], "B")]
    ref = offline_reference(select_evidence(eps))
    assert ref.first_divergence is None
    assert any("differ only in the final answer" in m for m in ref.failure_modes)


def test_unmixed_group_is_all_neutral():
    eps = [episode("f1", False, [call("a")], "x"), episode("f2", False, [call("b")], "y")]
    ref = make_summarizer("offline").summarize(eps)
    assert {(s.polarity, s.confidence) for s in ref.steps} == {("neutral", 0.0)}
    assert ref.first_divergence is None


_TOOLS = ["a", "b", "c", "d"]
_call = st.builds(
    lambda n, e, w: call(n, error=e, write=w, k=1), st.sampled_from(_TOOLS), st.booleans(), st.booleans()
)
_episode = st.tuples(st.booleans(), st.lists(_call, max_size=5))


@settings(max_examples=60, deadline=None)
@given(st.lists(_episode, min_size=2, max_size=7), st.randoms(use_true_random=False))
def test_labels_follow_the_rule_and_ignore_sibling_order(specs, rnd: random.Random):
    eps = [episode(str(i), ok, calls, "x") for i, (ok, calls) in enumerate(specs)]
    ev = select_evidence(eps)
    ref = offline_reference(ev)
    assert ref == offline_reference(select_evidence(eps))  # deterministic
    ns, nf = len(ev.successes), len(ev.failures)
    for stt, step in zip(signature_stats(ev), ref.steps):
        if ns and nf:  # the rule, restated from the counts
            d = stt.n_succ / ns - stt.n_fail / nf
            assert abs(step.confidence - abs(d)) < 1e-4
            if step.polarity == "helpful":
                assert d >= 0.5 - 1e-9
            elif step.polarity == "harmful":
                assert -d >= 0.5 - 1e-9 or (stt.err_fail > 0 and stt.err_succ == 0)
    labels = {s.signature: label(s, ns, nf) for s in signature_stats(ev)}
    shuffled = list(eps)
    rnd.shuffle(shuffled)
    ev2 = select_evidence(shuffled)
    assert {s.signature: label(s, ns, nf) for s in signature_stats(ev2)} == labels


def test_a_success_s_failed_call_is_never_helpful_and_is_left_out_of_the_alignment():
    # s1: fetch(k)!error then act(k); s2: act(k); f1: act(k) with another answer; f2: nothing.
    # fetch!error: p_s = 1/2, p_f = 0/2 -> 1/2 would be "helpful", but a failed call earns no credit: neutral.
    # Alignment drops s1's failed call, so f1 = [act] equals s1 = [act]: no call divergence for f1
    # (it differs only in values/answer); f2 = [] departs at action 1 (act) -> first divergence is act.
    eps = [
        episode("s1", True, [call("fetch", error=True, k="x"), call("act", write=True, k="x")], "ok 123"),
        episode("s2", True, [call("act", write=True, k="x")], "ok 123"),
        episode("f1", False, [call("act", write=True, k="x")], "ok"),
        episode("f2", False, [], "cannot"),
    ]
    ref = offline_reference(select_evidence(eps))
    got = {(s.tool, s.arg_pattern): (s.polarity, s.confidence) for s in ref.steps}
    assert got == {
        ("act", "k"): ("helpful", 0.5),  # 2/2 - 1/2
        ("fetch", "k; the call returned an error"): ("neutral", 0.5),
    }
    assert ref.first_divergence.step_id == next(s.step_id for s in ref.steps if s.tool == "act")
    assert "at action 1" in ref.first_divergence.description
    # both successes answer "ok 123"; f1 and f2 leave out the number
    assert "2/2 failures' final answers leave out details every success states" in ref.failure_modes


def test_long_references_keep_the_most_confident_steps_in_order():
    # success: [a]; failure i: [f_i] for i < 20 -> 21 signatures. a: 1/1 - 0/20 = 1 (helpful);
    # each f_i: |0 - 1/20| = 0.05 (neutral). max_steps=16 keeps a and the first 15 f_i, in order.
    eps = [episode("s", True, [call("a")], "ok")]
    eps += [episode(f"f{i}", False, [call(f"f{i}")], "no") for i in range(20)]
    ref = offline_reference(select_evidence(eps), max_steps=16)
    assert [s.tool for s in ref.steps] == ["a"] + [f"f{i}" for i in range(15)]
    assert ref.steps[0].confidence == 1.0 and ref.steps[1].confidence == 0.05
    assert (
        ref.first_divergence.step_id == "S1"
    )  # every failure departs at action 1, where the success calls a
