"""A bounded, time-ordered buffer of one signal's recent samples."""

from __future__ import annotations

import statistics
from collections import deque
from collections.abc import Callable, Iterator

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
