"""The columnar evaluator is held to ``core.evaluator.step``: on arbitrary series (NaN,
gaps, errors, values exactly at the threshold, traffic under ``min_requests``, times
at uneven steps) and every mode, the state changes, and the full ``RuleState`` at
each sample, are the ones folding ``step`` gives."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from watchdog.backtest.columnar import evaluate, unsupported
from watchdog.backtest.columns import from_samples
from watchdog.core.evaluator import INITIAL, RuleState, step
from watchdog.model import Sample, SampleKind
from watchdog.rules.model import RuleSpec

THRESHOLD = 0.05
VALUES = (0.0, 0.01, 0.049, THRESHOLD, 0.0500001, 0.06, 0.2, math.nan)


@st.composite
def rules(draw: st.DrawFn) -> RuleSpec:
    mode = draw(st.sampled_from(["consecutive", "share"]))
    spec: dict[str, Any] = {
        "name": "r",
        "signal": "s",
        draw(st.sampled_from(["above", "below"])): THRESHOLD,
        "for": draw(st.sampled_from([0.0, 15.0, 30.0, 45.0, 60.0, 120.0, 300.0])),
        "mode": mode,
        "keep_firing_for": draw(st.sampled_from([0.0, 15.0, 30.0, 37.5, 90.0])),
        "severity": "critical",
        "min_requests": draw(st.sampled_from([0.0, 0.0, 10.0])),
    }
    if mode == "share":
        spec["share"] = draw(st.sampled_from([0.25, 0.5, 2 / 3, 0.8, 1.0]))
        spec["for"] = max(spec["for"], 15.0)
    return RuleSpec.model_validate(spec)


@st.composite
def series(draw: st.DrawFn) -> list[Sample]:
    length = draw(st.integers(min_value=0, max_value=120))
    at = 1_790_000_000.0
    out: list[Sample] = []
    for _ in range(length):
        at += draw(st.sampled_from([15.0, 15.0, 15.0, 7.5, 30.0, 1.0]))
        roll = draw(st.integers(min_value=0, max_value=9))
        requests = draw(st.sampled_from([None, 0.0, 5.0, 10.0, 50.0]))
        if roll == 0:
            out.append(Sample.no_data(at, "no sample in the recording"))
        elif roll == 1:
            out.append(Sample(at, SampleKind.ERROR, requests=requests, reason="timeout"))
        else:
            # Runs: the same value for a while, so pending runs reach for:.
            value = draw(st.sampled_from(VALUES))
            out.append(Sample.of(at, value, requests))
            for _ in range(draw(st.integers(min_value=0, max_value=8))):
                at += 15.0
                out.append(Sample.of(at, value, requests))
    return out


def folded(rule: RuleSpec, samples: list[Sample], blind_after: float) -> list[RuleState]:
    states = []
    state = INITIAL
    for sample in samples:
        state = step(rule, state, sample, blind_after)
        states.append(state)
    return states


def _same(a: RuleState, b: RuleState) -> bool:
    """Equal field by field, NaN equal to NaN (a blind sample's value)."""
    return all(
        x == y
        or (isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y))
        for x, y in zip(a, b, strict=True)
    )


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rule=rules(), samples=series(), blind_after=st.sampled_from([0.0, 30.0, 60.0, 300.0]))
def test_columnar_equals_step(rule: RuleSpec, samples: list[Sample], blind_after: float) -> None:
    expected = folded(rule, samples, blind_after)
    track = evaluate(rule, from_samples(samples), blind_after)
    changes = [
        i
        for i, state in enumerate(expected)
        if (state.state, state.blind_long)
        != ((expected[i - 1].state, expected[i - 1].blind_long) if i else (INITIAL.state, False))
    ]
    assert track.changes().tolist() == changes
    for i, state in enumerate(expected):
        got = track.state_at(i)
        assert _same(got, state), (i, got, state)


def test_counted_rules_are_not_columnar() -> None:
    """Rules that weigh counts say why the columnar evaluator leaves them to ``step``."""
    rule = RuleSpec.model_validate(
        {
            "name": "r",
            "signal": "s",
            "above": 0.05,
            "confidence": 0.99,
            "window": 600,
            "severity": "critical",
        }
    )
    assert unsupported(rule) == "a confidence rule weighs the counts of a sliding window"
    with pytest.raises(ValueError, match="not columnar"):
        evaluate(rule, from_samples([]), 300.0)
