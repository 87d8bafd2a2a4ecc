"""The ``scrape`` source: read an app's own ``/metrics`` page, no Prometheus server.

Each ``sample`` call fetches the page once (streamed, cut off at ``max_bytes`` after
decoding: ``watchdog.http.bounded_read``),
parses only the families the signals name (``watchdog.sources.expfmt``, in a worker thread
so a large page never blocks the event loop) and turns counters into rates between
this scrape and the previous one, the way PromQL's ``increase`` would:

- ``error_ratio``: Δerrors / Δrequests of one counter, errors being the series whose
  ``status_label`` fully matches ``error_status``; ``requests`` = Δrequests and
  ``errors`` = Δerrors (the counts a confidence rule weighs).
- ``quantile``: bucket increases summed by ``le`` across the matching series, then
  ``histogram_quantile``; ``requests`` = Δ``_count``.
- ``slow_ratio``: the same bucket increases; ``errors`` = observations above the
  ``slower_than`` bucket, ``requests`` = all (latency regression rules).
- ``gauge``: the value as exposed (exactly one matching series).
- ``rate``: Δcounter / Δt.

Per series, a counter that went down was reset (a restart): its new value is the
increase, as in PromQL. A series absent from the previous scrape counts from zero,
because error series usually appear with the first error (a 503 series that appears
with value 3 means three new errors, which PromQL would miss). The first scrape of a
signal only records values. Failures are ``error`` samples whose reason names the
source, never its URL (a URL may carry credentials).
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import httpx

from watchdog.errors import ParseError, SourceError
from watchdog.http import bounded_read
from watchdog.model import Sample
from watchdog.rules.load import ResolvedSignal
from watchdog.rules.model import ScrapeSourceSpec, SignalSpec
from watchdog.sources._transport import request_failure
from watchdog.sources.base import SourceDeps, error_for_all
from watchdog.sources.expfmt import ExpSample, parse_families
from watchdog.sources.histogram import (
    SMALL_DELTA_TOLERANCE,
    almost_equal,
    bucket_quantile_detail,
    slower_than,
)
from watchdog.units import format_duration

# Ask for the classic text format (no OpenMetrics exemplars, timestamps in ms).
_ACCEPT = {"accept": "text/plain;version=0.0.4;q=1,*/*;q=0.1"}
_SHOWN_SERIES = 3

LabelKey = tuple[tuple[str, str], ...]
SeriesKey = tuple[str, LabelKey]  # (sample name, sorted labels)

FIRST_SCRAPE = "first scrape; a rate needs two"
NO_REQUESTS = "no requests between scrapes"
_HISTOGRAM_KINDS = ("quantile", "slow_ratio")


@dataclass(frozen=True)
class _Previous:
    """What one signal saw at its last successful scrape."""

    at: float
    spec: SignalSpec
    values: Mapping[SeriesKey, float]


class ScrapeSource:
    """Scrapes ``spec.url`` once per ``sample`` call, whatever the number of signals."""

    def __init__(self, name: str, spec: ScrapeSourceSpec, deps: SourceDeps) -> None:
        self.name = name
        self.spec = spec
        self._deps = deps
        self._previous: dict[str, _Previous] = {}

    async def aclose(self) -> None:
        """Nothing to release: the HTTP client is shared."""

    async def sample(self, signals: Sequence[ResolvedSignal], now: float) -> dict[str, Sample]:
        if not signals:
            return {}
        try:
            body = await self._fetch()
            families = {family_of(signal.spec) for signal in signals}
            parsed = await asyncio.to_thread(_parse, body, families)
        except SourceError as exc:
            return error_for_all(signals, now, f"scrape source {self.name}: {exc}")
        return {signal.name: self._evaluate(signal, parsed, now) for signal in signals}

    async def _fetch(self) -> bytes:
        """The page's bytes; ``SourceError`` saying why not."""
        spec = self.spec
        try:
            # httpx's timeout bounds each read; this bounds a page that trickles in.
            async with asyncio.timeout(spec.timeout), self._deps.slots:
                return await self._read(spec)
        except (TimeoutError, httpx.TimeoutException):
            raise SourceError(f"timed out after {format_duration(spec.timeout)}") from None
        except httpx.HTTPError as exc:
            raise SourceError(request_failure(exc, spec.url)) from None

    async def _read(self, spec: ScrapeSourceSpec) -> bytes:
        request = self._deps.http.stream(
            "GET",
            spec.url,
            headers={**_ACCEPT, "accept-encoding": bounded_read.ACCEPT_ENCODING},
            timeout=spec.timeout,
        )
        async with request as response:
            if response.status_code != 200:
                reason = response.reason_phrase
                raise SourceError(f"HTTP {response.status_code}" + (f" {reason}" if reason else ""))
            try:
                return await bounded_read.read_body(response, spec.max_bytes)
            except bounded_read.BodyError as exc:
                raise SourceError(str(exc)) from None

    # --- per signal ----------------------------------------------------------------

    def _evaluate(
        self, signal: ResolvedSignal, parsed: Mapping[str, list[ExpSample]], now: float
    ) -> Sample:
        spec = signal.spec
        if spec.kind is None or spec.metric is None:
            return Sample.error(now, f"signal {signal.name}: a scrape signal needs kind and metric")
        samples = parsed.get(family_of(spec), [])
        if spec.kind == "gauge":
            return _gauge(spec, samples, now)
        if spec.kind in _HISTOGRAM_KINDS:
            current = _histogram_series(spec, samples)
        else:
            current = _counter_series(spec, samples)
        if isinstance(current, Sample):
            return dataclasses.replace(current, at=now)

        previous = self._previous.get(signal.name)
        self._previous[signal.name] = _Previous(now, spec, current)
        if previous is None or previous.spec != spec:
            return Sample.no_data(now, FIRST_SCRAPE)
        increase = _increase(previous.values, current)
        if spec.kind == "error_ratio":
            return _error_ratio(spec, increase, now)
        if spec.kind == "quantile":
            return _quantile(spec, increase, now)
        if spec.kind == "slow_ratio":
            return _slow_ratio(spec, increase, now)
        elapsed = now - previous.at
        if elapsed <= 0:
            return Sample.no_data(now, "no time passed between scrapes")
        return Sample.of(now, sum(increase.values()) / elapsed)


def family_of(spec: SignalSpec) -> str:
    """The family name to ask the parser for."""
    metric = spec.metric or ""
    if spec.kind in _HISTOGRAM_KINDS:
        return metric.removesuffix("_bucket")
    return metric


def _parse(body: bytes, families: set[str]) -> dict[str, list[ExpSample]]:
    """Runs in a worker thread: decode and parse only the wanted families."""
    try:
        text = body.decode("utf-8-sig")  # a BOM would hide the first line
    except UnicodeDecodeError as exc:
        raise ParseError(f"body is not UTF-8 (byte {exc.start})") from None
    return parse_families(text, families)


# --- reading the series a signal needs -------------------------------------------------
#
# These return the current values by series, or a (timeless) Sample that says why
# there are none; the caller stamps it with ``now``.


def _counter_names(metric: str) -> tuple[str, str]:
    if metric.endswith("_total"):
        return (metric, metric.removesuffix("_total"))
    return (metric, metric + "_total")


def _counter_series(spec: SignalSpec, samples: list[ExpSample]) -> dict[SeriesKey, float] | Sample:
    metric = spec.metric or ""
    names = _counter_names(metric)
    exposed = [s for s in samples if s.name in names]
    if not exposed:
        return _no_data(f"metric {metric} not exposed")
    matching = [s for s in exposed if _matches(s.labels, spec.labels)]
    if not matching:
        return _no_data(f"no series of {metric} matches {_show(spec.labels)}")
    if spec.kind == "error_ratio" and not any(spec.status_label in s.labels for s in matching):
        return _error(
            f"no series of {metric} has the label {spec.status_label!r} (set status_label)"
        )
    return _values(matching)


def _histogram_series(
    spec: SignalSpec, samples: list[ExpSample]
) -> dict[SeriesKey, float] | Sample:
    base = family_of(spec)
    bucket_name = base + "_bucket"
    filters = {k: v for k, v in spec.labels.items() if k != "le"}
    exposed = [s for s in samples if s.name == bucket_name]
    if not exposed:
        return _no_data(f"metric {base} not exposed")
    buckets = [s for s in exposed if _matches(s.labels, filters)]
    if not buckets:
        return _no_data(f"no series of {base} matches {_show(filters)}")
    groups: dict[LabelKey, bool] = {}  # series (labels without le) -> has a +Inf bucket
    for sample in buckets:
        le = sample.labels.get("le")
        if le is None:
            return _error(f"{bucket_name}{_show(sample.labels)} has no 'le' label")
        bound = _le(le)
        if bound is None:
            return _error(f"{bucket_name}{_show(sample.labels)}: le={le!r} is not a number")
        group = _key(sample.labels, ignore=("le",))
        groups[group] = groups.get(group, False) or bound == math.inf
    missing = [group for group, has_inf in groups.items() if not has_inf]
    if missing:
        return _error(f'histogram {base} has no le="+Inf" bucket for {_show(dict(missing[0]))}')
    decrease = _decrease(buckets)
    if decrease is not None:
        return _error(f"histogram {base}: buckets decrease ({decrease}); a suspect sample")
    counts = [s for s in samples if s.name == base + "_count" and _matches(s.labels, filters)]
    return _values([*buckets, *counts])


def _decrease(buckets: Iterable[ExpSample]) -> str | None:
    """Where a series' cumulative counts go down as ``le`` grows, or None. No
    histogram can count that; PromQL quietly raises the lower count, which can turn
    a broken exporter into a slow p95, so the page is not taken as evidence."""
    by_series: dict[LabelKey, list[tuple[float, float, ExpSample]]] = {}
    for sample in buckets:
        bound = _le(sample.labels["le"])
        assert bound is not None  # checked by the caller
        key = _key(sample.labels, ignore=("le",))
        by_series.setdefault(key, []).append((bound, sample.value, sample))
    for series in by_series.values():
        series.sort(key=lambda item: item[0])
        for (_, before, low), (_, after, high) in itertools.pairwise(series):
            if after < before and not almost_equal(before, after, SMALL_DELTA_TOLERANCE):
                return (
                    f"le={high.labels['le']!r} counts {after:g}, "
                    f"below le={low.labels['le']!r}'s {before:g}"
                )
    return None


def _values(samples: Iterable[ExpSample]) -> dict[SeriesKey, float] | Sample:
    values: dict[SeriesKey, float] = {}
    for sample in samples:
        if not math.isfinite(sample.value):
            return _error(f"{sample.name}{_show(sample.labels)} is {sample.value}, not a count")
        values[(sample.name, _key(sample.labels))] = sample.value
    return values


def _increase(
    previous: Mapping[SeriesKey, float], current: Mapping[SeriesKey, float]
) -> dict[SeriesKey, float]:
    """Per series: the rise since the previous scrape; after a reset (the value went
    down) or for a new series, the whole current value."""
    increase: dict[SeriesKey, float] = {}
    for key, value in current.items():
        before = previous.get(key)
        increase[key] = value if before is None or value < before else value - before
    return increase


# --- the kinds -------------------------------------------------------------------------


def _error_ratio(spec: SignalSpec, increase: Mapping[SeriesKey, float], now: float) -> Sample:
    status = re.compile(spec.error_status)
    total = errors = 0.0
    for (_, labels), delta in increase.items():
        total += delta
        code = dict(labels).get(spec.status_label)
        if code is not None and status.fullmatch(code):
            errors += delta
    if total == 0:
        return Sample.no_data(now, NO_REQUESTS)
    return Sample.of(now, errors / total, requests=total, errors=errors)


def _buckets(
    spec: SignalSpec, increase: Mapping[SeriesKey, float]
) -> tuple[dict[float, float], float | None]:
    """Bucket increases summed by ``le``, and Δ``_count`` (None when not exposed)."""
    base = family_of(spec)
    bucket_name, count_name = base + "_bucket", base + "_count"
    by_le: dict[float, float] = {}
    requests: float | None = None
    for (name, labels), delta in increase.items():
        if name == bucket_name:
            bound = _le(dict(labels)["le"])
            assert bound is not None  # checked in _histogram_series
            by_le[bound] = by_le.get(bound, 0.0) + delta
        elif name == count_name:
            requests = (requests or 0.0) + delta
    return by_le, requests


def _quantile(spec: SignalSpec, increase: Mapping[SeriesKey, float], now: float) -> Sample:
    base = family_of(spec)
    by_le, requests = _buckets(spec, increase)
    observed = by_le.get(math.inf, 0.0)
    if observed == 0:
        return Sample.no_data(now, NO_REQUESTS)
    value, forced, _ = bucket_quantile_detail(spec.quantile, list(by_le.items()))
    if forced:  # each page was monotonic, their increases are not (a partial reset)
        return Sample.error(
            now, f"histogram {base}: bucket increases decrease with le; a suspect sample"
        )
    if math.isnan(value):
        return Sample.error(now, f"histogram {base} has no finite bucket besides +Inf")
    return Sample.of(now, value, requests=requests if requests is not None else observed)


def _slow_ratio(spec: SignalSpec, increase: Mapping[SeriesKey, float], now: float) -> Sample:
    assert spec.slower_than is not None  # the rules loader requires it for slow_ratio
    found = slower_than(spec.slower_than, _buckets(spec, increase)[0])
    if isinstance(found, str):
        return Sample.error(now, f"histogram {family_of(spec)}: {found}")
    slow, total = found
    if total == 0:
        return Sample.no_data(now, NO_REQUESTS)
    return Sample.of(now, min(slow / total, 1.0), requests=total, errors=slow)


def _gauge(spec: SignalSpec, samples: list[ExpSample], now: float) -> Sample:
    metric = spec.metric or ""
    exposed = [s for s in samples if s.name == metric]
    if not exposed:
        return Sample.no_data(now, f"metric {metric} not exposed")
    matching = [s for s in exposed if _matches(s.labels, spec.labels)]
    if not matching:
        return Sample.no_data(now, f"no series of {metric} matches {_show(spec.labels)}")
    if len(matching) > 1:
        shown = ", ".join(_show(s.labels) for s in matching[:_SHOWN_SERIES])
        more = f" and {len(matching) - _SHOWN_SERIES} more" if len(matching) > _SHOWN_SERIES else ""
        return Sample.error(
            now, f"{len(matching)} series of {metric} match; narrow 'labels' to one: {shown}{more}"
        )
    return Sample.of(now, matching[0].value)


# --- small helpers ---------------------------------------------------------------------


def _matches(labels: Mapping[str, str], wanted: Mapping[str, str]) -> bool:
    # As in PromQL, label="" also matches a series without that label.
    return all(labels.get(name, "") == value for name, value in wanted.items())


def _key(labels: Mapping[str, str], ignore: tuple[str, ...] = ()) -> LabelKey:
    return tuple(sorted((k, v) for k, v in labels.items() if k not in ignore))


def _le(text: str) -> float | None:
    try:
        bound = float(text)
    except ValueError:
        return None
    return None if math.isnan(bound) else bound


def _show(labels: Mapping[str, str]) -> str:
    return "{" + ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"


def _no_data(reason: str) -> Sample:
    return Sample.no_data(0.0, reason)


def _error(reason: str) -> Sample:
    return Sample.error(0.0, reason)
