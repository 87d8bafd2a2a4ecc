"""Helpers shared by the scenario tests: healthy and breaching series, and short ways
to read what the world saw (rollbacks, escalations, journal rows, notifications)."""

from __future__ import annotations

import json
from typing import Any

from tests.world import World

HEALTHY = {"p95": 0.4}  # seconds: the latency signal stays at its baseline
CALM = 0.01  # 1 % errors: under every threshold
BAD = 0.08  # 8 % errors: over the 5 % rules


async def calm(w: World, samples: int = 20) -> None:
    """Healthy traffic (default five minutes of 15 s samples)."""
    await w.feed("error_rate", [CALM] * samples, also=HEALTHY)


async def breach(w: World, samples: int = 21) -> None:
    """A breach long enough for a ``for: 5m`` rule to fire (21 samples = 5 min)."""
    await w.feed("error_rate", [BAD] * samples, also=HEALTHY)


async def recover(w: World, samples: int = 30) -> None:
    await w.feed("error_rate", [0.001] * samples, also=HEALTHY)


def mutating_calls(w: World) -> list[str]:
    """Every request to the Cloudflare API that could change something."""
    return [f"{c.method} {c.path}" for c in w.cloudflare.calls if c.method != "GET"]


def pagerduty_triggers(w: World) -> list[dict[str, Any]]:
    return [e for e in w.receivers.pagerduty.events if e.get("event_action") == "trigger"]


def escalation_levels(w: World) -> list[str]:
    """The ladder levels that were paged or posted, in order (``level 1 (On-Call ...)``)."""
    out: list[str] = []
    for event in pagerduty_triggers(w):
        details = event["payload"]["custom_details"]
        if "escalation" in details:
            out.append(details["escalation"])
    for text in w.slack_texts():
        if "Escalated to " in text:
            out.append(text.split("Escalated to ", 1)[1].split(":", 1)[0])
    return out


def slack_bodies(w: World) -> list[str]:
    """Every accepted Slack message as JSON text (the blocks hold the details)."""
    return [json.dumps(m, ensure_ascii=False) for m in w.receivers.slack.messages]


async def kinds(w: World) -> list[str]:
    return [e.kind for e in await w.events()]


async def incident_ids(w: World) -> list[str]:
    return [i.id for i in reversed(await w.runtime.store.recent_incidents(50))]
