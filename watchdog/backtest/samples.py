"""The samples a live daemon would have seen from a recording, read exactly as the live
prometheus source reads the same answers (see ``recordings`` for the rules)."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

from watchdog.backtest.recordings import Points, Recording
from watchdog.model import Sample, SampleKind
from watchdog.sources.prometheus import NO_SERIES, divide, with_requests

_VALUE = SampleKind.VALUE
_GAP_REASON = "no sample in the recording"


def value_sample(at: float, value: float) -> Sample:
    """A recorded value as the live prometheus source reads it."""
    if value == value and not math.isinf(value):
        return Sample(at, _VALUE, value)
    if math.isnan(value):
        return Sample.no_data(at, "NaN")
    sign = "+Inf" if value > 0 else "-Inf"
    return Sample.error(at, f"value is {sign}, not a usable number (a division by zero?)")


def infer_step(points: Points) -> float | None:
    """The most common distance between points (the recording's step)."""
    if len(points) < 2:
        return None
    # The first stretch tells the step; counting every gap of a month costs ~0.2 s.
    span = range(1, min(len(points), 5000))
    gaps = Counter(round(points[i][0] - points[i - 1][0], 3) for i in span)
    return gaps.most_common(1)[0][0]


def samples_of(
    recording: Recording, start: float | None = None, end: float | None = None
) -> list[Sample]:
    """The samples a live daemon would have seen: one per step, a hole being no data.
    ``start``/``end`` extend the no-data fill to the whole replay."""
    if recording.divided:
        return _divided_samples(recording, start, end)
    points = recording.points
    step = recording.step or infer_step(points)
    requests = None
    no_traffic = "no sample in the requests recording"
    if recording.requests is not None:
        requests = dict(recording.requests)
    elif recording.needs_requests:
        requests = {}  # every step without traffic, as live without a requests answer
        no_traffic = f"no requests recording ({recording.signal}.requests.json)"
    out: list[Sample] = []
    if not points:
        return [Sample.no_data(at, NO_SERIES) for at in _grid([], step, start, end)]
    first = points[0][0]
    if step is not None and start is not None and start < first - step / 2:
        lead = math.floor((first - start) / step + 1e-9)
        out.extend(Sample.no_data(first - k * step, _GAP_REASON) for k in range(lead, 0, -1))
    previous: float | None = None
    limit = 1.5 * step if step is not None else math.inf
    for at, value in points:
        if previous is not None and at - previous > limit:
            assert step is not None
            missing = round((at - previous) / step) - 1
            out.extend(
                Sample.no_data(previous + k * step, _GAP_REASON) for k in range(1, missing + 1)
            )
        previous = at
        if requests is None:
            if value == value and -math.inf < value < math.inf:
                out.append(Sample(at, _VALUE, value))  # what value_sample gives, inline
            else:
                out.append(value_sample(at, value))
            continue
        traffic = requests.get(at)
        if traffic is None:
            joined = with_requests(value_sample(at, value), Sample.no_data(at, no_traffic))
        else:
            joined = with_requests(value_sample(at, value), value_sample(at, traffic))
        out.append(joined)
    if step is not None and end is not None and previous is not None and end > previous + step / 2:
        tail = math.floor((end - previous) / step + 1e-9)
        out.extend(Sample.no_data(previous + k * step, _GAP_REASON) for k in range(1, tail + 1))
    return out


def _grid(
    times: Sequence[float], step: float | None, start: float | None, end: float | None
) -> list[float]:
    """The sampling moments: the recorded times with holes filled at ``step``, and
    the fill extended to ``start``/``end`` (as ``samples_of`` does for values)."""
    if not times:
        if step is None or start is None or end is None:
            return []
        count = math.floor((end - start) / step + 1e-9) + 1
        return [start + k * step for k in range(count)]
    out: list[float] = []
    first = times[0]
    if step is not None and start is not None and start < first - step / 2:
        lead = math.floor((first - start) / step + 1e-9)
        out.extend(first - k * step for k in range(lead, 0, -1))
    previous: float | None = None
    for at in times:
        if step is not None and previous is not None and at - previous > 1.5 * step:
            missing = round((at - previous) / step) - 1
            out.extend(previous + k * step for k in range(1, missing + 1))
        out.append(at)
        previous = at
    if step is not None and end is not None and previous is not None and end > previous + step / 2:
        tail = math.floor((end - previous) / step + 1e-9)
        out.extend(previous + k * step for k in range(1, tail + 1))
    return out


def _divided_samples(recording: Recording, start: float | None, end: float | None) -> list[Sample]:
    """Errors over requests, step by step, through the live source's ``divide``: no
    error point with traffic is 0 errors, no traffic point is no traffic."""
    errors = dict(recording.errors) if recording.errors is not None else None
    requests = dict(recording.requests) if recording.requests is not None else None
    times = sorted(set(errors or ()) | set(requests or ()))
    step = recording.step or infer_step([(t, 0.0) for t in times])
    out = []
    for at in _grid(times, step, start, end):
        if errors is None:
            reason = f"no errors recording ({recording.signal}.errors.json)"
            out.append(Sample.no_data(at, reason))
        elif requests is None:
            reason = f"no requests recording ({recording.signal}.requests.json)"
            out.append(Sample.no_data(at, reason))
        else:
            failed, traffic = errors.get(at), requests.get(at)
            out.append(
                divide(
                    None if failed is None else value_sample(at, failed),
                    None if traffic is None else value_sample(at, traffic),
                    at,
                )
            )
    return out
