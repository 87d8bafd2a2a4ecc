"""The local Tail Worker (``fakes.cloudflare_tail.TailFeed``): one TraceItem per
invocation shaped as Cloudflare hands it to ``tail()``, due after its delay and a
seeded jitter, nothing while down, posted in one JSON array to the watchdog's real
route on a loopback socket; its slim form equals ``deploy/tail-worker``'s."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers import T0, InstantClock
from watchdog.api.tail import install
from watchdog.demo.fakes.cloudflare import FakeCloudflare
from watchdog.demo.fakes.cloudflare_tail import TailFeed, slim
from watchdog.demo.fakes.cloudflare_telemetry import Behaviour
from watchdog.http.server import Request, Response, Router, serve
from watchdog.model import SampleKind
from watchdog.rules.load import ResolvedSignal
from watchdog.rules.model import CloudflareTailSourceSpec, SignalSpec
from watchdog.sources.base import SourceDeps
from watchdog.sources.cloudflare_tail import CloudflareTailSource, parse_events

TAIL_WORKER = Path(__file__).resolve().parents[2] / "deploy" / "tail-worker" / "index.js"


def _split(fake: FakeCloudflare, pct_new: float = 10) -> tuple[str, str]:
    old = fake.publish("api", "old")
    new = fake.upload_version("api", "new")
    fake.deploy("api", [(new, pct_new), (old, 100 - pct_new)])
    return old, new


class Posts:
    """Records each POST body and answers like the route does."""

    def __init__(self, status: int = 200) -> None:
        self.bodies: list[list[dict[str, Any]]] = []
        self.status = status

    async def __call__(self, body: bytes) -> httpx.Response:
        self.bodies.append(json.loads(body))
        return httpx.Response(self.status, text="{}")


def test_each_invocation_is_a_trace_item_shaped_as_cloudflares() -> None:
    fake = FakeCloudflare(clock=InstantClock())
    old, new = _split(fake, 50)
    feed = fake.attach_tail("api", delay_s=0.0, jitter_s=0.0)
    edge = fake.edge("api")
    edge.behaviours = {new: Behaviour(error_ratio=1.0, wall_ms=120.0)}
    answers = [edge.handle(T0 + 0.25, path="/login", method="POST") for _ in range(20)]
    items = feed.due(T0 + 1)
    assert len(items) == 20 == feed.recorded
    by_version = {status_version[1] for status_version in answers}
    assert by_version == {old, new}
    ok = next(i for i in items if i["scriptVersion"]["id"] == old)
    assert ok == {
        "scriptName": "api",
        "scriptVersion": {"id": old},
        "outcome": "ok",
        "eventTimestamp": round((T0 + 0.25) * 1000),
        "wallTime": 40.0,
        "cpuTime": 4,
        "event": {
            "request": {"url": "https://api.example.com/login", "method": "POST", "headers": {}},
            "response": {"status": 200},
        },
        "logs": [],
        "exceptions": [],
        "diagnosticsChannelEvents": [],
        "executionModel": "stateless",
        "truncated": False,
    }
    thrown = next(i for i in items if i["scriptVersion"]["id"] == new)
    assert thrown["outcome"] == "exception"
    assert thrown["wallTime"] == 120.0
    assert "response" not in thrown["event"]  # a throw answers nothing (the docs' example)
    assert [e["name"] for e in thrown["exceptions"]] == ["Error"]
    assert parse_events(items)  # the watchdog's parser takes them as they are


def test_simulate_hands_every_invocation_to_the_feed_and_nothing_else_changes() -> None:
    def run(tail: bool) -> tuple[dict[str, tuple[int, int]], list[Any], TailFeed | None]:
        fake = FakeCloudflare(clock=InstantClock(), seed=3)
        _old, new = _split(fake)
        feed = fake.attach_tail("api", delay_s=0.0, jitter_s=0.0) if tail else None
        edge = fake.edge("api")
        edge.behaviours = {new: Behaviour(error_ratio=0.3, wall_sigma=0.5)}
        served = edge.simulate(T0, 500)
        return served, fake.telemetry.rows, feed

    served, rows, feed = run(tail=True)
    served_plain, rows_plain, _ = run(tail=False)
    assert (served, rows) == (served_plain, rows_plain)  # same draws with or without it
    assert feed is not None
    items = feed.due(T0)
    for version, (errors, n) in served.items():
        mine = [i for i in items if i["scriptVersion"]["id"] == version]
        assert len(mine) == n
        assert sum(i["outcome"] == "exception" for i in mine) == errors
    walls = sorted(i["wallTime"] for i in items)
    assert walls == sorted(r.wall_ms for r in rows for _ in range(r.count))


def test_an_edge_made_before_the_tail_is_attached_feeds_it() -> None:
    fake = FakeCloudflare(clock=InstantClock())
    _split(fake)
    edge = fake.edge("api")
    feed = fake.attach_tail("api", delay_s=0.0, jitter_s=0.0)
    edge.simulate(T0, 7)
    assert feed.waiting == 7
    other = FakeCloudflare(clock=InstantClock())
    _split(other)
    assert other.edge("api").tail is None  # no Tail Worker: the front door feeds nothing


async def test_items_become_due_after_their_delay_and_jitter() -> None:
    feed = TailFeed("api", delay_s=10.0, jitter_s=1.0, seed=5)
    for k in range(200):
        feed.record("v1", "ok", T0 + k * 0.01, 40.0)
    posts = Posts()
    assert await feed.deliver(T0 + 9.99, posts) == 0
    assert posts.bodies == []  # nothing due: no POST at all
    sent = await feed.deliver(T0 + 10.5, posts)
    assert 0 < sent < 200
    assert all(T0 * 1000 <= i["eventTimestamp"] <= (T0 + 0.5) * 1000 for i in posts.bodies[0])
    assert await feed.deliver(T0 + 13.0, posts) == 200 - sent
    assert len(posts.bodies) == 2
    assert feed.delivered == 200
    assert feed.waiting == 0
    exact = TailFeed("api", delay_s=2.0, jitter_s=0.0)
    exact.record("v1", "ok", T0, 1.0)
    assert exact.due(T0 + 1.999) == []
    assert len(exact.due(T0 + 2.0)) == 1


async def test_the_jitter_is_seeded() -> None:
    def dues(seed: int) -> list[int]:
        feed = TailFeed("api", delay_s=0.0, jitter_s=1.0, seed=seed)
        for k in range(50):
            feed.record("v1", "ok", T0, float(k))
        return [int(i["wallTime"]) for i in feed.due(T0 + 1.0)]  # in due order

    assert dues(1) == dues(1)
    assert dues(1) != dues(2)
    assert sorted(dues(1)) == list(range(50))


async def test_a_feed_that_is_down_delivers_nothing() -> None:
    feed = TailFeed("api", delay_s=5.0, jitter_s=0.0)
    feed.record("v1", "ok", T0, 40.0)  # queued before it went down
    feed.down = True
    feed.record("v1", "ok", T0 + 1, 40.0)
    posts = Posts()
    assert await feed.deliver(T0 + 60, posts) == 0
    assert posts.bodies == []
    assert feed.waiting == 0
    assert (feed.recorded, feed.dropped, feed.delivered) == (2, 2, 0)


async def test_a_post_that_is_not_accepted_fails_loudly() -> None:
    feed = TailFeed("api", delay_s=0.0, jitter_s=0.0)
    feed.record("v1", "ok", T0, 40.0)
    with pytest.raises(AssertionError, match="tail POST answered 404"):
        await feed.deliver(T0, Posts(404))


def test_negative_delays_are_refused() -> None:
    with pytest.raises(ValueError, match="delay_s and jitter_s"):
        TailFeed("api", delay_s=-1.0)


async def test_delivered_through_the_real_route_the_source_counts_each_version() -> None:
    clock = InstantClock(T0)
    fake = FakeCloudflare(clock=clock)
    old, new = _split(fake)
    feed = fake.attach_tail("api", delay_s=2.0, jitter_s=1.0, seed=9, slim=True)
    edge = fake.edge("api")
    edge.behaviours = {new: Behaviour(error_ratio=0.5)}
    spec = CloudflareTailSourceSpec(type="cloudflare-tail", script="api")
    signal = ResolvedSignal(
        "edge.versions", "edge", spec, SignalSpec(source="edge", field="versions"), "ratio", 5.0
    )
    served: dict[str, list[int]] = {}
    async with httpx.AsyncClient() as http:
        deps = SourceDeps(http=http, clock=clock)
        source = CloudflareTailSource("edge", spec, deps)
        api = Router()
        install(api, deps.inboxes)
        async with serve(api) as srv:

            async def post(body: bytes) -> httpx.Response:
                headers = {"content-type": "application/json"}
                return await http.post(srv.url + "/api/v1/tail/edge", content=body, headers=headers)

            for second in range(30):
                for version, (errors, n) in edge.simulate(T0 + second, 10).items():
                    served.setdefault(version, [0, 0])
                    served[version][0] += errors
                    served[version][1] += n
                await feed.deliver(T0 + second, post)
            await clock.sleep(40.0)
            await feed.deliver(clock.now(), post)
    sample = (await source.sample([signal], clock.now()))[signal.name]
    assert sample.kind is SampleKind.VALUE
    counted = {v.version: [int(v.errors), int(v.requests)] for v in sample.versions}
    assert counted == served
    assert set(counted) == {old, new}
    assert feed.delivered == 300
    assert feed.posts <= 31


@pytest.mark.skipif(shutil.which("node") is None, reason="needs Node.js to run the Tail Worker")
def test_slim_is_what_the_tail_worker_forwards() -> None:
    feed = TailFeed("api", delay_s=0.0, jitter_s=0.0)
    feed.record("v1", "ok", T0, 40.0, path="/x")
    feed.record("v2", "exception", T0 + 0.5, 7.0)
    items = feed.due(T0 + 1)
    items.append({"scriptName": "api", "outcome": "ok", "eventTimestamp": None})  # old runtime
    script = (
        f"import {{ slim }} from {json.dumps(TAIL_WORKER.as_uri())};\n"
        "let data = '';\n"
        "process.stdin.on('data', (c) => (data += c));\n"
        "process.stdin.on('end', () => console.log(JSON.stringify(JSON.parse(data).map(slim))));\n"
    )
    done = subprocess.run(
        ["node", "--input-type=module", "-e", script],
        input=json.dumps(items),
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    assert json.loads(done.stdout) == [slim(i) for i in items]


async def test_another_scripts_events_do_not_hide_a_detached_tail_worker() -> None:
    """One Tail Worker (deploy/tail-worker) consumes two Workers and posts every event to
    the source's URL, which counts only ``api``'s. ``api`` loses its Tail Worker (a
    version deployed without ``tail_consumers``): nothing of ``api`` is heard again."""
    clock = InstantClock(T0)
    fake = FakeCloudflare(clock=clock)
    _split(fake)
    fake.publish("web", "web")
    api_feed = fake.attach_tail("api", delay_s=1.0, jitter_s=0.0)
    web_feed = fake.attach_tail("web", delay_s=1.0, jitter_s=0.0)
    api, web = fake.edge("api"), fake.edge("web")
    spec = CloudflareTailSourceSpec(type="cloudflare-tail", script="api", staleness=60.0)
    signal = ResolvedSignal(
        "edge.versions", "edge", spec, SignalSpec(source="edge", field="versions"), "ratio", 5.0
    )
    async with httpx.AsyncClient() as http:
        deps = SourceDeps(http=http, clock=clock)
        source = CloudflareTailSource("edge", spec, deps)
        router = Router()
        install(router, deps.inboxes)
        async with serve(router) as srv:

            async def post(body: bytes) -> httpx.Response:
                headers = {"content-type": "application/json"}
                return await http.post(srv.url + "/api/v1/tail/edge", content=body, headers=headers)

            for second in range(300):
                if second:
                    await clock.sleep(1.0)
                api_feed.down = second >= 10  # detached after 10 s
                api.simulate(clock.now(), 10)
                web.simulate(clock.now(), 10)
                await api_feed.deliver(clock.now(), post)
                await web_feed.deliver(clock.now(), post)
    sample = (await source.sample([signal], clock.now()))[signal.name]
    assert api_feed.dropped > 2000  # nothing of api for 290 s, web heard every second
    assert sample.kind is SampleKind.ERROR  # expected: blind after the 60 s staleness


HELD = """
import worker from {worker};
const env = {{ WATCHDOG_URLS: process.argv[1], WATCHDOG_FLUSH_MS: "1000" }};
const pending = [];
const ctx = {{ waitUntil: (promise) => pending.push(promise) }};
const item = (outcome) => ({{ scriptName: "api", scriptVersion: {{ id: "v2" }}, outcome }});
await worker.tail([item("ok")], env, ctx);  // a quiet isolate: posted at once
await worker.tail([item("exception")], env, ctx);  // within the flush interval: held
await Promise.all(pending);  // all the work the runtime waits for (ctx.waitUntil)
"""


@pytest.mark.skipif(shutil.which("node") is None, reason="needs Node.js to run the Tail Worker")
async def test_an_event_held_for_the_next_flush_is_posted_without_another_call() -> None:
    """Two invocations within the flush interval, then none (sparse traffic on this
    isolate): once every promise handed to ``waitUntil`` has settled, both events must
    have reached the watchdog."""
    received: list[Any] = []
    router = Router()

    async def take(request: Request, params: dict[str, str]) -> Response:
        received.extend(request.json())
        return Response.json({"status": "accepted"})

    router.add("POST", "/api/v1/tail/edge", take)
    script = HELD.format(worker=json.dumps(TAIL_WORKER.as_uri()))
    async with serve(router) as srv:
        proc = await asyncio.create_subprocess_exec(
            "node", "--input-type=module", "-e", script, srv.url + "/api/v1/tail/edge"
        )
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    assert [e["outcome"] for e in received] == ["ok", "exception"]
