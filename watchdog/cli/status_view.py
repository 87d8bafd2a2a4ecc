"""The head of ``rollback-watchdog status``: whether the watchdog would act at all.

Read from the status JSON (``/api/v1/status``), so a person sees dry-run and silences
before the rules: a watchdog that is not acting must never look like one that is."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def header_lines(status: Mapping[str, Any]) -> list[str]:
    """``rollback-watchdog 0.1.0: ready (...)`` then a line per mode that stops actions."""
    lines = [
        f"rollback-watchdog {status['version']}: {'ready' if status['ready'] else 'NOT READY'}"
        f" ({status['ready_reason']})"
    ]
    if status.get("dry_run"):
        lines.append("DRY RUN: no mutating call is made (WATCHDOG_DRY_RUN / --dry-run)")
    if status.get("dry_run_rules"):
        lines.append(f"dry-run rules: {', '.join(status['dry_run_rules'])}")
    silences = list(status.get("silences", []))
    everything = [s for s in silences if not s.get("matchers")]
    if status.get("silenced"):
        who = "; ".join(f"{s['created_by']}: {s['comment']}" for s in everything)
        lines.append("SILENCED: every action" + (f" ({who})" if who else ""))
    elif status.get("silences_active"):
        lines.append(
            f"partly silenced: {status['silences_active']} active silence(s), listed below"
        )
    return lines
