"""The evaluator over whole arrays: a rule's state at every sample of its signal,
``core.evaluator.step``'s semantics without a call per sample (the ``fast`` extra).

``step`` stays the definition; a property test (tests/unit/test_columnar.py) holds
this module to it on arbitrary series. The work is in runs:

- evidence (a finite value, with ``min_requests`` met) or not: each run of missing
  evidence is blind, ``blind_long`` once it has lasted ``blind_after``;
- a *positive* sample breaches (``consecutive``) or has a breach in its trailing
  ``for:`` window of evidence (``share``: counted with cumulative sums);
- each run of positive samples is pending from its first sample and firing where
  ``at - active_since >= for`` (and, for ``share``, the window's share is met);
- ``keep_firing_for`` holds a run that ends firing over the evidence samples after it
  that come less than that after its last breach; a run that follows a held stretch
  without a gap carries on (same ``active_since``).

Only runs are visited one by one in Python (a month has a few thousand), never
samples. Rules that weigh counts (``confidence``, ``regression``, ``burn_rate``) are
not evaluated here: ``unsupported`` says why, and the replay folds ``step`` for them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from watchdog.backtest.columns import VALUE, Columns
from watchdog.backtest.decimals import Floats
from watchdog.core.evaluator import RuleState, State, blind_reason
from watchdog.rules.model import RuleSpec

CODES = (State.INACTIVE, State.PENDING, State.FIRING, State.BLIND)
INACTIVE, PENDING, FIRING, BLIND = 0, 1, 2, 3
_NONE = math.nan  # "None" in the float columns


def unsupported(rule: RuleSpec) -> str | None:
    """Why the columnar evaluator does not take ``rule`` (None: it does)."""
    if rule.confidence is not None:
        return "a confidence rule weighs the counts of a sliding window"
    if rule.regression is not None:
        return "a regression rule tests each deploy's counts against before it"
    if rule.burn_rate is not None:
        return "a burn-rate rule sums counts per minute over its windows"
    return None


@dataclass(frozen=True, eq=False)
class Track:
    """A rule's state at each sample of its signal, with what ``state_at`` needs to
    build the exact ``RuleState`` that ``step`` would hold there."""

    rule: RuleSpec
    columns: Columns
    blind_after: float
    code: NDArray[np.int8]
    blind_long: NDArray[np.bool_]
    # Only where they mean something, to keep a month of many rules small: at the
    # pending and firing samples (``busy``), and at the blind ones (``blind``).
    busy: NDArray[np.intp]
    active: Floats  # active_since
    fired: Floats  # fired_at
    last_breach: Floats
    count: NDArray[np.int64]  # breach_samples
    blind: NDArray[np.intp]
    blind_since: Floats
    evidence_at: NDArray[np.intp]  # share: index of the evidence samples
    window_lo: NDArray[np.intp]  # share: first evidence (by number) of each one's window
    breached: NDArray[np.bool_]  # share: whether each evidence sample breached

    def changes(self) -> NDArray[np.intp]:
        """The samples at which the state or ``blind_long`` changes (the only ones the
        engine turns into transitions and decisions)."""
        key = self.code.astype(np.int16) * 2 + self.blind_long
        before = np.concatenate(([0], key[:-1]))
        return np.flatnonzero(key != before)

    def state_at(self, i: int) -> RuleState:
        """The ``RuleState`` that folding ``step`` up to sample ``i`` gives."""
        columns = self.columns
        code = int(self.code[i])
        at = float(columns.t[i])
        value = float(columns.value[i])
        requests = float(columns.requests[i]) if columns.has_requests[i] else None
        window = self._window(i)
        if code == BLIND:
            return RuleState(
                state=State.BLIND,
                value=value,
                requests=requests,
                at=at,
                blind_since=float(self.blind_since[np.searchsorted(self.blind, i)]),
                blind_reason=blind_reason(self.rule, columns.sample(i)) or "",
                blind_long=bool(self.blind_long[i]),
                window=window,
            )
        if code == INACTIVE:
            return RuleState(value=value, requests=requests, at=at, window=window)
        k = int(np.searchsorted(self.busy, i))
        return RuleState(
            state=CODES[code],
            active_since=_opt(self.active[k]),
            fired_at=_opt(self.fired[k]),
            last_breach_at=_opt(self.last_breach[k]),
            breach_samples=int(self.count[k]),
            value=value,
            requests=requests,
            at=at,
            window=window,
        )

    def _window(self, i: int) -> tuple[tuple[float, bool], ...]:
        """Share mode: the evidence of the trailing ``for:`` as of the last evidence
        sample at or before ``i`` (blind samples keep it as it was)."""
        if self.rule.mode != "share":
            return ()
        k = int(np.searchsorted(self.evidence_at, i, side="right")) - 1
        if k < 0:
            return ()
        lo = int(self.window_lo[k])
        times = self.columns.t[self.evidence_at[lo : k + 1]].tolist()
        return tuple(zip(times, self.breached[lo : k + 1].tolist(), strict=True))


def _opt(value: np.float64) -> float | None:
    return None if math.isnan(value) else float(value)


def evidence(rule: RuleSpec, columns: Columns) -> NDArray[np.bool_]:
    """Samples that are evidence for ``rule`` (``blind_reason`` is None)."""
    ok: NDArray[np.bool_] = (columns.kind == VALUE) & ~np.isnan(columns.value)
    if rule.min_requests > 0:
        with np.errstate(invalid="ignore"):
            ok &= columns.has_requests & (columns.requests >= rule.min_requests)
    return ok


def evaluate(rule: RuleSpec, columns: Columns, blind_after: float) -> Track:
    """``rule`` over every sample of ``columns`` (a rule ``unsupported`` allows)."""
    reason = unsupported(rule)
    if reason is not None:
        raise ValueError(f"{rule.name}: not columnar: {reason}")
    t = columns.t
    n = t.size
    ev = evidence(rule, columns)
    threshold = rule.threshold.value
    with np.errstate(invalid="ignore"):
        hit = ev & (
            (columns.value > threshold) if rule.above is not None else (columns.value < threshold)
        )
    at_ev = np.flatnonzero(ev)
    if rule.mode == "share":
        assert rule.share is not None  # RuleSpec validation
        te = t[at_ev]
        hits = hit[at_ev]
        cum = np.concatenate(([0], np.cumsum(hits)))
        lo = np.searchsorted(te, te - rule.for_, side="right")
        in_window = np.arange(at_ev.size) - lo + 1
        breaches = cum[1:] - cum[lo]
        positive = np.zeros(n, dtype=np.bool_)
        positive[at_ev] = breaches > 0
        enough = np.zeros(n, dtype=np.bool_)
        enough[at_ev] = breaches / np.maximum(in_window, 1) >= rule.share
        counts = np.zeros(n, dtype=np.int64)
        counts[at_ev] = breaches
    else:
        lo = np.zeros(0, dtype=np.intp)
        hits = np.zeros(0, dtype=np.bool_)
        positive = hit
        enough = np.ones(n, dtype=np.bool_)
        counts = np.zeros(n, dtype=np.int64)
    runs = _Runs(rule, t, ev, hit, positive, enough, counts)
    runs.walk()
    code = runs.code
    code[~ev] = BLIND
    blind, blind_since, blind_long = _blind(t, ev, blind_after)
    busy = np.flatnonzero((code == PENDING) | (code == FIRING))
    firing = code[busy] == FIRING
    fired = np.full(busy.size, _NONE)
    fired[firing] = _run_starts(t, busy[firing])  # firing samples are few, too
    return Track(
        rule,
        columns,
        blind_after,
        code,
        blind_long,
        busy,
        runs.active[busy],
        fired,
        runs.last_breach[busy],
        runs.count[busy],
        blind,
        blind_since,
        at_ev,
        lo.astype(np.intp),
        hits.astype(np.bool_),
    )


def _blind(
    t: Floats, ev: NDArray[np.bool_], blind_after: float
) -> tuple[NDArray[np.intp], Floats, NDArray[np.bool_]]:
    """The blind samples (no evidence), when each one's blind run began, and which
    samples have been blind ``blind_after`` or longer. Blind samples are few: their
    runs are found among their indexes."""
    blind = np.flatnonzero(~ev)
    since = _run_starts(t, blind)
    long = np.zeros(t.size, dtype=np.bool_)
    long[blind] = t[blind] - since >= blind_after
    return blind, since, long


def _run_starts(t: Floats, at: NDArray[np.intp]) -> Floats:
    """For each of the sorted indexes ``at``, the time its run of consecutive indexes
    began."""
    if at.size == 0:
        return np.zeros(0)
    begins = np.ones(at.size, dtype=np.bool_)
    begins[1:] = at[1:] != at[:-1] + 1
    first = np.maximum.accumulate(np.where(begins, np.arange(at.size), 0))
    return t[at[first]]


class _Runs:
    """The walk over runs of positive samples, filling the per-sample columns."""

    def __init__(
        self,
        rule: RuleSpec,
        t: Floats,
        ev: NDArray[np.bool_],
        hit: NDArray[np.bool_],
        positive: NDArray[np.bool_],
        enough: NDArray[np.bool_],
        counts: NDArray[np.int64],
    ) -> None:
        n = t.size
        self.rule, self.t, self.ev, self.hit = rule, t, ev, hit
        self.positive, self.enough, self.counts = positive, enough, counts
        self.code = np.zeros(n, dtype=np.int8)
        self.active = np.full(n, _NONE)
        self.last_breach = np.full(n, _NONE)
        self.count = np.zeros(n, dtype=np.int64)

    def walk(self) -> None:
        t, positive = self.t, self.positive
        n = t.size
        edges = np.diff(np.concatenate(([False], positive, [False])).astype(np.int8))
        starts = np.flatnonzero(edges == 1).tolist()
        ends = np.flatnonzero(edges == -1).tolist()
        carry: tuple[float, float, int] | None = None  # active, last breach, count
        for k, (s, e) in enumerate(zip(starts, ends, strict=True)):
            following = starts[k + 1] if k + 1 < len(starts) else n
            active, last, count = self._run(s, e, carry)
            carry = None
            held = self.code[e - 1] == FIRING and self.rule.keep_firing_for > 0 and last == last
            if held and self._hold(e, following, active, last, count):
                carry = (active, last, count)

    def _run(
        self, s: int, e: int, carry: tuple[float, float, int] | None
    ) -> tuple[float, float, int]:
        """Pending or firing over ``[s, e)``: its active_since, last breach, count."""
        t, rule = self.t, self.rule
        active = carry[0] if carry is not None else float(t[s])
        self.active[s:e] = active
        firing = self.enough[s:e] & (t[s:e] - active >= rule.for_)
        self.code[s:e] = np.where(firing, FIRING, PENDING)
        if rule.mode == "share":
            self.count[s:e] = self.counts[s:e]
            hits = self.hit[s:e]
            index = np.where(hits, np.arange(e - s), -1)
            latest = np.maximum.accumulate(index)
            before = carry[1] if carry is not None else _NONE
            self.last_breach[s:e] = np.where(latest >= 0, t[s:e][np.maximum(latest, 0)], before)
        else:
            base = carry[2] if carry is not None else 0
            self.count[s:e] = base + np.arange(1, e - s + 1)
            self.last_breach[s:e] = t[s:e]
        return active, float(self.last_breach[e - 1]), int(self.count[e - 1])

    def _hold(self, e: int, following: int, active: float, last: float, count: int) -> bool:
        """``keep_firing_for`` after a run that ended firing: firing over the evidence
        samples less than that after its last breach. True when the hold reaches the
        next run (which then carries on)."""
        t = self.t
        gap = slice(e, following)
        held = self.ev[gap] & (t[gap] - last < self.rule.keep_firing_for)
        stop = np.flatnonzero(~held)
        end = e + int(stop[0]) if stop.size else following
        self.code[e:end] = FIRING
        self.active[e:end] = active
        self.last_breach[e:end] = last
        self.count[e:end] = 0 if self.rule.mode == "share" else count
        return end == following and following < t.size
