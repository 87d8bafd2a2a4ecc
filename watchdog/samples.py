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
    """One observation of one signal. ``requests`` is the traffic behind a ratio, where known."""

    at: float
    kind: SampleKind
    value: float = math.nan
    requests: float | None = None
    reason: str = ""

    @classmethod
    def of(cls, at: float, value: float, requests: float | None = None) -> Sample:
        return cls(at, SampleKind.VALUE, value, requests)

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
