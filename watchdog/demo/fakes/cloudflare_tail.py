"""A local stand-in for a Tail Worker attached to a Worker (``tail_consumers``) that
posts every invocation's ``TraceItem`` to the watchdog (``deploy/tail-worker``).

One item per invocation, shaped as ``tail(events)`` receives it
(``@cloudflare/workers-types``: ``TraceItem``, ``TraceItemFetchEventInfo``; the
example in workers/observability/tail-workers): ``scriptName``, ``scriptVersion.id``,
``outcome``, ``eventTimestamp`` (ms), ``wallTime`` and ``cpuTime`` (ms), ``event``
with the request's url and method and, when the Worker answered, the response's
status (an uncaught exception has no response, as in the docs' example),
``exceptions`` for an ``exception`` outcome, ``logs``, ``executionModel``,
``truncated``. The Tail Worker runs after the producer finishes and every invocation
reaches it (no sampling is documented); how long its POST takes to reach the
watchdog is not documented: ``delay_s`` plus a seeded jitter in ``[0, jitter_s]``
here. ``down`` drops everything (the Tail Worker detached, the watchdog unreachable).
With ``slim`` the feed posts what ``deploy/tail-worker`` posts (``slim``: only the
fields the watchdog counts), else the whole items.
"""

from __future__ import annotations

import heapq
import json
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

TraceItem = dict[str, Any]
CPU_SHARE = 0.1  # guess: a Worker mostly waits on I/O; cpuTime is a tenth of wallTime


class PostResponse(Protocol):
    """What the feed reads of an answer (an ``httpx.Response`` fits)."""

    @property
    def status_code(self) -> int: ...

    @property
    def text(self) -> str: ...


Post = Callable[[bytes], Awaitable[PostResponse]]


def trace_item(
    script: str,
    version: str,
    outcome: str,
    at: float,
    wall_ms: float,
    *,
    url: str,
    method: str = "GET",
    status: int | None = 200,
) -> TraceItem:
    """One invocation's ``TraceItem`` (``status`` None: no response, as after a throw)."""
    fetch: dict[str, Any] = {"request": {"url": url, "method": method, "headers": {}}}
    if status is not None:
        fetch["response"] = {"status": status}
    at_ms = round(at * 1000)
    exceptions = []
    if outcome == "exception":
        exceptions.append({"name": "Error", "message": "the new code threw", "timestamp": at_ms})
    return {
        "scriptName": script,
        "scriptVersion": {"id": version},
        "outcome": outcome,
        "eventTimestamp": at_ms,
        "wallTime": wall_ms,
        "cpuTime": round(wall_ms * CPU_SHARE),
        "event": fetch,
        "logs": [],
        "exceptions": exceptions,
        "diagnosticsChannelEvents": [],
        "executionModel": "stateless",
        "truncated": False,
    }


def slim(item: TraceItem) -> dict[str, Any]:
    """What ``deploy/tail-worker/index.js``'s ``slim`` keeps of an item (a unit test
    runs both on the same items)."""
    version = (item.get("scriptVersion") or {}).get("id")
    response = (item.get("event") or {}).get("response")
    wall = item.get("wallTime")
    return {
        "scriptName": item.get("scriptName"),
        "scriptVersion": {"id": version} if version else None,
        "outcome": item.get("outcome"),
        "eventTimestamp": item.get("eventTimestamp"),
        "wallTime": wall if isinstance(wall, int | float) and not isinstance(wall, bool) else None,
        "event": {"response": {"status": response["status"]}} if response else None,
    }


@dataclass
class TailFeed:
    """The Tail Worker of ``script``: each invocation's item waits until it is due,
    then ``deliver`` posts the due ones in one JSON array."""

    script: str
    delay_s: float = 2.0
    jitter_s: float = 1.0
    seed: int = 0
    down: bool = False
    slim: bool = False
    host: str = "https://api.example.com"
    recorded: int = 0
    delivered: int = 0
    dropped: int = 0
    posts: int = 0
    _queue: list[tuple[float, int, TraceItem]] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        if self.delay_s < 0 or self.jitter_s < 0:
            raise ValueError("TailFeed: delay_s and jitter_s must be >= 0")
        self._rng = random.Random(self.seed)

    def record(
        self,
        version: str,
        outcome: str,
        at: float,
        wall_ms: float,
        *,
        path: str = "/",
        method: str = "GET",
        status: int = 200,
    ) -> None:
        """One invocation at ``at`` (epoch s); dropped while ``down``."""
        self.recorded += 1
        if self.down:
            self.dropped += 1
            return
        answered = None if outcome == "exception" else status
        item = trace_item(
            self.script,
            version,
            outcome,
            at,
            wall_ms,
            url=self.host + path,
            method=method,
            status=answered,
        )
        due = at + self.delay_s + (self._rng.uniform(0.0, self.jitter_s) if self.jitter_s else 0.0)
        heapq.heappush(self._queue, (due, self.recorded, item))

    def due(self, now: float) -> list[TraceItem]:
        """Take the items due by ``now`` (in due order); while ``down`` they are lost."""
        out = []
        while self._queue and self._queue[0][0] <= now:
            out.append(heapq.heappop(self._queue)[2])
        if self.down:
            self.dropped += len(out)
            return []
        return out

    @property
    def waiting(self) -> int:
        return len(self._queue)

    async def deliver(self, now: float, post: Post) -> int:
        """POST the items due by ``now`` as one JSON array (nothing when none is due);
        the receiver must answer 200. Returns how many were posted."""
        items = self.due(now)
        if not items:
            return 0
        body = [slim(item) for item in items] if self.slim else items
        answer = await post(json.dumps(body, allow_nan=False).encode())
        assert answer.status_code == 200, f"tail POST answered {answer.status_code}: {answer.text}"
        self.posts += 1
        self.delivered += len(items)
        return len(items)
