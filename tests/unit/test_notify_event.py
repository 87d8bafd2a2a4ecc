"""The incident event: identity, wording, and the runbook's sentences."""

from __future__ import annotations

import pytest

from tests.notify_helpers import ACTIONS, ROLLED_BACK, event
from watchdog.actions.notify.event import (
    DEFAULT_PHASES,
    STATUS_PHASES,
    EventKind,
    IncidentEvent,
    action_line,
)


def test_dedup_key_is_the_same_for_every_event_of_an_incident() -> None:
    """PagerDuty resolves what it triggered only with the same dedup_key."""
    keys = {event(kind).dedup_key() for kind in EventKind}
    assert keys == {"rollback-watchdog/inc-20260801-error-rate"}
    assert event(incident_id="other").dedup_key() != event().dedup_key()


def test_dedup_key_stays_within_pagerduty_limit_and_distinct() -> None:
    """A very long incident id is shortened to 255 characters, still unique."""
    one = event(incident_id="x" * 400).dedup_key()
    two = event(incident_id="x" * 399 + "y").dedup_key()
    assert len(one) <= 255
    assert len(two) <= 255
    assert one != two


@pytest.mark.parametrize(
    ("phase", "text"),
    [
        ("investigating", "We're investigating reports of elevated error rates."),
        ("identified", "We've identified the issue and are implementing a fix."),
        ("monitoring", "A fix has been implemented and we're monitoring the results."),
        ("resolved", "The issue has been resolved."),
    ],
)
def test_status_page_body_uses_the_runbook_wording(phase: str, text: str) -> None:
    """Each status-page phase reads exactly as the runbook's external template."""
    assert event(phase=phase).status_page_body() == text


def test_issue_description_follows_the_signal() -> None:
    """Latency and availability breaches get their own plain words for customers."""
    slow = event(signal="p95_latency", unit="seconds", observed=6.0, threshold=5.0)
    down = event(signal="health.up", unit="number", comparison="below", observed=0, threshold=1)
    assert slow.status_page_body("investigating") == (
        "We're investigating reports of slow response times."
    )
    assert "the service being unavailable" in down.status_page_body("investigating")
    assert slow.status_page_title() == "Slow response times"


def test_default_phases_walk_the_runbook_in_order() -> None:
    """opened → investigating, rolling back → identified, rolled back → monitoring,
    resolved → resolved; internal-only events leave the status page alone."""
    assert DEFAULT_PHASES[EventKind.OPENED] == "investigating"
    assert DEFAULT_PHASES[EventKind.ROLLING_BACK] == "identified"
    assert DEFAULT_PHASES[EventKind.ROLLED_BACK] == "monitoring"
    assert DEFAULT_PHASES[EventKind.RESOLVED] == "resolved"
    for kind in (EventKind.BLIND, EventKind.NOTICE, EventKind.WOULD_ROLLBACK):
        assert DEFAULT_PHASES[kind] is None
    assert set(DEFAULT_PHASES) == set(EventKind)
    assert set(DEFAULT_PHASES.values()) - {None} == set(STATUS_PHASES)


def test_headline_says_what_happened_with_value_threshold_and_versions() -> None:
    """The headline names the rule, the value against the threshold and the versions."""
    text = event(EventKind.ROLLED_BACK, rolled_back=ROLLED_BACK).headline()
    assert "error-rate" in text
    assert "7.2% > 5%" in text
    assert "worker: v42-bad → v41-good" in text
    assert "[inc-20260801-error-rate]" in text


def test_every_kind_has_a_distinct_headline() -> None:
    """No two event kinds read the same."""
    lines = {
        event(kind, escalation_level=2, escalation_name="DevOps Lead").headline()
        for kind in EventKind
    }
    assert len(lines) == len(EventKind)


def test_would_rollback_headline_gives_the_reason() -> None:
    """A silenced or dry-run event says why nothing was done."""
    text = event(EventKind.WOULD_ROLLBACK, message="silenced by alice until 14:00").headline()
    assert "Would have rolled back" in text
    assert "silenced by alice until 14:00" in text


def test_escalated_headline_names_level_and_person() -> None:
    """Escalation says which level and who."""
    text = event(EventKind.ESCALATED, escalation_level=2, escalation_name="DevOps Lead").headline()
    assert "level 2 (DevOps Lead)" in text


def test_runbook_internal_template_is_filled_in() -> None:
    """Component, Reason, Impact, ETA, Status Page, as in the runbook's template."""
    fields = dict(event(EventKind.ROLLING_BACK).runbook_fields())
    assert list(fields) == ["Component", "Reason", "Impact", "ETA", "Status Page"]
    assert fields["Component"] == "worker, frontend"
    assert "7.2% > 5%" in fields["Reason"]
    assert "for 5m (21 samples)" in fields["Reason"]
    assert fields["ETA"] == "< 5 minutes"
    assert fields["Status Page"] == "Updating (Identified)"


def test_facts_include_window_samples_and_first_breach() -> None:
    """The facts list carries everything a person needs to judge the call."""
    facts = dict(event().facts())
    assert facts["Observed"] == "error_rate 7.2%"
    assert facts["Threshold"] == "above 5%"
    assert facts["Window"] == "5m, 21 samples"
    assert facts["First breach"].endswith("Z")


def test_sequences_are_frozen_as_tuples() -> None:
    """Mutating the caller's list after building the event changes nothing."""
    rolled = list(ROLLED_BACK)
    built = event(EventKind.ROLLED_BACK, rolled_back=rolled, actions=ACTIONS)
    rolled.append(("x", "y", "z"))
    assert len(built.rolled_back) == 2
    assert isinstance(built.actions, tuple)


def test_unknown_status_phase_is_refused() -> None:
    """A typo in the phase is a programming error, caught at once."""
    with pytest.raises(ValueError, match="status_phase"):
        event(phase="fixed")


def test_action_line_marks_outcome() -> None:
    """✅ for ok, ❌ for failed, 🟡 for a dry run."""
    assert action_line(ACTIONS[0]).startswith("✅ rollback worker")
    assert action_line(ACTIONS[1]).startswith("❌ purge zone")


def test_event_is_immutable() -> None:
    """An event is a value: once sent it cannot change."""
    built = event()
    with pytest.raises(AttributeError):
        built.message = "changed"  # type: ignore[misc]
    assert isinstance(built, IncidentEvent)
