"""Histories, not paths, for the ``cloudflare-tail`` source (issue 16): a hypothesis
state machine interleaves a Tail Worker's POSTs through the real route (this script's
events and another's, versioned or not, with or without a wall time, now and then a
malformed batch), virtual time, reads (with a latency bound or without) and reloads that
rebuild the source, against a model of what the source must hold.

Invariants, after every move: a read while the script is heard returns exactly the
events of the script posted since the last read (none lost, none twice), per version,
with errors and slow counts; a read with the script unheard for ``staleness`` (or never
heard since the build) is an error and takes nothing; a malformed batch is a 400 that
counts nothing; the route's receipt says what it counted and ignored; slow counts are
unknown, never zero, when an event came without its wall time.

Profiles: ``ci`` (CI=true) 60 derandomized examples of 25 steps (a few seconds);
``dev`` 60 random ones; ``long`` 2,000."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import httpx
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from tests.helpers import InstantClock
from tests.model.profiles import history_settings
from watchdog.api import tail as tail_api
from watchdog.http.server import Router
from watchdog.model import SampleKind
from watchdog.rules.load import ResolvedSignal
from watchdog.rules.model import CloudflareTailSourceSpec, SignalSpec
from watchdog.sources.base import SourceDeps
from watchdog.sources.cloudflare_tail import CloudflareTailSource

STALENESS = 60.0
BOUND_S = 0.3
EVENTS = st.lists(
    st.fixed_dictionaries(
        {
            "script": st.sampled_from(["api", "api", "api", "web"]),
            "version": st.sampled_from(["v1", "v2", "v3", None]),
            "outcome": st.sampled_from(["ok", "ok", "exception", "canceled", "exceededCpu"]),
            "wall": st.one_of(st.none(), st.integers(0, 900)),
        }
    ),
    max_size=12,
)


@dataclass
class Tally:
    requests: int = 0
    errors: int = 0
    slow: int = 0


@dataclass
class Expected:
    """What the source must hold since its last read."""

    pending: dict[str, Tally] = field(default_factory=dict)
    walls_known: bool = True
    heard_at: float | None = None


def trace_item(e: dict[str, Any]) -> dict[str, Any]:
    """An event as deploy/tail-worker forwards it."""
    return {
        "scriptName": e["script"],
        "scriptVersion": {"id": e["version"]} if e["version"] else None,
        "outcome": e["outcome"],
        "eventTimestamp": 1_790_000_000_000,
        "wallTime": e["wall"],
        "event": {"response": {"status": 200}},
    }


class TailHistories(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.clock = InstantClock()
        self.http = httpx.AsyncClient()
        self.deps = SourceDeps(http=self.http, clock=self.clock)
        self.spec = CloudflareTailSourceSpec(
            type="cloudflare-tail", script="api", staleness=STALENESS
        )
        self.source = CloudflareTailSource("edge", self.spec, self.deps)
        router = Router()
        tail_api.install(router, self.deps.inboxes)
        transport = httpx.ASGITransport(app=router)
        self.api = httpx.AsyncClient(transport=transport, base_url="http://localhost")
        self.expected = Expected()

    def teardown(self) -> None:
        self.loop.run_until_complete(self.api.aclose())
        self.loop.run_until_complete(self.http.aclose())
        self.loop.close()

    def _post(self, body: Any) -> httpx.Response:
        return self.loop.run_until_complete(self.api.post("/api/v1/tail/edge", json=body))

    @rule(events=EVENTS)
    def post(self, events: list[dict[str, Any]]) -> None:
        answer = self._post([trace_item(e) for e in events])
        assert answer.status_code == 200, answer.text
        ours = [e for e in events if e["script"] == "api"]
        counted = [e for e in ours if e["version"] is not None]
        receipt = answer.json()
        assert receipt["events"] == len(events)
        assert receipt["counted"] == len(counted)
        assert sum(receipt["ignored"].values()) == len(events) - len(counted)
        for e in counted:
            tally = self.expected.pending.setdefault(e["version"], Tally())
            tally.requests += 1
            tally.errors += e["outcome"] not in ("ok", "canceled")
            if e["wall"] is None:
                self.expected.walls_known = False
            else:
                tally.slow += e["wall"] > BOUND_S * 1000
        if ours:
            self.expected.heard_at = self.clock.now()

    @rule(events=EVENTS, bad=st.sampled_from(["outcome", "wallTime", "scriptVersion", "item"]))
    def post_malformed(self, events: list[dict[str, Any]], bad: str) -> None:
        """One wrong item anywhere: the whole batch is refused, nothing counted or heard."""
        items: list[Any] = [trace_item(e) for e in events]
        wrong: Any = {"outcome": 7, "wallTime": -1, "scriptVersion": "v1"}.get(bad)
        one = {"script": "api", "version": "v1", "outcome": "ok", "wall": 1}
        spoiled = "nope" if bad == "item" else {**trace_item(one), bad: wrong}
        at = len(items) // 2
        items.insert(at, spoiled)
        answer = self._post(items)
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"].startswith(f"[{at}]")

    @rule(seconds=st.sampled_from([1.0, 5.0, 30.0, 59.0, 61.0, 150.0]))
    def advance(self, seconds: float) -> None:
        self.loop.run_until_complete(self.clock.sleep(seconds))

    @rule(bounded=st.booleans())
    def read(self, bounded: bool) -> None:
        spec = SignalSpec(source="edge", field="versions", slower_than=BOUND_S if bounded else None)
        signal = ResolvedSignal("edge.versions", "edge", self.spec, spec, "ratio", 5.0)
        now = self.clock.now()
        sample = self.loop.run_until_complete(self.source.sample([signal], now))[signal.name]
        heard = self.expected.heard_at
        if heard is None or now - heard > STALENESS:
            assert sample.kind is SampleKind.ERROR, sample
            return  # nothing taken: what is pending stays for a read once heard again
        assert sample.kind is SampleKind.VALUE, sample
        assert sample.fresh_to == now
        got = {v.version: v for v in sample.versions}
        assert set(got) == set(self.expected.pending)
        for version, tally in self.expected.pending.items():
            counts = got[version]
            assert (counts.requests, counts.errors, counts.scale) == (
                tally.requests,
                tally.errors,
                1.0,
            )
            if bounded and self.expected.walls_known:
                assert (counts.slow, counts.slow_over_s) == (tally.slow, BOUND_S)
            else:
                assert counts.slow is None
        self.expected.pending, self.expected.walls_known = {}, True

    @rule()
    def reload(self) -> None:
        """A reload with an edited source: a new one takes the name, the old one's
        pending events and hearing go with it."""
        self.loop.run_until_complete(self.source.aclose())
        self.spec = CloudflareTailSourceSpec(
            type="cloudflare-tail", script="api", staleness=STALENESS
        )
        self.source = CloudflareTailSource("edge", self.spec, self.deps)
        self.expected = Expected()

    @invariant()
    def the_route_feeds_the_running_source(self) -> None:
        assert self.deps.inboxes["edge"] is self.source
        missing = self.loop.run_until_complete(self.api.post("/api/v1/tail/other", json=[]))
        assert missing.status_code == 404


TailHistories.TestCase.settings = history_settings("tail-", ci=60, dev=60, long=2000, steps=25)
test_tail_histories = TailHistories.TestCase
