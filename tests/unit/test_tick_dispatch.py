"""The incident manager's tick runs at every sample of a replay: what kind of target or
notifier each one is (a runtime-checkable protocol, ~100 µs a check) is told once per
class, not asked again at each tick."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.factories import T0, ruleset
from watchdog.actions.notify.base import Refreshing
from watchdog.actions.notify.event import IncidentEvent
from watchdog.actions.playbook import Playbook
from watchdog.backtest.replay import Replay
from watchdog.backtest.standins import RecordedNotifier

RULES = """
notifiers:
  slack: {type: slack}
rules:
  - {name: error-rate, signal: error_rate, above: 5%, for: 5m, severity: critical}
"""


class ProbedNotifier(RecordedNotifier):
    """Counts the looks for the members that make a notifier ``Refreshing``."""

    probes = 0

    def __getattribute__(self, name: str) -> Any:
        if name in ("refresh", "refresh_due"):
            ProbedNotifier.probes += 1
        return super().__getattribute__(name)


def _sink(_notifier: str, _event: IncidentEvent) -> None:
    pass


async def test_a_tick_tells_a_refreshing_notifier_once_per_class(tmp_path: Path) -> None:
    replay = Replay(ruleset(tmp_path, RULES))
    notifier = ProbedNotifier("slack", _sink)
    old = replay.manager.playbook
    replay.manager.replace_playbook(
        Playbook(old.targets, {}, {"slack": notifier}, replay.store, replay.clock)
    )
    await replay.store.open()
    try:
        ProbedNotifier.probes = 0
        assert not isinstance(notifier, Refreshing)
        one_check = ProbedNotifier.probes
        assert one_check >= 1  # else this test could not tell
        ProbedNotifier.probes = 0
        for k in range(200):
            replay.clock.set(T0 + 15 * k)
            await replay.manager.tick()
        assert ProbedNotifier.probes <= one_check
    finally:
        await replay.store.close()
