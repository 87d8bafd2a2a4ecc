"""The ``grafana`` notifier against the strict local Grafana annotations API on a real
loopback socket: an annotation per incident step and per silence, in milliseconds,
tagged per rule and target, with the token as a Bearer header and never leaked; and a
whole incident of the scenario world annotated, silences included."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from tests.helpers import InstantClock
from tests.notify_helpers import ROLLED_BACK, T0, event
from tests.scenarios.support import breach, calm, recover
from tests.world import world
from watchdog.actions.notify.event import EventKind, SilenceEvent
from watchdog.actions.notify.grafana import GrafanaNotifier
from watchdog.demo.fakes.grafana import GrafanaReceiver
from watchdog.http.server import serve
from watchdog.incidents.matchers import parse_matcher
from watchdog.rules.response import GrafanaNotifierSpec

TOKEN = "glsa_grafanaTOKENSECRET0123456789"


@dataclass
class Env:
    grafana: GrafanaReceiver
    url: str
    http: httpx.AsyncClient
    clock: InstantClock

    def notifier(self, token: str = TOKEN, **spec: object) -> GrafanaNotifier:
        parsed = GrafanaNotifierSpec.model_validate({"type": "grafana", "url": self.url, **spec})
        return GrafanaNotifier("grafana", parsed, SecretStr(token), self.http, self.clock)


@contextlib.asynccontextmanager
async def grafana_env() -> AsyncIterator[Env]:
    receiver = GrafanaReceiver(TOKEN)
    async with serve(receiver) as srv, httpx.AsyncClient() as http:
        yield Env(receiver, srv.url, http, InstantClock())


def silence_event(change: str, at: float) -> SilenceEvent:
    return SilenceEvent(
        change,  # type: ignore[arg-type]
        "5f0c2a9e-1111-2222-3333-444455556666",
        (("rule", "=", "error-rate"), ("target", "=~", "worker|frontend")),
        T0,
        T0 + 7200,
        "alice",
        "deploying by hand",
        at,
    )


async def test_each_step_is_an_annotation_tagged_by_rule_and_target() -> None:
    async with grafana_env() as env:
        notifier = env.notifier(dashboard_uid="rollback-watchdog", panel_id=2)
        results = [
            await notifier.send(event(EventKind.OPENED)),
            await notifier.send(event(EventKind.ROLLED_BACK, rolled_back=ROLLED_BACK)),
            await notifier.send(event(EventKind.VERIFIED, occurred_at=T0 + 120)),
        ]
    assert [r.ok for r in results] == [True, True, True], results
    opened, rolled, verified = env.grafana.annotations.values()
    # The decision spans its breach (first breach 5 minutes before), in milliseconds.
    assert (opened.time, opened.time_end) == (int((T0 - 300) * 1000), int(T0 * 1000))
    assert verified.time == verified.time_end == int((T0 + 120) * 1000)
    assert opened.tags == [
        "rollback-watchdog",
        "rule:error-rate",
        "severity:critical",
        "event:opened",
        "target:worker",
        "target:frontend",
    ]
    assert "event:rolled_back" in rolled.tags
    assert "worker: v42-bad → v41-good" in rolled.text
    assert opened.text.startswith("🚨 [inc-20260801-error-rate] Incident opened: error-rate")
    assert (opened.dashboard_uid, opened.panel_id) == ("rollback-watchdog", 2)
    sent = env.grafana.requests[0]
    assert sent.headers["authorization"] == f"Bearer {TOKEN}"
    assert sent.headers["content-type"] == "application/json"


async def test_a_silence_is_a_region_cut_short_when_it_expires_early() -> None:
    async with grafana_env() as env:
        notifier = env.notifier()
        created = await notifier.silence(silence_event("created", T0))
        expired = await notifier.silence(silence_event("expired", T0 + 600))
        # A silence this process never annotated (made before a restart): a point.
        other = SilenceEvent("expired", "other", (), T0, T0 + 60, "bob", "", T0 + 30)
        point = await notifier.silence(other)
    assert [created.ok, expired.ok, point.ok] == [True, True, True], (created, expired, point)
    region, mark = env.grafana.annotations.values()
    assert (region.time, region.time_end) == (int(T0 * 1000), int((T0 + 600) * 1000))
    assert region.patches == [
        {"timeEnd": int((T0 + 600) * 1000), "text": region.text},
    ]
    assert "expired" in region.text
    # Tags name the rule an equality matcher names; a regex is only in the text.
    assert region.tags == [
        "rollback-watchdog",
        "silence",
        "event:silence_created",
        "rule:error-rate",
    ]
    assert mark.time == mark.time_end == int((T0 + 30) * 1000)
    assert "every action" in mark.text


async def test_refusals_are_results_that_never_show_the_token() -> None:
    async with grafana_env() as env:
        wrong = await env.notifier(token="glsa_wrong").send(event())
        env.grafana.fail_next(500, times=10)
        down = await env.notifier().send(event())
    assert (wrong.ok, down.ok) == (False, False)
    assert "HTTP 401" in wrong.detail
    assert "HTTP 500" in down.detail
    assert TOKEN not in wrong.detail + down.detail
    assert not env.grafana.annotations


async def test_dry_run_sends_nothing_and_shows_the_body_without_the_token() -> None:
    async with grafana_env() as env:
        result = await env.notifier().send(event(), dry_run=True)
    assert result.would
    assert result.request is not None
    assert result.request["body"]["time"] == int((T0 - 300) * 1000)
    assert TOKEN not in json.dumps(result.request)
    assert env.grafana.requests == []


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"time": int(T0), "timeEnd": int(T0), "tags": [], "text": "x"}, "in seconds"),
        ({"time": 1, "timeEnd": 2, "text": "x", "when": 3}, "unknown field(s) when"),
        ({"time": int(T0 * 1000), "timeEnd": int(T0 * 1000), "text": " "}, "text field"),
        ({"time": int(T0 * 1000), "timeEnd": int(T0 * 1000) - 1, "text": "x"}, "before time"),
        ({"time": int(T0 * 1000), "timeEnd": int(T0 * 1000), "text": "x", "tags": [1]}, "tags"),
    ],
)
async def test_the_stand_in_refuses_a_wrong_shape(body: dict[str, object], says: str) -> None:
    """The receiver is strict, so the tests above can fail on a wrong body."""
    async with grafana_env() as env:
        response = await env.http.post(
            f"{env.url}/api/annotations",
            json=body,
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
    assert response.status_code == 400
    assert says in response.json()["message"]


GRAFANA_NOTIFIER = """
  grafana: {{type: grafana, url: "{url}", tags: [rollback-watchdog, demo]}}
notify: [slack, status, grafana]"""


async def test_an_incident_and_a_silence_of_the_world_are_annotated(tmp_path: Path) -> None:
    """Breach, rollback, verification, resolution and a silence added and expired, as
    the running watchdog tells them: every one is an annotation a dashboard can query
    by tag."""
    receiver = GrafanaReceiver(TOKEN)
    async with (
        serve(receiver) as srv,
        world(tmp_path, env={"WATCHDOG_SECRETS__GRAFANA_TOKEN": TOKEN}) as w,
    ):
        rules = tmp_path / "rules.yaml"
        text = rules.read_text()
        rules.write_text(
            text.replace("notify: [slack, status]", GRAFANA_NOTIFIER.format(url=srv.url))
        )
        assert await w.runtime.reload(), w.runtime.watchdog.last_reload_error
        await calm(w)
        await breach(w)
        await recover(w, samples=60)
        record = await w.runtime.silences.add(
            [parse_matcher("rule=error-rate")], duration_s=3600, created_by="alice", comment="c"
        )
        await w.settle()
        await w.runtime.silences.expire(record.id)
        await w.settle()
    steps = [t for a in receiver.annotations.values() for t in a.tags if t.startswith("event:")]
    assert steps == [
        "event:opened",
        "event:rolling_back",
        "event:rolled_back",
        "event:verified",
        "event:resolved",
        "event:silence_created",
    ]
    for annotation in receiver.tagged("event:opened"):
        assert {"demo", "rule:error-rate", "target:worker", "target:frontend"} <= set(
            annotation.tags
        )
    (silence,) = receiver.tagged("silence")
    assert silence.patches, "an early expiry cuts the region short"
    assert silence.time_end < silence.time + 3_600_000


async def test_only_an_early_expiry_is_told_and_an_ended_silence_is_forgotten(
    tmp_path: Path,
) -> None:
    """Expiring a silence that already ran its course tells nobody; one the notifier
    annotated and that ended on its own is no longer held (no PATCH to an old region)."""
    receiver = GrafanaReceiver(TOKEN)
    async with (
        serve(receiver) as srv,
        world(tmp_path, env={"WATCHDOG_SECRETS__GRAFANA_TOKEN": TOKEN}) as w,
    ):
        rules = tmp_path / "rules.yaml"
        text = rules.read_text()
        rules.write_text(
            text.replace("notify: [slack, status]", GRAFANA_NOTIFIER.format(url=srv.url))
        )
        assert await w.runtime.reload(), w.runtime.watchdog.last_reload_error
        record = await w.runtime.silences.add(
            [parse_matcher("target=worker")], duration_s=600, created_by="bob", comment="c"
        )
        await w.settle()
        w.clock.set(w.now + 601)
        await w.runtime.silences.expire(record.id)
        await w.settle()
        (notifier,) = [
            n for n in w.runtime.playbook.notifiers.values() if isinstance(n, GrafanaNotifier)
        ]
        later = await notifier.silence(silence_event("created", w.now))
    (region, _) = receiver.annotations.values()
    assert "target:worker" in region.tags
    assert region.patches == []
    assert [r.method for r in receiver.requests] == ["POST", "POST"]
    assert later.ok
    assert list(notifier._silences) == ["5f0c2a9e-1111-2222-3333-444455556666"]
