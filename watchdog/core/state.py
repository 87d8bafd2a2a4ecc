"""A rule's state between samples, as the evaluator (``core.evaluator``) keeps it."""

from __future__ import annotations

import math
from enum import StrEnum
from typing import NamedTuple

from watchdog.core import burn


class State(StrEnum):
    INACTIVE = "inactive"
    PENDING = "pending"
    FIRING = "firing"
    BLIND = "blind"
    INCONCLUSIVE = "inconclusive"  # a confidence rule whose evidence cannot tell yet


class RuleState(NamedTuple):
    """Everything the evaluator remembers about one rule between samples.

    Immutable. A NamedTuple rather than a frozen dataclass: ``step`` builds one per
    rule per sample, and a tuple is built about three times faster (the backtest
    folds millions of samples through here)."""

    state: State = State.INACTIVE
    active_since: float | None = None  # first breach of the current run (Prometheus activeAt)
    fired_at: float | None = None
    last_breach_at: float | None = None
    breach_samples: int = 0  # breaching samples in the current run
    value: float = math.nan  # the latest value seen (NaN when none)
    requests: float | None = None
    at: float | None = None  # time of the latest sample
    blind_since: float | None = None
    blind_reason: str = ""
    blind_long: bool = False  # blind for at least blind_after
    window: tuple[tuple[float, bool], ...] = ()  # (at, breached) evidence, share mode only
    errors: float | None = None  # confidence rules: errors in the window (requests: its requests)
    counts: tuple[tuple[float, float, float], ...] = ()  # (at, errors, requests), confidence only
    # Regression rules: (deploy at, errors and requests before it, their ratio's upper
    # bound); errors/requests count since the deploy.
    baseline: tuple[float, float, float, float] | None = None
    minutes: burn.Minutes = burn.NO_MINUTES  # burn-rate rules: per-minute counts
    # Confidence rules: ``counts`` in time order (a clock that went back breaks it until
    # the counts from before the jump age out): the window then slides from its front.
    ordered: bool = True

    @property
    def breaching(self) -> bool:
        return self.state in (State.PENDING, State.FIRING)


INITIAL = RuleState()
