"""The ``cloudflare-tail`` source: a Tail Worker's events counted per version between
two reads; other scripts' and unversioned events ignored and said so; nothing heard for
``staleness`` is an error (a canary goes blind); a body off the TraceItem shape refused
naming the place; slow counts for a latency canary's bound; memory bounded. And the
rules file's checks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.factories import ruleset
from tests.helpers import InstantClock
from watchdog.core.engine import Engine
from watchdog.core.evaluator import State
from watchdog.errors import RuleError
from watchdog.model import SampleKind, Split
from watchdog.rules.load import ResolvedSignal
from watchdog.rules.model import CloudflareTailSourceSpec, SignalSpec
from watchdog.sources import cloudflare_tail
from watchdog.sources.base import SourceDeps
from watchdog.sources.cloudflare_tail import CloudflareTailSource, PayloadError, parse_events

SPEC = CloudflareTailSourceSpec(type="cloudflare-tail", script="api", staleness=60.0)


def signal(field: str = "versions", slower_than: float | None = None) -> ResolvedSignal:
    spec = SignalSpec(source="edge", field=field, slower_than=slower_than)
    return ResolvedSignal(f"edge.{field}", "edge", SPEC, spec, "ratio", 5.0)


def item(version: str | None = "v2", outcome: str = "ok", **more: Any) -> dict[str, Any]:
    """A TraceItem as Cloudflare hands it to tail() (the fields the watchdog reads and
    a few it does not)."""
    out: dict[str, Any] = {
        "scriptName": "api",
        "outcome": outcome,
        "eventTimestamp": 1_790_000_000_000,
        "wallTime": 40,
        "cpuTime": 2,
        "event": {"request": {"url": "https://api.example/x", "method": "GET"}},
        "logs": [],
        "exceptions": [],
        "executionModel": "stateless",
        "truncated": False,
    }
    if version is not None:
        out["scriptVersion"] = {"id": version, "tag": "", "message": ""}
    return {**out, **more}


@pytest.fixture
async def tail() -> Any:
    clock = InstantClock(1_790_000_000.0)
    async with httpx.AsyncClient() as http:
        yield CloudflareTailSource("edge", SPEC, SourceDeps(http=http, clock=clock)), clock


async def read(source: CloudflareTailSource, sig: ResolvedSignal | None = None) -> Any:
    sig = sig or signal()
    return (await source.sample([sig], source._clock.now()))[sig.name]


async def test_each_read_counts_what_arrived_since_the_last(tail: Any) -> None:
    source, clock = tail
    events = [item("v2", "exception"), item("v2"), item("v1"), item("v1", "canceled")]
    receipt = source.receive(parse_events(events))
    assert (receipt.counted, receipt.ignored) == (4, {})
    first = await read(source)
    assert first.kind is SampleKind.VALUE
    assert first.fresh_to == clock.now()
    counts = {v.version: (v.errors, v.requests, v.scale) for v in first.versions}
    assert counts == {"v1": (0.0, 2.0, 1.0), "v2": (1.0, 2.0, 1.0)}  # canceled: not an error
    assert (first.errors, first.requests) == (1.0, 4.0)
    await clock.sleep(5.0)
    again = await read(source)  # nothing new: no traffic, never the same events twice
    assert again.kind is SampleKind.VALUE
    assert again.versions == ()
    assert again.requests == 0.0


async def test_the_whole_script_fields(tail: Any) -> None:
    source, _ = tail
    source.receive(parse_events([item("v1", "exceededCpu"), item("v1"), item("v2")]))
    rate = signal("error_rate")
    requests = signal("requests")
    out = await source.sample([rate, requests], 0.0)
    assert out[rate.name].value == pytest.approx(1 / 3)
    assert out[requests.name].value == 3.0


async def test_other_scripts_and_unversioned_events_are_ignored_and_said(tail: Any) -> None:
    source, _ = tail
    receipt = source.receive(
        parse_events([item(scriptName="billing"), item(version=None), item(), item()])
    )
    assert receipt.counted == 2
    assert receipt.ignored == {
        "script 'billing' is not 'api'": 1,
        "no scriptVersion.id (compatibility date too old?)": 1,
    }


async def test_silence_is_an_error_never_no_traffic(tail: Any) -> None:
    source, clock = tail
    never = await read(source)
    assert never.kind is SampleKind.ERROR
    assert "no Tail Worker events yet for source edge" in never.reason
    assert "POST /api/v1/tail/edge" in never.reason
    source.receive(parse_events([item()]))
    await clock.sleep(60.0)
    assert (await read(source)).kind is SampleKind.VALUE  # at the staleness: still heard
    await clock.sleep(1.0)
    stale = await read(source)
    assert stale.kind is SampleKind.ERROR
    assert "no Tail Worker events for 1m1s (staleness 1m)" in stale.reason
    source.receive(parse_events([item("v1")]))  # heard again: evidence again
    assert (await read(source)).kind is SampleKind.VALUE


async def test_slow_counts_for_a_latency_canary_and_the_p95_of_ok_requests(tail: Any) -> None:
    source, _ = tail
    walls = [100, 200, 300, 400, 500, 600, 700, 800, 900, 1000]
    source.receive(parse_events([item("v2", wallTime=w) for w in walls]))
    source.receive(parse_events([item("v2", "exception", wallTime=5000)]))
    sample = await read(source, signal(slower_than=0.5))
    (v2,) = sample.versions
    assert (v2.slow, v2.slow_over_s) == (6.0, 0.5)  # over 500 ms, the exception too
    assert v2.p95_s == 1.0  # ok requests only


async def test_without_wall_times_slow_counts_are_unknown_never_zero(tail: Any) -> None:
    source, _ = tail
    source.receive(parse_events([item("v2"), item("v2", wallTime=None)]))
    (v2,) = (await read(source, signal(slower_than=0.5))).versions
    assert v2.slow is None
    assert v2.requests == 2.0  # the counts are still exact
    source.receive(parse_events([item("v2", wallTime=900)]))
    (v2,) = (await read(source, signal(slower_than=0.5))).versions  # the next read: known
    assert v2.slow == 1.0


async def test_memory_is_bounded(tail: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    source, _ = tail
    monkeypatch.setattr(cloudflare_tail, "MAX_VERSIONS", 2)
    monkeypatch.setattr(cloudflare_tail, "MAX_PENDING_WALLS", 2)
    receipt = source.receive(parse_events([item(f"v{i}") for i in range(3)] + [item("v0")]))
    assert receipt.ignored == {"more than 2 versions since the last read": 1}
    (v0, v1) = (await read(source, signal(slower_than=0.01))).versions
    assert (v0.requests, v1.requests) == (2.0, 1.0)
    assert v0.slow is None  # a wall time past the cap: the read's slow counts are unknown


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"events": []}, "body: expected a JSON array of Tail Worker events"),
        (["x"], "[0]: expected a TraceItem object, got str"),
        ([item(), {"scriptName": "api"}], "[1].outcome: expected a string"),
        ([item(scriptVersion="v2")], "[0].scriptVersion: expected an object with an id"),
        ([item(scriptVersion={"id": 7})], "[0].scriptVersion.id: expected a version id"),
        ([item(wallTime=-1)], "[0].wallTime: expected milliseconds"),
        ([item(wallTime=True)], "[0].wallTime: expected milliseconds"),
        ([item(scriptName=["api"])], "[0].scriptName: expected a string or null"),
    ],
)
def test_a_body_off_the_traceitem_shape_names_the_place(body: Any, says: str) -> None:
    with pytest.raises(PayloadError) as caught:
        parse_events(body)
    assert says in str(caught.value)


def test_too_many_events_in_one_post_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cloudflare_tail, "MAX_EVENTS_PER_POST", 2)
    with pytest.raises(PayloadError, match="3 events in one POST"):
        parse_events([item(), item(), item()])


async def test_the_route_counts_refuses_and_names_the_source() -> None:
    from watchdog.api import tail as tail_api
    from watchdog.http.server import Router

    clock = InstantClock()
    async with httpx.AsyncClient() as http:
        deps = SourceDeps(http=http, clock=clock)
        source = CloudflareTailSource("edge", SPEC, deps)
        router = Router()
        tail_api.install(router, deps.inboxes)
        transport = httpx.ASGITransport(app=router)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as api:
            ok = await api.post("/api/v1/tail/edge", json=[item(), item(scriptName="web")])
            assert ok.status_code == 200, ok.text
            assert ok.json() == {
                "status": "accepted",
                "source": "edge",
                "events": 2,
                "counted": 1,
                "ignored": {"script 'web' is not 'api'": 1},
            }
            bad = await api.post("/api/v1/tail/edge", json=[{**item(), "outcome": 3}])
            assert bad.status_code == 400
            assert "[0].outcome" in bad.text
            nan = await api.post(
                "/api/v1/tail/edge",
                content=b'[{"outcome": "ok", "wallTime": NaN}]',
                headers={"content-type": "application/json"},
            )
            assert nan.status_code == 400
            missing = await api.post("/api/v1/tail/other", json=[item()])
            assert missing.status_code == 404
            assert "no cloudflare-tail source 'other' in the rules (known: edge)" in missing.text
        assert (await read(source)).requests == 1.0
        await source.aclose()
        assert "edge" not in deps.inboxes


TAIL_RULES = """
version: 1
sources:
  edge: {type: cloudflare-tail, script: api, interval: 5s}
targets:
  worker: {type: cloudflare-worker, script: api}
rules:
  - name: canary
    signal: edge.versions
    canary: {min_effect: 3x, confidence: 99.9%, slower_than: 300ms}
    severity: critical
    rollback: [worker]
"""


def test_a_latency_canary_on_a_tail_source_loads(tmp_path: Path) -> None:
    loaded = ruleset(tmp_path, "", base=TAIL_RULES)
    assert loaded.signals["edge.versions"].spec.slower_than == 0.3
    assert loaded.signals["edge.versions"].interval == 5.0


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ("script: api, interval: 5s, delay: 1m", "sources.edge.delay"),
        ("interval: 5s", "sources.edge.script"),
        ("script: api, staleness: 0s", "sources.edge.staleness"),
    ],
)
def test_a_tail_source_is_checked(tmp_path: Path, change: str, says: str) -> None:
    text = TAIL_RULES.replace("script: api, interval: 5s}", f"{change}}}", 1)
    with pytest.raises(RuleError) as caught:
        ruleset(tmp_path, "", base=text)
    assert any(says in problem for problem in caught.value.problems), caught.value.problems


async def test_the_engine_rolls_back_a_failing_new_version_from_tail_events(
    tmp_path: Path, tail: Any
) -> None:
    """The real engine on what the source read: v2 at 10 % failing half its requests
    against v1's 0.2 % is a rollback within a minute of events; both alike never."""
    source, clock = tail
    loaded = ruleset(tmp_path, "", base=TAIL_RULES.replace(", slower_than: 300ms", ""))
    engine = Engine(loaded)
    split_at = clock.now()
    engine.split("worker", Split("worker", "dep", "v2", "v1", 10.0, split_at))
    sig = loaded.signals["edge.versions"]
    decided = None
    for second in range(120):
        await clock.sleep(1.0)
        # 10 requests a second: one on v2 (every other one fails), nine on v1.
        events = [item("v2", "exception" if second % 2 else "ok")]
        events += [
            item("v1", "exception" if second % 50 == 0 and i == 0 else "ok") for i in range(9)
        ]
        source.receive(parse_events(events))
        if second % 5 == 4:
            observed = engine.observe(sig.name, (await source.sample([sig], clock.now()))[sig.name])
            if observed.decisions:
                decided = observed.decisions[0]
                break
    assert decided is not None
    assert decided.kind.value == "rollback"
    assert decided.decided_at - split_at <= 60
    assert engine.states["canary"].state is State.FIRING


async def test_another_scripts_events_do_not_keep_the_source_heard(tail: Any) -> None:
    """One Tail Worker may consume several Workers: detached from ours, it still posts
    the others' events, and that must read as blind, never as no traffic."""
    source, clock = tail
    source.receive(parse_events([item()]))
    for _ in range(13):
        await clock.sleep(5.0)
        source.receive(parse_events([item(scriptName="web")]))
    stale = await read(source)
    assert stale.kind is SampleKind.ERROR
    assert "no Tail Worker events for 1m5s" in stale.reason
