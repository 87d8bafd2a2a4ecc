"""What the console shows, as typed rows built from the running watchdog: the header,
every rule with its sparkline, the silences. Targets and incidents: ``console_data``."""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from html import escape as html_escape

from watchdog import __version__
from watchdog.api import sparkline
from watchdog.api.silences import silence_json
from watchdog.core.decider import Transition, burn_of, evidence_of, regression_of
from watchdog.core.engine import Observation
from watchdog.core.evaluator import RuleState, State
from watchdog.incidents.silence import Silences
from watchdog.rules.model import RuleSpec
from watchdog.run.daemon import Watchdog
from watchdog.units import format_duration, format_value
from watchdog.units import iso as _iso

# The same moments come back on every refresh (each incident's steps, each rule's
# start): formatting them is a good part of a page's cost.
iso = functools.lru_cache(maxsize=8192)(_iso)


@dataclass(frozen=True)
class Header:
    version: str
    now: str
    leader: bool
    leader_detail: str
    dry_run: bool
    silenced: bool
    silenced_by: str
    silences_active: int
    rules_files: tuple[str, ...]
    loaded_at: str
    loaded_ago: str
    reload_error: str | None
    ready: bool
    ready_reason: str


@dataclass(frozen=True)
class RuleRow:
    name: str
    severity: str
    signal: str
    state: str
    value: str
    op: str
    threshold: str
    for_: str
    in_state: str
    since: str
    evidence: str
    spark: str  # SVG markup, built from numbers and fixed names only
    targets: tuple[str, ...]
    dry_run: bool


@dataclass(frozen=True)
class SilenceRow:
    id: str
    matchers: str
    state: str
    starts: str
    ends: str
    created_by: str
    comment: str
    origin: str
    expirable: bool  # the flag file and --silenced are lifted where they were set


class StateTimes:
    """When each rule entered its current state: an observer of the engine's transitions
    (the rule state itself knows it only for pending, firing and blind); ``observe``
    goes into the daemon's observers."""

    def __init__(self) -> None:
        self.since: dict[str, float] = {}

    def observe(self, observation: Observation) -> None:
        moved: Transition
        for moved in observation.transitions:
            self.since[moved.rule] = moved.at

    def of(self, rule: str, state: RuleState, started_at: float) -> float:
        seen = self.since.get(rule)
        if seen is not None:
            return seen
        fallback = {
            State.FIRING: state.fired_at,
            State.PENDING: state.active_since,
            State.BLIND: state.blind_since,
        }.get(state.state)
        return fallback if fallback is not None else started_at


class Sparklines:
    """Each rule's sparkline, drawn again only when its window got a new sample."""

    def __init__(self) -> None:
        self._cache: dict[str, tuple[tuple[float, int, float], str]] = {}

    def of(self, watchdog: Watchdog, rule: RuleSpec, now: float) -> str:
        window = watchdog.engine.windows.get(rule.signal)
        latest = window.latest if window is not None else None
        key = (latest.at if latest is not None else 0.0, len(window or ()), now // 30)
        cached = self._cache.get(rule.name)
        if cached is not None and cached[0] == key:
            return cached[1]
        above = rule.comparison == "above"
        cols = sparkline.columns(list(window or ()), now, watchdog.engine.window_span_s, above)
        label = f"{rule.signal} over the last hour against {rule.threshold.text}"
        drawn = sparkline.svg(cols, rule.threshold.value, above, html_escape(label))
        self._cache[rule.name] = (key, drawn)
        return drawn


def header(
    watchdog: Watchdog,
    silences: Silences,
    dry_run: bool,
    leadership: Mapping[str, object],
    now: float,
) -> Header:
    active = silences.active()
    everything = [s for s in active if not s.matchers]
    ready, why = watchdog.ready()
    election = str(leadership.get("election", ""))
    since = leadership.get("since")
    detail = f"{election}; since {since}" if since else election
    return Header(
        version=__version__,
        now=iso(now),
        leader=bool(leadership.get("acting", leadership.get("leader", True))),
        leader_detail=detail,
        dry_run=dry_run,
        silenced=bool(everything),
        silenced_by=f"{everything[0].created_by}: {everything[0].comment}" if everything else "",
        silences_active=len(active),
        rules_files=tuple(watchdog.ruleset.files),
        loaded_at=iso(watchdog.rules_loaded_at),
        loaded_ago=format_duration(max(0.0, now - watchdog.rules_loaded_at)),
        reload_error=watchdog.last_reload_error,
        ready=ready,
        ready_reason=why,
    )


def rule_rows(
    watchdog: Watchdog, times: StateTimes, sparks: Sparklines, now: float
) -> list[RuleRow]:
    """Every rule, the breaching and blind ones first (what the reader came for)."""
    ruleset = watchdog.ruleset
    rows = []
    for rule in ruleset.rules:
        state = watchdog.engine.states[rule.name]
        unit = ruleset.signals[rule.signal].unit
        since = times.of(rule.name, state, watchdog.started_at)
        rows.append(
            RuleRow(
                name=rule.name,
                severity=rule.severity,
                signal=rule.signal,
                state=state.state.value,
                value=format_value(state.value, unit) if not math.isnan(state.value) else "—",
                op=">" if rule.comparison == "above" else "<",
                threshold=rule.threshold.text,
                for_=format_duration(rule.for_),
                in_state=format_duration(max(0.0, now - since)),
                since=iso(since),
                evidence=_evidence(rule, state),
                spark=sparks.of(watchdog, rule, now),
                targets=tuple(rule.rollback),
                dry_run=rule.dry_run,
            )
        )
    order = {"firing": 0, "pending": 1, "blind": 2, "inconclusive": 3, "inactive": 4}
    rows.sort(key=lambda r: order.get(r.state, 5))
    return rows


def _evidence(rule: RuleSpec, state: RuleState) -> str:
    """What the state stands on, in one line."""
    found = evidence_of(rule, state) or regression_of(rule, state) or burn_of(rule, state)
    if found is not None:
        return found.text()
    if state.state is State.BLIND:
        return f"no evidence: {state.blind_reason}"
    if state.at is None:
        return "no sample yet"
    if state.breaching and state.active_since is not None:
        return (
            f"{state.breach_samples} breaching sample(s) since {iso(state.active_since)} "
            f"(fires after {format_duration(rule.for_)})"
        )
    return f"last sample {iso(state.at)}"


def silence_rows(silences: Silences, now: float) -> list[SilenceRow]:
    """Active and pending silences, and those that ended in the last day."""
    records = silences.all() + [s for s in silences.active() if s.origin in ("flag", "file")]
    rows = []
    for record in records:
        shown = silence_json(record, now)
        ended = record.expired_at if record.expired_at is not None else record.ends_at
        if shown["state"] == "expired" and now - min(ended, record.ends_at) > 86400:
            continue
        matchers = " ".join(f"{m['name']}{m['op']}{m['value']}" for m in record.matchers)
        rows.append(
            SilenceRow(
                id=record.id,
                matchers=matchers or "(every action)",
                state=str(shown["state"]),
                starts=iso(record.starts_at),
                ends=str(shown["ends_at_iso"]),
                created_by=record.created_by,
                comment=record.comment,
                origin=record.origin,
                expirable=record.origin not in ("flag", "file") and shown["state"] != "expired",
            )
        )
    rows.sort(key=lambda r: (r.state == "expired", r.ends))
    return rows
