"""The columnar evaluator is held to ``core.evaluator.step``: on arbitrary series (NaN,
gaps, errors, values exactly at the threshold, traffic under ``min_requests``, times
at uneven steps) and every mode, the state changes, and the full ``RuleState`` at
each sample, are the ones folding ``step`` gives."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from watchdog.backtest.columnar import evaluate, unsupported
from watchdog.backtest.columns import PointArray, columns_of, from_samples, step_of
from watchdog.backtest.recordings import Recording
from watchdog.backtest.samples import infer_step, samples_of
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


@settings(max_examples=300, deadline=None)
@given(
    values=st.lists(st.sampled_from([0.01, 0.2, math.nan, math.inf, -math.inf]), max_size=40),
    holes=st.lists(st.integers(min_value=0, max_value=60), max_size=6),
    lead=st.integers(min_value=0, max_value=5),
    tail=st.integers(min_value=0, max_value=5),
)
def test_plain_columns_are_the_samples_samples_of_builds(
    values: list[float], holes: list[int], lead: int, tail: int
) -> None:
    """A plain recording laid out straight from its arrays (gaps, NaN, ±Inf, the fill
    to the replay's start and end) is what ``samples_of`` builds one by one."""
    t0, step = 1_790_000_000.0, 15.0
    times = [t0 + k * step for k in range(len(values)) if k not in holes]
    points = [(at, values[round((at - t0) / step)]) for at in times]
    array = PointArray(
        np.array([p[0] for p in points], dtype=np.float64),
        np.array([p[1] for p in points], dtype=np.float64),
    )
    start, end = t0 - lead * step, t0 + (len(values) - 1 + tail) * step
    recording = Recording("s", array, step=step if len(points) < 2 else None)
    got = columns_of(recording, start, end)
    expected = samples_of(Recording("s", points, step=recording.step), start, end)
    assert len(got) == len(expected)
    assert all(_same_sample(got.sample(i), s) for i, s in enumerate(expected))


def _same_sample(a: Sample, b: Sample) -> bool:
    return (
        a.at == b.at
        and a.kind is b.kind
        and (a.value == b.value or (math.isnan(a.value) and math.isnan(b.value)))
        and a.requests == b.requests
        and a.reason == b.reason
        and a.errors == b.errors
    )


@settings(max_examples=300, deadline=None)
@given(
    gaps=st.lists(
        st.sampled_from([15.0, 15.0004, 14.9996, 30.0, 0.0015, 0.0025, 60.5, 1e-4]),
        min_size=0,
        max_size=60,
    ),
    repeat=st.integers(min_value=1, max_value=120),
)
def test_step_of_arrays_is_infer_step(gaps: list[float], repeat: int) -> None:
    """The step read from arrays is ``infer_step``'s (rounding, ties, first 4,999 gaps)."""
    times = np.cumsum([1_790_000_000.0, *(gaps * repeat)])
    points = PointArray(times, np.zeros(times.size))
    assert step_of(times) == infer_step(points)
