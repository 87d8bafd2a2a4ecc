"""Choosing a rollback target from the version ledger (pure): never the live version,
never a version rolled away from; among the rest, a verified-healthy one first
(newest), else the newest; none left: no choice, with the reason. Each version gets a
line saying why (``targets`` prints them)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace

from watchdog.model import Candidate, Deploy, LedgerLine, Observed, TargetState
from watchdog.store.base import LedgerEntry
from watchdog.units import iso

HOW_TEXT = {
    "person": "a person",
    "ci": "CI",
    "watchdog": "the watchdog",
    "unknown": "unknown means",
}


def choose(
    target: str,
    kind: str,
    observed: Observed,
    ledger: Mapping[str, LedgerEntry],
) -> TargetState:
    """The rollback target from the ledger, with a line per version saying why."""
    live = observed.live
    if live is None:
        return TargetState(target, kind, None, None, observed.empty_why or "nothing is live")
    last = observed.steps[-1] if observed.steps else None
    live_how = last.how if last is not None and last.id == live.id else ""
    result = _choose(target, kind, observed, ledger, live)
    return replace(result, live_how=live_how)


def _choose(
    target: str,
    kind: str,
    observed: Observed,
    ledger: Mapping[str, LedgerEntry],
    live: Deploy,
) -> TargetState:
    lines = [
        LedgerLine(v, "live", _live_text(ledger.get(v)) + " (a rollback moves away from it)")
        for v in observed.bad
    ]
    if observed.uncertain:
        why = f"refusing: the history is uncertain ({observed.uncertain})"
        return TargetState(target, kind, live, None, why, tuple(lines))
    usable: list[Candidate] = []
    seen: set[str] = set(observed.bad)
    for c in observed.candidates:
        if c.version in seen:
            continue
        seen.add(c.version)
        e = ledger.get(c.version)
        if e is not None and e.rolled_away:
            lines.append(LedgerLine(c.version, "skipped", _away_text(e)))
        elif c.blocked:
            lines.append(LedgerLine(c.version, "skipped", c.blocked))
        else:
            usable.append(c)
    verified = [c for c in usable if (e := ledger.get(c.version)) is not None and e.verified]
    chosen = verified[0] if verified else (usable[0] if usable else None)
    for c in usable:
        e = ledger.get(c.version)
        status = "chosen" if c is chosen else "candidate"
        lines.append(LedgerLine(c.version, status, _candidate_text(e)))
    note = f"{observed.note}; " if observed.note else ""
    skipped = [line for line in lines if line.status == "skipped"]
    skip_text = (
        " (skipped: " + "; ".join(f"{s.version}: {s.reason}" for s in skipped) + ")"
        if skipped
        else ""
    )
    if chosen is None:
        why = (
            f"{note}no version left to roll back to: never the live version, never one "
            f"rolled away from{skip_text}"
            if observed.candidates
            else f"{note}{observed.empty_why or 'no earlier version'}"
        )
        return TargetState(target, kind, live, None, why, tuple(lines))
    e = ledger.get(chosen.version)
    if e is not None and e.verified:
        why = (
            f"{note}{chosen.version} is the newest earlier version verified healthy "
            f"({_verified_text(e)})"
        )
    else:
        why = (
            f"{note}{chosen.version} is the newest earlier version not rolled away from; "
            "none is verified healthy"
        )
    return TargetState(target, kind, live, chosen.deploy, why + skip_text, tuple(lines))


def _live_text(e: LedgerEntry | None) -> str:
    if e is None or e.went_live_at is None:
        return "live now"
    how = HOW_TEXT.get(e.how, e.how)
    detail = f" ({e.live_detail})" if e.live_detail else ""
    health = f"verified healthy: {_verified_text(e)}" if e.verified else "not verified healthy"
    return f"live now; went live {iso(e.went_live_at)} by {how}{detail}; {health}"


def _away_text(e: LedgerEntry) -> str:
    assert e.rolled_away_at is not None
    return f"rolled away from at {iso(e.rolled_away_at)}: {e.rolled_away_why}"


def _verified_text(e: LedgerEntry) -> str:
    assert e.verified_at is not None
    return f"{e.verified_why}, {iso(e.verified_at)}"


def _candidate_text(e: LedgerEntry | None) -> str:
    if e is None:
        return "never rolled away from; not verified healthy"
    parts = []
    if e.went_live_at is not None:
        parts.append(f"went live {iso(e.went_live_at)} by {HOW_TEXT.get(e.how, e.how)}")
    parts.append("never rolled away from")
    if e.verified:
        parts.append(f"verified healthy: {_verified_text(e)}")
    else:
        parts.append("not verified healthy")
        if e.legacy_seen_at is not None:
            parts.append(
                f"seen live when an incident closed at {iso(e.legacy_seen_at)} "
                "(before the ledger; not evidence)"
            )
    return "; ".join(parts)


def verified_from(healthy: Iterable[str], target: str) -> dict[str, LedgerEntry]:
    """A ledger that knows only which versions are verified healthy (a target asked
    for its state without the store, as the backtest does)."""
    return {
        v: LedgerEntry(target, v, verified_at=0.0, verified_why="given as healthy") for v in healthy
    }
