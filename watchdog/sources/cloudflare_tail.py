"""The ``cloudflare-tail`` source: a Worker's invocations per version as a Tail Worker
pushes them, seconds after each request instead of the analytics' minute or more.

A Tail Worker (``deploy/tail-worker``) attached to the script (``tail_consumers``)
receives one ``TraceItem`` per invocation, with ``scriptVersion.id``, ``outcome`` and
``wallTime`` (``@cloudflare/workers-types``), and posts the array to ``POST
/api/v1/tail/<source>``; the route hands it to ``receive`` and the sampling loop takes
what arrived since its last read. Every invocation reaches the Tail Worker (no head
sampling), so ``scale`` is 1.

Counted as the ``cloudflare`` source's ``mode: versions`` counts them: errors are
invocations whose outcome is neither ``ok`` nor ``canceled``; a latency canary's
``slower_than`` counts each version's invocations with ``wallTime`` over the bound;
``p95_s`` is the p95 of the ``ok`` ones. Events are counted when they arrive, so a
read never misses a late one and never counts one twice (``fresh_to`` is the read).

A push that stops is not "no traffic": with no event of the script heard for
``staleness`` (another script's events do not count) every sample is an error (a canary
goes blind, never passes). Events of other scripts, and events without
``scriptVersion.id`` (a runtime too old to say), are ignored and counted in the answer.
Memory is bounded: at most ``MAX_VERSIONS`` versions and ``MAX_PENDING_WALLS`` wall
times wait for a read; past the latter the read's slow counts and p95 are unknown (a
latency canary is blind for it), its counts still exact.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from watchdog.errors import SourceError
from watchdog.model import Sample, VersionCounts
from watchdog.rules.load import ResolvedSignal
from watchdog.rules.model import CloudflareTailSourceSpec
from watchdog.sources.base import SourceDeps
from watchdog.sources.cloudflare_versions import NOT_ERRORS, versions_sample, with_slow
from watchdog.units import format_duration

MAX_EVENTS_PER_POST = 10_000
MAX_VERSIONS = 64  # a Worker serves at most two at once; 64 leaves room for overrides
MAX_PENDING_WALLS = 500_000  # 4 MB of wall times between two reads


class PayloadError(SourceError):
    """A body that is not an array of Tail Worker events; names the first wrong field."""


@dataclass(frozen=True, slots=True)
class TailEvent:
    """What the watchdog reads of one ``TraceItem``."""

    script: str | None
    version: str | None
    outcome: str
    wall_ms: float | None


def parse_events(body: object) -> list[TailEvent]:
    """The events in ``body`` (parsed JSON: the ``events`` array a Tail Worker's
    ``tail()`` receives), or ``PayloadError`` naming the place, like ``[3].outcome``."""
    if not isinstance(body, list):
        raise PayloadError(
            "body: expected a JSON array of Tail Worker events (the TraceItem array "
            f"tail(events) receives), got {type(body).__name__}"
        )
    if len(body) > MAX_EVENTS_PER_POST:
        raise PayloadError(f"body: {len(body)} events in one POST (at most {MAX_EVENTS_PER_POST})")
    return [_event(i, item) for i, item in enumerate(body)]


def _event(i: int, item: Any) -> TailEvent:
    if not isinstance(item, dict):
        raise PayloadError(f"[{i}]: expected a TraceItem object, got {type(item).__name__}")
    script = item.get("scriptName")
    if script is not None and not isinstance(script, str):
        raise PayloadError(f"[{i}].scriptName: expected a string or null")
    outcome = item.get("outcome")
    if not isinstance(outcome, str) or not outcome:
        raise PayloadError(f"[{i}].outcome: expected a string like 'ok' or 'exception'")
    version = None
    meta = item.get("scriptVersion")
    if meta is not None:
        if not isinstance(meta, dict):
            raise PayloadError(f"[{i}].scriptVersion: expected an object with an id")
        version = meta.get("id")
        if version is not None and (not isinstance(version, str) or not version):
            raise PayloadError(f"[{i}].scriptVersion.id: expected a version id (a string)")
    wall = item.get("wallTime")
    if wall is not None and (
        isinstance(wall, bool) or not isinstance(wall, int | float) or not 0 <= wall < math.inf
    ):
        raise PayloadError(f"[{i}].wallTime: expected milliseconds (a number >= 0)")
    return TailEvent(script, version, outcome, None if wall is None else float(wall))


@dataclass(frozen=True)
class Receipt:
    """What one POST did: events counted, and the ignored ones by reason."""

    counted: int
    ignored: dict[str, int]


@dataclass
class _Tally:
    """One version's invocations since the last read."""

    errors: int = 0
    requests: int = 0
    walls: array[float] = field(default_factory=lambda: array("d"))
    ok_walls: array[float] = field(default_factory=lambda: array("d"))


class CloudflareTailSource:
    """Holds what the Tail Worker pushed since the last read; each read takes it."""

    def __init__(self, name: str, spec: CloudflareTailSourceSpec, deps: SourceDeps) -> None:
        self.name = name
        self.spec = spec
        self._clock = deps.clock
        self._pending: dict[str, _Tally] = {}
        self._walls = 0
        self._walls_known = True  # every pending event had a wall time, none dropped
        self._heard_at: float | None = None
        self._inboxes = deps.inboxes
        self._inboxes[name] = self

    def receive(self, events: Sequence[TailEvent]) -> Receipt:
        """Count one POST's events (ignoring other scripts' and unversioned ones)."""
        ignored: dict[str, int] = {}
        counted = 0
        for event in events:
            why = self._count(event)
            if why:
                ignored[why] = ignored.get(why, 0) + 1
            else:
                counted += 1
        # Only this script's events say its Tail Worker still posts: one Tail Worker may
        # consume several Workers, and one detached from ours must read as blind.
        if any(event.script == self.spec.script for event in events):
            self._heard_at = self._clock.now()
        return Receipt(counted, ignored)

    def _count(self, event: TailEvent) -> str:
        """Count ``event``; why it was not counted ("" when it was)."""
        if event.script != self.spec.script:
            return f"script {event.script!r} is not {self.spec.script!r}"
        if event.version is None:
            return "no scriptVersion.id (compatibility date too old?)"
        tally = self._pending.get(event.version)
        if tally is None:
            if len(self._pending) >= MAX_VERSIONS:
                return f"more than {MAX_VERSIONS} versions since the last read"
            tally = self._pending[event.version] = _Tally()
        tally.requests += 1
        ok = event.outcome in NOT_ERRORS
        tally.errors += 0 if ok else 1
        if event.wall_ms is None or self._walls >= MAX_PENDING_WALLS:
            self._walls_known = False
        else:
            self._walls += 1
            tally.walls.append(event.wall_ms)
            if event.outcome == "ok":
                tally.ok_walls.append(event.wall_ms)
        return ""

    async def sample(self, signals: Sequence[ResolvedSignal], now: float) -> dict[str, Sample]:
        stale = self._stale()
        if stale:
            return {s.name: Sample.error(now, stale) for s in signals}
        pending, walls_known = self._pending, self._walls_known
        self._pending, self._walls, self._walls_known = {}, 0, True
        versions = tuple(
            VersionCounts(
                v,
                float(t.errors),
                float(t.requests),
                p95_s=_p95(t.ok_walls) if walls_known else None,
            )
            for v, t in sorted(pending.items())
        )
        out = {}
        for s in signals:
            bound = s.spec.slower_than
            counted = versions
            if bound is not None and walls_known:
                limit = bound * 1000.0
                slow = {v: float(sum(1 for w in t.walls if w > limit)) for v, t in pending.items()}
                counted = with_slow(versions, bound, slow)
            out[s.name] = versions_sample(s.spec.field, counted, now, now)
        return out

    def _stale(self) -> str:
        """Why nothing heard is no evidence ("" while the Tail Worker is heard)."""
        where = f"POST /api/v1/tail/{self.name} (deploy/tail-worker, script {self.spec.script})"
        if self._heard_at is None:
            return f"no Tail Worker events yet for source {self.name}: is it posting to {where}?"
        silent = self._clock.now() - self._heard_at
        if silent > self.spec.staleness:
            return (
                f"no Tail Worker events for {format_duration(silent)} (staleness "
                f"{format_duration(self.spec.staleness)}): is it still posting to {where}?"
            )
        return ""

    async def aclose(self) -> None:
        """No longer the one the API feeds (unless a rebuilt one already took the name)."""
        if self._inboxes.get(self.name) is self:
            del self._inboxes[self.name]


def _p95(walls: array[float]) -> float | None:
    """The nearest-rank p95 of ``walls`` in seconds (None without any)."""
    if not walls:
        return None
    ordered = sorted(walls)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)] / 1000.0
