"""Detection at the deadline: a pending rule's signal is sampled once more at the
instant its breach will have held for ``for:``, so firing does not wait for the next
scheduled sample; at most once per rule per interval; cancelled when the rule leaves
pending; dropped when it is not evidence. The daemon's real sampling loops on a
virtual clock, with a source whose value is a function of time."""

from __future__ import annotations

from pathlib import Path

from tests.factories import T0
from tests.scenarios.support import breach, calm
from tests.unit.test_daemon import make
from tests.world import world
from watchdog.core.evaluator import State
from watchdog.model import Sample
from watchdog.run.deadline import VERIFY

RULES = """
version: 1
defaults: {interval: 15s, blind_after: 5m}
sources:
  prom: {type: prometheus, url: "http://127.0.0.1:9"}
signals:
  error_rate: {source: prom, query: "e", requests_query: "r", unit: ratio}
rules:
  - {name: error-rate, signal: error_rate, above: 5%, for: FOR, severity: critical}
"""


def rules(for_: str) -> str:
    return RULES.replace("FOR", for_)


async def test_a_rule_fires_at_its_deadline_not_at_the_next_sample(tmp_path: Path) -> None:
    """Samples every 15 s; the breach is first seen at +105 s, so a 20 s ``for:`` has
    held at +125 s. The scheduled sample at +120 s comes first (still pending); one
    extra sample at +125 s fires the rule there, not at the next slot (+135 s)."""
    watchdog, clock, sources = make(tmp_path, lambda t: 0.08 if t >= 100 else 0.01, rules("20s"))
    await watchdog.start()
    await clock.advance(200)
    await watchdog.stop()
    (source,) = sources
    (decision,) = watchdog.decisions
    assert decision.decided_at == T0 + 125
    assert [c - T0 for c in source.calls if c % 15 != T0 % 15] == [125]
    assert watchdog.deadlines.taken == 1
    assert watchdog.engine.states["error-rate"].state is State.FIRING


async def test_a_deadline_on_a_scheduled_slot_takes_no_extra_sample(tmp_path: Path) -> None:
    """``for: 30s`` at a 15 s interval: the deadline falls on a scheduled sample,
    which decides; the source is asked nothing more."""
    watchdog, clock, sources = make(tmp_path, lambda t: 0.08 if t >= 100 else 0.01, rules("30s"))
    await watchdog.start()
    await clock.advance(200)
    await watchdog.stop()
    (decision,) = watchdog.decisions
    assert decision.decided_at == T0 + 135
    assert all((c - T0) % 15 == 0 for c in sources[0].calls)
    assert watchdog.deadlines.taken == 0


async def test_at_most_one_extra_sample_per_rule_per_interval(tmp_path: Path) -> None:
    """Breach seen at +105 s, ``for: 5s``: the extra sample at +110 s finds it over
    (the rule leaves pending). Breaching again at +120 s, its deadline (+125 s) is
    within one interval of the last extra sample: no second one, the rule fires at
    the next scheduled sample (+135 s)."""

    def curve(t: float) -> float:
        return 0.08 if 100 <= t < 110 or t >= 120 else 0.01

    watchdog, clock, sources = make(tmp_path, curve, rules("5s"))
    await watchdog.start()
    await clock.advance(200)
    await watchdog.stop()
    extra = [c - T0 for c in sources[0].calls if (c - T0) % 15 != 0]
    assert extra == [110]
    (decision,) = watchdog.decisions
    assert decision.decided_at == T0 + 135


async def test_a_rule_leaving_pending_cancels_its_extra_sample(tmp_path: Path) -> None:
    """Pending from +105 s with ``for: 20s``: the extra sample is set for +125 s. A
    calm sample at +122 s (another path into the engine) ends the run: the deadline
    is cancelled at once and the source is not asked at +125 s."""
    watchdog, clock, sources = make(tmp_path, lambda t: 0.08 if t >= 100 else 0.01, rules("20s"))
    await watchdog.start()
    await clock.advance(121)
    assert watchdog.deadlines.scheduled() == {"error-rate": T0 + 125}
    await clock.advance(1)
    watchdog.observe("error_rate", Sample.of(T0 + 122, 0.01, 1000.0), "prom")
    assert watchdog.deadlines.scheduled() == {}
    await clock.advance(10)
    await watchdog.stop()
    assert all((c - T0) % 15 == 0 for c in sources[0].calls)
    assert watchdog.deadlines.taken == 0
    assert not watchdog.decisions


async def test_an_extra_sample_that_is_not_evidence_is_dropped(tmp_path: Path) -> None:
    """The source fails at the deadline (+125 s): the error sample is dropped rather
    than make the rule blind (which would end the run), and the next scheduled
    sample (+135 s) fires it, as without the extra sample."""

    def curve(t: float) -> float | None:
        if t == 125:
            return None
        return 0.08 if t >= 100 else 0.01

    watchdog, clock, sources = make(tmp_path, curve, rules("20s"))
    await watchdog.start()
    await clock.advance(200)
    await watchdog.stop()
    assert T0 + 125 in sources[0].calls
    assert watchdog.deadlines.taken == 0
    (decision,) = watchdog.decisions
    assert decision.decided_at == T0 + 135


async def test_the_end_of_a_verification_window_is_sampled(tmp_path: Path) -> None:
    """After a rollback, each verification check's signal gets one extra sample at
    the end of its window (``verify_started + within``), asked once however many
    ticks ask again."""
    async with world(tmp_path) as w:
        await calm(w)
        await breach(w)
        (incident,) = w.runtime.manager.open.values()
        assert incident.phase == "verifying"
        started = incident.state.verify_started
        assert started is not None
        w.runtime.verify_deadlines()
        w.runtime.verify_deadlines()
        deadlines = w.runtime.watchdog.deadlines
        assert deadlines.scheduled() == {
            f"{VERIFY}{incident.id}:error_rate": started + 120,
            f"{VERIFY}{incident.id}:p95": started + 300,
        }
        await deadlines.stop()


async def test_a_verification_deadline_sample_is_taken_and_fed(tmp_path: Path) -> None:
    """Asked (every tick) for +50 s: while the scheduled sample at +45 s is still to
    come it decides; once that is taken, the daemon takes one at +50 s and feeds it
    to the engine's window, where the verification judges it."""
    watchdog, clock, sources = make(tmp_path, lambda t: 0.01, rules("5m"))
    key = f"{VERIFY}i1:error_rate"
    await watchdog.start()
    await clock.advance(20)
    watchdog.deadlines.verify_until(key, "error_rate", T0 + 50)
    assert watchdog.deadlines.scheduled() == {}
    await clock.advance(27)
    watchdog.deadlines.verify_until(key, "error_rate", T0 + 50)
    assert watchdog.deadlines.scheduled() == {key: T0 + 50}
    await clock.advance(13)
    await watchdog.stop()
    assert T0 + 50 in sources[0].calls
    latest = [s.at for s in watchdog.engine.windows["error_rate"]]
    assert T0 + 50 in latest
    assert watchdog.deadlines.taken == 1
