"""The exact binomial interval behind confidence rules: coverage, monotonicity and the
promise that bounds false rollbacks (properties over many counts, by hypothesis)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from watchdog.core.evidence import Evidence, Verdict, at_least, betainc, interval, verdict

CONFIDENCES = st.sampled_from([0.9, 0.95, 0.99, 0.999])


def pmf(x: int, n: int, p: float) -> float:
    return math.comb(n, x) * p**x * (1.0 - p) ** (n - x)


def test_betainc_known_values_and_symmetry() -> None:
    # I_x(1, 1) = x; I_x(a, 1) = x^a; I_0.5(a, a) = 0.5.
    assert betainc(1.0, 1.0, 0.3) == pytest.approx(0.3)
    assert betainc(3.0, 1.0, 0.4) == pytest.approx(0.4**3)
    assert betainc(7.5, 7.5, 0.5) == pytest.approx(0.5)
    assert betainc(2.0, 5.0, 0.2) == pytest.approx(1.0 - betainc(5.0, 2.0, 0.8))
    with pytest.raises(ValueError, match="a > 0"):
        betainc(0.0, 1.0, 0.5)


def test_known_clopper_pearson_interval() -> None:
    """3 of 10 at 95%: (0.0667, 0.6525), the textbook exact interval."""
    lower, upper = interval(3, 10, 0.95)
    assert lower == pytest.approx(0.066739, abs=1e-5)
    assert upper == pytest.approx(0.652453, abs=1e-5)
    assert interval(0, 10, 0.95)[0] == 0.0
    assert interval(10, 10, 0.95)[1] == 1.0


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 60), p=st.floats(0.001, 0.999), confidence=CONFIDENCES)
def test_interval_covers_at_least_its_confidence(n: int, p: float, confidence: float) -> None:
    """Over every outcome of n requests at true ratio p, the intervals that contain p
    carry at least ``confidence`` of the probability (Clopper-Pearson never undercovers)."""
    covered = sum(pmf(x, n, p) for x in range(n + 1) if _contains(interval(x, n, confidence), p))
    assert covered >= confidence - 1e-9


def _contains(bounds: tuple[float, float], p: float) -> bool:
    return bounds[0] <= p <= bounds[1]


@settings(max_examples=80, deadline=None)
@given(
    n=st.integers(1, 400),
    threshold=st.floats(0.001, 0.5),
    below=st.floats(0.0, 1.0),
    confidence=CONFIDENCES,
)
def test_false_breach_rate_is_at_most_half_alpha(
    n: int, threshold: float, below: float, confidence: float
) -> None:
    """A service whose true ratio is at or below the threshold breaches (one look) with
    probability at most (1 - confidence) / 2: what keeps false rollbacks rare."""
    p = threshold * below
    false_breach = sum(
        pmf(x, n, p)
        for x in range(n + 1)
        if verdict(x, n, threshold, "above", confidence) is Verdict.BREACH
    )
    assert false_breach <= (1.0 - confidence) / 2.0 + 1e-9


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 300), data=st.data(), confidence=CONFIDENCES)
def test_bounds_are_monotone_in_errors_and_nested_in_confidence(
    n: int, data: st.DataObject, confidence: float
) -> None:
    x = data.draw(st.integers(0, n - 1))
    lower, upper = interval(x, n, confidence)
    more_lower, more_upper = interval(x + 1, n, confidence)
    assert 0.0 <= lower <= x / n <= upper <= 1.0
    assert more_lower >= lower
    assert more_upper >= upper
    wide_lower, wide_upper = interval(x, n, (1.0 + confidence) / 2.0)
    assert wide_lower <= lower + 1e-12
    assert wide_upper >= upper - 1e-12


@settings(max_examples=80, deadline=None)
@given(
    n=st.floats(1.0, 100_000.0),
    share=st.floats(0.0, 1.0),
    threshold=st.floats(0.001, 0.9),
    confidence=CONFIDENCES,
)
def test_verdict_agrees_with_the_interval(
    n: float, share: float, threshold: float, confidence: float
) -> None:
    """The verdict, computed from tails at the threshold, is what the bounds say
    (real counts allowed: Prometheus' increase() is not an integer)."""
    x = n * share
    lower, upper = interval(x, n, confidence)
    found = verdict(x, n, threshold, "above", confidence)
    if lower > threshold + 1e-9:
        assert found is Verdict.BREACH
    elif upper < threshold - 1e-9:
        assert found is Verdict.CLEAR
    elif lower < threshold - 1e-9 and upper > threshold + 1e-9:
        assert found is Verdict.INCONCLUSIVE
    mirrored = verdict(x, n, threshold, "below", confidence)
    if upper < threshold - 1e-9:
        assert mirrored is Verdict.BREACH
    elif lower > threshold + 1e-9:
        assert mirrored is Verdict.CLEAR


def test_one_error_in_five_never_conclusive_a_full_outage_soon() -> None:
    """1 error of 5 requests cannot show a ratio above 5% at 99%; 3 errors of 3 can."""
    assert verdict(1, 5, 0.05, "above", 0.99) is Verdict.INCONCLUSIVE
    assert verdict(3, 3, 0.05, "above", 0.99) is Verdict.BREACH
    assert verdict(0, 5, 0.05, "above", 0.99) is Verdict.INCONCLUSIVE
    assert verdict(5, 10_000, 0.05, "above", 0.99) is Verdict.CLEAR
    assert at_least(0, 5, 0.05) == 1.0


def test_evidence_text_names_counts_interval_and_threshold() -> None:
    text = Evidence.of(3, 10, 0.99, 0.05).text()
    assert text.startswith("3 errors / 10 requests, 99% interval ")
    assert text.endswith(" vs 5%")


def test_bad_counts_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 0"):
        interval(-1, 10, 0.99)
