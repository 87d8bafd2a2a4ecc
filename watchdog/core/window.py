"""A bounded, time-ordered buffer of one signal's recent samples, and the sliding
count window of a confidence rule."""

from __future__ import annotations

import statistics
from collections import deque
from collections.abc import Callable, Iterator
from itertools import pairwise
from operator import itemgetter
from typing import cast

from watchdog.model import Sample


class SignalWindow:
    """Keeps the last ``span_s`` seconds of samples (and at most ``max_samples``)."""

    def __init__(self, span_s: float = 3600.0, max_samples: int = 10_000) -> None:
        self.span_s = span_s
        self._samples: deque[Sample] = deque(maxlen=max_samples)

    def add(self, sample: Sample) -> None:
        # On every sample of every signal (and a month of them in a backtest): locals.
        samples = self._samples
        at = sample.at
        if samples and at < samples[-1].at:
            # A clock that jumped back: drop what now lies in the future.
            while samples and samples[-1].at > at:
                samples.pop()
        samples.append(sample)
        horizon = at - self.span_s
        while samples[0].at < horizon:  # never empties: ``sample`` itself is in the span
            samples.popleft()

    def __iter__(self) -> Iterator[Sample]:
        return iter(self._samples)

    def __len__(self) -> int:
        return len(self._samples)

    @property
    def latest(self) -> Sample | None:
        return self._samples[-1] if self._samples else None

    def between(self, start: float, end: float) -> list[Sample]:
        return [s for s in self._samples if start <= s.at < end]

    def baseline(
        self,
        before: float,
        span_s: float = 900.0,
        breaching: Callable[[float], bool] | None = None,
    ) -> float | None:
        """The median evidence value in the ``span_s`` before ``before``, leaving out
        every value ``breaching`` calls a breach: the pre-incident baseline that
        verification compares against."""
        values = [
            s.value
            for s in self.between(before - span_s, before)
            if s.is_evidence and (breaching is None or not breaching(s.value))
        ]
        return statistics.median(values) if values else None

    def episode_start(
        self, start: float, breaching: Callable[[float], bool], gap_s: float
    ) -> float:
        """The first breaching sample of the episode that ``start`` belongs to: earlier
        breaching samples (a signal that flapped before it fired) belong to it when less
        than ``gap_s`` lies between them and the episode's start."""
        first = start
        for sample in reversed(self._samples):
            if sample.at >= first:
                continue
            if sample.at < first - gap_s:
                break
            if sample.is_evidence and breaching(sample.value):
                first = sample.at
        return first


Counts = tuple[tuple[float, float, float], ...]
_errors_of, _requests_of = itemgetter(1), itemgetter(2)
_INT: type = int  # counts typed float may hold ints (exact sums); not bool, not float


def slide(
    old: Counts,
    was_e: float | None,
    was_n: float | None,
    ordered: bool,
    horizon: float,
    item: tuple[float, float, float] | None,
) -> tuple[Counts, float, float, bool]:
    """A confidence rule's count window after one sample: of ``old`` (``ordered``: in
    time order; ``was_e``/``was_n``: its sums, when known), the counts after ``horizon``
    with ``item`` added, their errors and requests, and whether they are in time order.

    The same as filtering the counts and summing them afresh, left to right. In time
    order, the counts that leave are a prefix; when every count is an int (Python
    ints: exact, whatever the order), the sums are the previous ones less what left
    plus what came, so a step costs the same for a window of 20 counts or 3,600."""
    if ordered and (item is None or not old or item[0] >= old[-1][0]):
        first, size = 0, len(old)
        while first < size and old[first][0] <= horizon:
            first += 1
        kept = old[first:] if first else old
        counts = kept if item is None else (*kept, item)
        if type(was_e) is _INT and type(was_n) is _INT:
            errors, requests = cast(float, was_e), cast(float, was_n)
            for index in range(first):  # usually one
                _, gone_e, gone_n = old[index]
                if type(gone_e) is not _INT or type(gone_n) is not _INT:
                    break
                errors -= gone_e
                requests -= gone_n
            else:
                if item is None:
                    return counts, errors, requests, True
                _, new_e, new_n = item
                if type(new_e) is _INT and type(new_n) is _INT:
                    return counts, errors + new_e, requests + new_n, True
        return counts, sum(map(_errors_of, counts)), sum(map(_requests_of, counts)), True
    listed = [entry for entry in old if entry[0] > horizon]
    if item is not None:
        listed.append(item)
    counts = tuple(listed)
    ordered = all(a[0] <= b[0] for a, b in pairwise(counts))
    return counts, sum(map(_errors_of, counts)), sum(map(_requests_of, counts)), ordered
