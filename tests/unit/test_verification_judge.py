"""One verification check's verdict from a window of samples (incidents/verification
``judge`` and ``goal``): what counts, when it is told, and what it may not claim."""

from __future__ import annotations

from watchdog.core.window import SignalWindow
from watchdog.incidents.verification import goal, judge
from watchdog.model import Sample
from watchdog.rules.response import VerifyCheck

T = 1_790_000_000.0  # an epoch time: 1e-9 is below its float resolution
BELOW = VerifyCheck.model_validate({"signal": "error_rate", "below": "0.5%", "within": "2m"})
BASELINE = VerifyCheck.model_validate({"signal": "p95", "baseline": True, "within": "5m"})


def window(*points: tuple[float, float]) -> SignalWindow:
    w = SignalWindow()
    for at, value in points:
        w.add(Sample.of(T + at, value, 1000.0))
    return w


def test_the_sample_at_the_deadline_counts() -> None:
    """Defect a: the tick at the deadline judged without the sample taken then."""
    w = window((30, 0.01), (60, 0.01), (120, 0.001))
    verdict = judge(BELOW, w, 0.005, "below 0.5%", "ratio", T, T + 120, T + 120)
    assert verdict is not None
    assert verdict.startswith("passed")


def test_a_sample_at_the_rollbacks_instant_was_taken_before_it() -> None:
    w = window((0, 0.001), (30, 0.01))
    assert judge(BELOW, w, 0.005, "below 0.5%", "ratio", T, T + 30, T + 30) is None


def test_no_sample_in_time_waits_for_the_first_after_it() -> None:
    """Defect d: a process that did not look in time judges on its first sample."""
    w = window((400, 0.001))
    assert judge(BELOW, SignalWindow(), 0.005, "x", "ratio", T, T + 300, T + 300) is None
    verdict = judge(BELOW, w, 0.005, "below 0.5%", "ratio", T, T + 400, T + 300)
    assert verdict is not None
    assert verdict.startswith("passed")
    assert "late" in verdict


def test_no_sample_at_all_is_no_evidence_not_a_failure() -> None:
    verdict = judge(BELOW, SignalWindow(), 0.005, "below 0.5%", "ratio", T, T + 420, T + 300)
    assert verdict is not None
    assert verdict.startswith("no evidence")


def test_a_manual_baseline_check_aims_at_the_rule_threshold_and_says_so() -> None:
    """Defect c: the CLI process has no samples from before the episode."""
    target, text = goal(BASELINE, {}, 5.0, "seconds", manual=True)
    assert target == 5.0
    assert "rule's threshold" in text
    assert "manual rollback" in text


def test_without_baseline_or_threshold_the_check_cannot_pass() -> None:
    target, text = goal(BASELINE, {}, None, "seconds", manual=True)
    assert target is None
    w = window((30, 0.1))
    verdict = judge(BASELINE, w, target, text, "seconds", T, T + 30, T + 30)
    assert verdict is not None
    assert verdict.startswith("no evidence")
