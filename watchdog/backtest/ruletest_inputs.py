"""A rule test's ``input_series`` as the samples a live daemon would have seen: values,
``_`` and ``stale`` gaps, errors over requests for a divided signal, and per-version
errors and requests for a canary rule's signal (``versions:``, ``backtest/splits.py``)."""

from __future__ import annotations

from dataclasses import dataclass

from watchdog.backtest.ruletest_file import InputSeries, RuleTestError, RuleTestGroup
from watchdog.backtest.samples import value_sample
from watchdog.backtest.series_notation import MISSING, STALE, Point, SeriesNotationError, expand
from watchdog.backtest.splits import versions_sample
from watchdog.model import Sample
from watchdog.rules.fit import counts_errors, counts_versions
from watchdog.rules.load import RuleSet
from watchdog.sources.prometheus import divide, with_requests


def input_streams(
    ruleset: RuleSet, group: RuleTestGroup, label: str, start: float, interval: float
) -> dict[str, list[Sample]]:
    expanded: dict[str, _Input | _VersionsInput] = {}
    for index, item in enumerate(group.input_series):
        where = f"{label}: input_series[{index}] ({item.series})"
        signal = ruleset.signals.get(item.series)
        if signal is None:
            known = ", ".join(sorted(ruleset.signals))
            raise RuleTestError(f"{where}: unknown signal (expected one of: {known})")
        if item.series in expanded:
            raise RuleTestError(f"{where}: the signal is given twice")
        if item.versions is not None or counts_versions(signal):
            expanded[item.series] = _versions_input(item, where, counts_versions(signal))
            continue
        # A counted signal (errors_query + requests_query, a scrape error_ratio or
        # slow_ratio, a cloudflare error_rate) is given as its two counts.
        divided = counts_errors(signal)
        if divided and (item.values is not None or item.errors is None or item.requests is None):
            raise RuleTestError(
                f"{where}: give errors and requests (the watchdog divides this signal's "
                "errors by its requests), not values"
            )
        if not divided and item.errors is not None:
            raise RuleTestError(
                f"{where}: errors applies only to a signal that counts errors and requests "
                "(errors_query + requests_query, a scrape error_ratio or slow_ratio); give values"
            )
        if not divided and item.values is None:
            raise RuleTestError(f"{where}: values is missing")
        try:
            main = expand((item.errors if divided else item.values) or "")
            requests = expand(item.requests) if item.requests is not None else None
        except SeriesNotationError as exc:
            raise RuleTestError(f"{where}: {exc}") from None
        if requests is not None and len(requests) != len(main):
            what = "errors" if divided else "values"
            raise RuleTestError(
                f"{where}: requests has {len(requests)} values but {what} has {len(main)}"
            )
        # A signal with a requests_query has no known traffic without `requests:`,
        # which live is no evidence: the same here.
        expanded[item.series] = _Input(
            main, requests, divided, signal.spec.requests_query is not None
        )
    if not expanded:
        raise RuleTestError(f"{label}: no input_series")
    length = max(len(given.main) for given in expanded.values())
    # Rules evaluate signal by signal in rules order, as the live daemon samples them.
    order = [name for name in ruleset.signals if name in expanded]
    return {
        name: [expanded[name].sample(start + i * interval, i) for i in range(length)]
        for name in order
    }


@dataclass(frozen=True)
class _Input:
    """One input series: ``main`` is the values, or the errors of a divided signal."""

    main: list[Point]
    requests: list[Point] | None
    divided: bool
    needs_requests: bool

    def sample(self, at: float, i: int) -> Sample:
        point = self.main[i] if i < len(self.main) else MISSING
        if self.divided:
            # `_` errors is an answer without series (0 errors when there is traffic).
            assert self.requests is not None
            traffic = self.requests[i] if i < len(self.requests) else MISSING
            return divide(_answer(at, point), _answer(at, traffic), at)
        if point is MISSING:
            return Sample.no_data(at, "no sample (_)")
        if point is STALE:
            return Sample.no_data(at, "stale")
        assert isinstance(point, float)
        sample = value_sample(at, point)
        if self.requests is None:
            if self.needs_requests:
                return with_requests(sample, Sample.no_data(at, "no requests series given"))
            return sample
        traffic = self.requests[i] if i < len(self.requests) else MISSING
        if traffic is MISSING or traffic is STALE:
            requests = Sample.no_data(at, "no sample (_)")
        else:
            assert isinstance(traffic, float)
            requests = value_sample(at, traffic)
        return with_requests(sample, requests)


def _answer(at: float, point: Point) -> Sample | None:
    """A point as a query's answer: `_` and `stale` are an answer without series."""
    if point is MISSING or point is STALE:
        return None
    assert isinstance(point, float)
    return value_sample(at, point)


@dataclass(frozen=True)
class _VersionsInput:
    """A canary's signal: per version, its errors and requests in each window."""

    versions: dict[str, tuple[list[Point], list[Point]]]

    @property
    def main(self) -> list[Point]:
        return max((errors for errors, _ in self.versions.values()), key=len, default=[])

    def sample(self, at: float, i: int) -> Sample:
        counts: dict[str, tuple[float, float]] = {}
        for version, (errors, requests) in self.versions.items():
            e = errors[i] if i < len(errors) else MISSING
            r = requests[i] if i < len(requests) else MISSING
            if isinstance(r, float):  # `_` requests: the version served nothing then
                counts[version] = (e if isinstance(e, float) else 0.0, r)
        return versions_sample(at, counts)


def _versions_input(item: InputSeries, where: str, per_version: bool) -> _VersionsInput:
    if not per_version:
        raise RuleTestError(
            f"{where}: versions applies only to a per-version signal (a cloudflare source "
            "in mode: versions, field versions); give values"
        )
    if item.versions is None or item.values is not None or item.errors is not None:
        raise RuleTestError(
            f"{where}: give versions ({{VERSION: {{errors: ..., requests: ...}}}}, each "
            "version's counts per window), not values or errors"
        )
    if not item.versions:
        raise RuleTestError(f"{where}: versions: name at least one version")
    out: dict[str, tuple[list[Point], list[Point]]] = {}
    for version, series in item.versions.items():
        try:
            errors, requests = expand(series.errors), expand(series.requests)
        except SeriesNotationError as exc:
            raise RuleTestError(f"{where}: versions.{version}: {exc}") from None
        if len(errors) != len(requests):
            raise RuleTestError(
                f"{where}: versions.{version}: requests has {len(requests)} values but "
                f"errors has {len(errors)}"
            )
        for i, (e, r) in enumerate(zip(errors, requests, strict=True)):
            if isinstance(e, float) and isinstance(r, float) and e > r:
                raise RuleTestError(
                    f"{where}: versions.{version}: value {i + 1}: {e:g} errors of {r:g} requests"
                )
        out[version] = (errors, requests)
    return _VersionsInput(out)
