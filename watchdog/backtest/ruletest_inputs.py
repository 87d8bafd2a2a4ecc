"""A rule test's ``input_series`` as the samples a live daemon would have seen: values,
``_`` and ``stale`` gaps, and errors over requests for a divided signal."""

from __future__ import annotations

from dataclasses import dataclass

from watchdog.backtest.ruletest_file import RuleTestError, RuleTestGroup
from watchdog.backtest.samples import value_sample
from watchdog.backtest.series_notation import MISSING, STALE, Point, SeriesNotationError, expand
from watchdog.model import Sample
from watchdog.rules.fit import counts_errors
from watchdog.rules.load import RuleSet
from watchdog.sources.prometheus import divide, with_requests


def input_streams(
    ruleset: RuleSet, group: RuleTestGroup, label: str, start: float, interval: float
) -> dict[str, list[Sample]]:
    expanded: dict[str, _Input] = {}
    for index, item in enumerate(group.input_series):
        where = f"{label}: input_series[{index}] ({item.series})"
        signal = ruleset.signals.get(item.series)
        if signal is None:
            known = ", ".join(sorted(ruleset.signals))
            raise RuleTestError(f"{where}: unknown signal (expected one of: {known})")
        if item.series in expanded:
            raise RuleTestError(f"{where}: the signal is given twice")
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
