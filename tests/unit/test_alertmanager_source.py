"""The ``alertmanager`` source: a webhook notification is the state of its alert group;
a firing alert named by a signal (and carrying its labels) is a breaching sample,
resolved is not; no notification, or none for ``staleness``, is no data; a payload
off the v4 shape is refused naming the field. And the rules file's checks of its
signals."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.factories import ruleset
from tests.helpers import InstantClock
from watchdog.errors import RuleError
from watchdog.model import SampleKind
from watchdog.rules.load import ResolvedSignal
from watchdog.rules.model import AlertmanagerSourceSpec, SignalSpec
from watchdog.sources.alertmanager import AlertmanagerSource, PayloadError, parse
from watchdog.sources.base import SourceDeps

SPEC = AlertmanagerSourceSpec(type="alertmanager", staleness=600.0)


def signal(name: str = "checkout", **labels: str) -> ResolvedSignal:
    spec = SignalSpec(source="am", alertname="CheckoutErrors", labels=labels)
    return ResolvedSignal(name, "am", SPEC, spec, "number", 15.0)


def alert(status: str = "firing", **labels: str) -> dict[str, Any]:
    return {
        "status": status,
        "labels": {"alertname": "CheckoutErrors", **labels},
        "annotations": {"summary": "checkout errors"},
        "startsAt": "2026-12-03T06:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus:9090/graph",
        "fingerprint": "1a30ba71cca2921f",
    }


def notification(*alerts: dict[str, Any], group: str = "g1", truncated: int = 0) -> Any:
    status = "firing" if any(a["status"] == "firing" for a in alerts) else "resolved"
    return parse(
        {
            "receiver": "watchdog",
            "status": status,
            "alerts": list(alerts),
            "groupLabels": {"alertname": "CheckoutErrors"},
            "commonLabels": {},
            "commonAnnotations": {},
            "externalURL": "http://alertmanager:9093",
            "version": "4",
            "groupKey": f'{{}}:{{alertname="CheckoutErrors", g="{group}"}}',
            "truncatedAlerts": truncated,
        }
    )


@pytest.fixture
async def source() -> Any:
    clock = InstantClock()
    async with httpx.AsyncClient() as http:
        yield AlertmanagerSource("am", SPEC, SourceDeps(http=http, clock=clock)), clock


async def value(source: AlertmanagerSource, sig: ResolvedSignal | None = None) -> Any:
    sig = sig or signal(service="checkout")
    return (await source.sample([sig], 0.0))[sig.name]


async def test_firing_breaches_resolved_does_not(source: Any) -> None:
    am, _ = source
    am.receive(notification(alert(service="checkout")))
    assert (await value(am)).value == 1.0
    am.receive(notification(alert("resolved", service="checkout")))
    resolved = await value(am)
    assert resolved.kind is SampleKind.VALUE
    assert resolved.value == 0.0


async def test_labels_and_alertname_must_match(source: Any) -> None:
    am, _ = source
    other = alert(service="search")
    renamed = {**alert(service="checkout"), "labels": {"alertname": "Other", "service": "checkout"}}
    am.receive(notification(other, renamed))
    assert (await value(am)).value == 0.0
    # Without labels on the signal, any CheckoutErrors counts.
    assert (await value(am, signal("any"))).value == 1.0


async def test_the_latest_notification_of_a_group_is_its_state(source: Any) -> None:
    am, _ = source
    am.receive(notification(alert(service="checkout", pod="a"), alert(service="checkout", pod="b")))
    am.receive(notification(alert(service="checkout", pod="c"), group="g2"))
    assert (await value(am)).value == 3.0
    # Group g1's next notification no longer carries pod a: it resolved and was told.
    am.receive(notification(alert(service="checkout", pod="b")))
    assert (await value(am)).value == 2.0


async def test_no_notification_or_a_silent_alertmanager_is_no_data(source: Any) -> None:
    am, clock = source
    first = await value(am)
    assert first.kind is SampleKind.NO_DATA
    assert "no Alertmanager notification yet" in first.reason
    am.receive(notification(alert(service="checkout")))
    await clock.sleep(601)
    stale = await value(am)
    assert stale.kind is SampleKind.NO_DATA
    assert "staleness 10m" in stale.reason
    am.receive(notification(alert("resolved", service="checkout"), group="heartbeat"))
    assert (await value(am)).value == 1.0  # any notification says Alertmanager is alive


async def test_a_truncated_group_is_no_data_unless_a_match_is_seen(source: Any) -> None:
    am, _ = source
    am.receive(notification(alert(service="search"), truncated=40))
    hidden = await value(am)
    assert hidden.kind is SampleKind.NO_DATA
    assert "max_alerts" in hidden.reason
    am.receive(notification(alert(service="checkout"), truncated=40))
    assert (await value(am)).value == 1.0


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"version": "3"}, "version: Input should be '4'"),
        ({"groupKey": ""}, "groupKey: String should have at least 1 character"),
        ({"alerts": "none"}, "alerts: Input should be a valid list"),
        ({"alerts": [{**alert(), "status": "burning"}]}, "alerts[0].status: Input should be"),
        ({"alerts": [{**alert(), "labels": {"team": 7}}]}, "alerts[0].labels.team: Input should"),
        ({"alerts": [{"status": "firing", "labels": {}}]}, "alerts[0].startsAt: Field required"),
        ({"truncatedAlerts": -1}, "truncatedAlerts: Input should be greater than or equal to 0"),
    ],
)
def test_a_payload_off_the_v4_shape_names_the_field(change: dict[str, Any], says: str) -> None:
    body = {
        "version": "4",
        "groupKey": "{}:{}",
        "status": "firing",
        "receiver": "watchdog",
        "alerts": [alert()],
        **change,
    }
    with pytest.raises(PayloadError) as caught:
        parse(body)
    assert str(caught.value).startswith(says)
    assert 'version "4"' in str(caught.value)


def test_a_payload_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(PayloadError, match=r"^body: "):
        parse([1, 2])


AM_RULES = """
version: 1
sources:
  am: {type: alertmanager}
signals:
  checkout: {source: am, alertname: CheckoutErrors, labels: {service: checkout}}
rules:
  - {name: checkout, signal: checkout, above: 0, severity: critical}
"""


def test_a_rules_file_with_an_alertmanager_source_loads(tmp_path: Path) -> None:
    loaded = ruleset(tmp_path, "", base=AM_RULES)
    resolved = loaded.signals["checkout"]
    assert resolved.unit == "number"
    assert resolved.spec.alertname == "CheckoutErrors"
    assert loaded.sources["am"] == AlertmanagerSourceSpec(type="alertmanager")


@pytest.mark.parametrize(
    ("signal_yaml", "says"),
    [
        ("{source: am}", "signals.checkout.alertname: missing required key"),
        ("{source: am, alertname: X, query: up}", "signals.checkout.query: does not apply"),
        ("{source: am, alertname: X, unit: ratio}", "a count of firing alerts is a number"),
    ],
)
def test_an_alertmanager_signal_is_checked(tmp_path: Path, signal_yaml: str, says: str) -> None:
    text = AM_RULES.replace(
        "checkout: {source: am, alertname: CheckoutErrors, labels: {service: checkout}}",
        f"checkout: {signal_yaml}",
    )
    with pytest.raises(RuleError) as caught:
        ruleset(tmp_path, "", base=text)
    assert any(says in problem for problem in caught.value.problems), caught.value.problems


def test_alertname_belongs_to_alertmanager_signals_only(tmp_path: Path) -> None:
    text = """
version: 1
sources:
  prom: {type: prometheus, url: "http://127.0.0.1:9"}
signals:
  up: {source: prom, query: up, alertname: X}
rules:
  - {name: up, signal: up, below: 1, severity: critical}
"""
    with pytest.raises(RuleError) as caught:
        ruleset(tmp_path, "", base=text)
    assert any("signals.up.alertname: does not apply" in p for p in caught.value.problems)


async def test_a_large_group_fits_the_webhook_while_other_routes_keep_their_limit() -> None:
    """Alertmanager sends a group whole: 300 alerts are ~150 KB, past the control API's
    64 KiB (the shipped route capped groups at 40 alerts for it)."""
    from watchdog.api import alertmanager as webhook
    from watchdog.http.server import Request, Response, Router

    clock = InstantClock()
    async with httpx.AsyncClient() as http:
        am = AlertmanagerSource("am", SPEC, SourceDeps(http=http, clock=clock))
        router = Router(max_body_bytes=64 * 1024)
        webhook.install(router, {"am": am})

        async def other(_: Request, __: dict[str, str]) -> Response:
            return Response.json({"ok": True})

        router.add("POST", "/api/v1/other", other)
        many = [alert(service="checkout", pod=f"pod-{i:04d}" + "x" * 300) for i in range(300)]
        body = {
            "receiver": "watchdog",
            "status": "firing",
            "alerts": many,
            "groupLabels": {"alertname": "CheckoutErrors"},
            "commonLabels": {},
            "commonAnnotations": {},
            "externalURL": "http://alertmanager:9093",
            "version": "4",
            "groupKey": '{}:{alertname="CheckoutErrors"}',
            "truncatedAlerts": 0,
        }
        transport = httpx.ASGITransport(app=router)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as api:
            answer = await api.post("/api/v1/alertmanager/am", json=body)
            assert len(answer.request.content) > 100 * 1024
            assert answer.status_code == 200, answer.text
            assert answer.json()["alerts"] == 300
            refused = await api.post("/api/v1/other", json=body)
            assert refused.status_code == 413
        assert (await am.sample([signal(service="checkout")], 0.0))["checkout"].value == 300
