"""What a source gives for one signal at one moment: a value, no data, or an error.

The three are never conflated: "no data" (an empty vector, an idle histogram) and
"error" (timeout, 500, bad payload) are both *missing evidence*, which the
evaluator turns into the ``blind`` state, never into a breach.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum


class SampleKind(StrEnum):
    VALUE = "value"
    NO_DATA = "no_data"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class Sample:
    """One observation of one signal.

    ``value`` is what rules compare (a ratio, seconds, a number). Where the source
    counts them, ``requests`` is the traffic behind the value and ``errors`` how many
    of those requests failed: the evidence a ratio stands on (0 errors of 12 requests
    and 0 of 12,000 are both 0 %, and say very different things)."""

    at: float
    kind: SampleKind
    value: float = math.nan
    requests: float | None = None
    reason: str = ""
    errors: float | None = None

    @classmethod
    def of(
        cls, at: float, value: float, requests: float | None = None, errors: float | None = None
    ) -> Sample:
        return cls(at, SampleKind.VALUE, value, requests, errors=errors)

    @classmethod
    def ratio(cls, at: float, errors: float, requests: float) -> Sample:
        """``errors / requests`` with both counts; ``requests`` must be above 0. At most
        1: counters extrapolated one by one (``increase()``) can count a few more
        errors than requests in a total outage, and that is 100 %, not a bad number."""
        return cls(at, SampleKind.VALUE, min(errors / requests, 1.0), requests, errors=errors)

    @classmethod
    def no_data(cls, at: float, reason: str) -> Sample:
        return cls(at, SampleKind.NO_DATA, reason=reason)

    @classmethod
    def error(cls, at: float, reason: str) -> Sample:
        return cls(at, SampleKind.ERROR, reason=reason)

    @property
    def is_evidence(self) -> bool:
        """A real, finite value: the only kind of sample that may count as a breach."""
        return self.kind is SampleKind.VALUE and not math.isnan(self.value)

    def describe(self) -> str:
        if self.kind is SampleKind.VALUE:
            return "NaN" if math.isnan(self.value) else f"{self.value:g}"
        return f"{self.kind.value}: {self.reason}"
