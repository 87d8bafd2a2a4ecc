"""What a source gives for one signal at one moment: a value, no data, or an error.

The three are never conflated: "no data" (an empty vector, an idle histogram) and
"error" (timeout, 500, bad payload) are both *missing evidence*, which the
evaluator turns into the ``blind`` state, never into a breach.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


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
    # Per-version counts (a ``cloudflare`` source in ``versions`` mode) and the end of
    # the window they cover: analytics arrive late, so "now" is not what was seen.
    versions: tuple[VersionCounts, ...] = ()
    fresh_to: float | None = None

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


@dataclass(frozen=True, slots=True)
class VersionCounts:
    """One Worker version's invocations in a sample's window, as the analytics saw
    them: ``errors`` of ``requests`` events kept by sampling, each standing for
    ``scale`` requests; ``p95_s`` its wall-time p95 (None when not reported); ``slow``
    of them took longer than ``slow_over_s`` (None: not counted)."""

    version: str
    errors: float
    requests: float
    scale: float = 1.0
    p95_s: float | None = None
    slow: float | None = None
    slow_over_s: float | None = None


@dataclass(frozen=True)
class Split:
    """A gradual deployment of a target: ``new`` at ``new_percentage``, ``old`` (the
    version at 100 % before it) at the rest, live since ``at``, made by ``author``."""

    target: str
    deployment: str
    new: str
    old: str
    new_percentage: float
    at: float
    author: str = ""


@dataclass(frozen=True)
class Deploy:
    """One deployment of a target. ``version`` is what a rollback goes *to*
    (a Worker version id; for Pages the deployment id itself)."""

    id: str
    version: str
    created_at: float
    description: str = ""
    author: str = ""


@dataclass(frozen=True)
class LedgerLine:
    """One version as the target choice saw it: ``status`` is ``live``, ``chosen``,
    ``candidate`` or ``skipped``; ``reason`` says why, from the version ledger."""

    version: str
    status: str
    reason: str


@dataclass(frozen=True)
class TargetState:
    """What is live on a target and what a rollback would go to, and why."""

    target: str
    kind: str
    live: Deploy | None
    rollback_to: Deploy | None
    why: str
    ledger: tuple[LedgerLine, ...] = ()
    # How the live deployment went live (person, ci, watchdog, unknown): the watchdog's
    # own rollback is no fresh deploy to blame.
    live_how: str = ""


@dataclass(frozen=True)
class LiveStep:
    """One change of what serves a target, as the remote history shows it: the
    deployment ``id`` made ``versions`` live at ``at``. ``how`` is ``person``, ``ci``,
    ``watchdog`` or ``unknown``; ``rollback`` marks a step the remote calls a rollback;
    ``away`` names versions this step is known to have rolled away from beyond those
    it replaced (a Pages rollback moves production past several newer deployments)."""

    id: str
    at: float
    versions: tuple[str, ...]
    how: str = "unknown"
    detail: str = ""
    rollback: bool = False
    away: tuple[str, ...] = ()


@dataclass(frozen=True)
class Candidate:
    """An earlier version a rollback could go to (newest first in ``Observed``), with
    why the remote itself rules it out (``blocked``: a failed build, not deployable)."""

    version: str
    deploy: Deploy
    blocked: str = ""


@dataclass(frozen=True)
class Observed:
    """A target's remote history, read once: what is live, the steps that led there
    (oldest first), and the candidates (newest first). ``bad`` holds the live versions
    a rollback moves away from; ``uncertain`` says why the history read is not enough
    to choose (then no choice is made)."""

    live: Deploy | None
    bad: tuple[str, ...]
    steps: tuple[LiveStep, ...]
    candidates: tuple[Candidate, ...]
    empty_why: str = ""
    uncertain: str = ""
    note: str = ""
    # Since when the live deployment has provably served without a break (None: the
    # remote cannot tell, as for a Pages project rolled back at an unknown time).
    live_since: float | None = None


@dataclass(frozen=True)
class RollbackPlan:
    """A rollback decided and journalled before any mutating call."""

    target: str
    from_version: str
    to_version: str
    reason: str


@dataclass(frozen=True)
class ActionResult:
    """The outcome of one action. ``would`` marks a dry run; ``request`` then holds
    the exact mutating request that was not sent (method, path, body)."""

    action: str
    target: str
    ok: bool
    detail: str
    would: bool = False
    request: dict[str, Any] | None = None
    data: dict[str, Any] = field(default_factory=dict)
