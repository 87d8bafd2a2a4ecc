"""The shipped Tail Worker (``deploy/tail-worker/index.js``, run by Node as Cloudflare
runs a Tail Worker) feeding the real daemon (``python -m watchdog run``) with the
README's example rules (``rules/examples/canary-tail.yaml``), the Worker's split in the
local Cloudflare API: a new version failing at 10 % is rolled back to 100 % of the old
one from the Tail Worker's events alone, seconds after the split; a wrong token is
refused and the Tail Worker says so. Real seconds: the example reads every 5 s."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import shutil
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.daemon_proc import DaemonProc
from watchdog.demo.fakes.cloudflare import FakeCloudflare
from watchdog.http.server import serve

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "rules" / "examples" / "canary-tail.yaml"
HARNESS = Path(__file__).with_name("tail_worker_harness.mjs")
CF_TOKEN, API_TOKEN, PUSH_TOKEN = "cf-token-tail-1", "api-token-tail-2", "push-token-tail-3"
RPS = 20
BOUND_S = 60.0  # the split is live at most this long before the test fails


def node() -> str:
    found = shutil.which("node") or shutil.which("nodejs")
    if found is None:
        pytest.fail("node is not installed (.ci/run installs Debian's nodejs)")
    return found


@dataclass
class World:
    cf: FakeCloudflare
    proc: DaemonProc
    old: str
    new: str
    rng: random.Random

    def invocation(self) -> dict[str, Any]:
        """One request routed by the live split, as the Tail Worker's TraceItem: the new
        version throws on half its requests, the old on almost none."""
        live = self.cf.live_versions("api")
        draw, version = self.rng.random() * 100.0, live[-1][0]
        for candidate, pct in live:
            draw -= pct
            if draw < 0:
                version = candidate
                break
        failed = self.rng.random() < (0.5 if version == self.new else 0.002)
        return {
            "scriptName": "api",
            "scriptVersion": {"id": version, "tag": "", "message": ""},
            "outcome": "exception" if failed else "ok",
            "eventTimestamp": int(time.time() * 1000),
            "wallTime": 40,
            "cpuTime": 3,
            "event": {
                "request": {"url": "https://api.example/checkout", "method": "POST"},
                "response": {"status": 500 if failed else 200},
            },
            "logs": [{"message": ["secret-ish log line"], "level": "log", "timestamp": 0}],
            "exceptions": [{"name": "Error", "message": "boom", "timestamp": 0}] if failed else [],
            "executionModel": "stateless",
            "truncated": False,
        }


@contextlib.asynccontextmanager
async def world(tmp_path: Path) -> AsyncIterator[World]:
    cf = FakeCloudflare(token=CF_TOKEN, account_id="acct")
    now = cf.clock.now()
    old = cf.publish("api", "v1", created_on=now - 86400)
    new = cf.upload_version("api", "v2", created_on=now - 60)
    async with serve(cf.router) as cf_srv:
        env = {
            "WATCHDOG_RULES": str(EXAMPLE),
            "WATCHDOG_STATE": str(tmp_path / "state.db"),
            "WATCHDOG_CLOUDFLARE_API_URL": f"{cf_srv.url}/client/v4",
            "CLOUDFLARE_API_TOKEN": CF_TOKEN,
            "CLOUDFLARE_ACCOUNT_ID": "acct",
            "WATCHDOG_API_TOKEN": API_TOKEN,
            "WATCHDOG_PUSH_TOKEN": PUSH_TOKEN,  # what the Tail Worker holds
            "WATCHDOG_SECRETS_DIR": str(tmp_path / "no-secrets"),
            "WATCHDOG_SHUTDOWN_TIMEOUT": "2",
            "WATCHDOG_DEPLOY_POLL": "0.5",
            "WATCHDOG_SPLIT_POLL": "0.5",
        }
        proc = DaemonProc(env, tmp_path)
        await proc.start()
        try:
            yield World(cf, proc, old, new, random.Random(16))
        finally:
            await proc.stop()


@contextlib.asynccontextmanager
async def tail_worker(url: str, token: str) -> AsyncIterator[asyncio.subprocess.Process]:
    process = await asyncio.create_subprocess_exec(
        node(),
        str(HARNESS),
        env={"WATCHDOG_URLS": url, "WATCHDOG_TOKEN": token, "PATH": "/usr/bin:/bin"},
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        yield process
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def tail(process: asyncio.subprocess.Process, events: list[dict[str, Any]]) -> None:
    """One tail() call per invocation, as Cloudflare makes them."""
    assert process.stdin is not None
    assert process.stdout is not None
    for event in events:
        process.stdin.write(json.dumps([event]).encode() + b"\n")
    await process.stdin.drain()
    for _ in events:
        assert await asyncio.wait_for(process.stdout.readline(), 10.0) == b"done\n"


async def stderr_of(process: asyncio.subprocess.Process) -> str:
    assert process.stdin is not None
    assert process.stderr is not None
    process.stdin.close()
    await asyncio.wait_for(process.wait(), 10.0)
    return (await process.stderr.read()).decode()


async def test_a_failing_version_at_ten_percent_is_rolled_back_from_tail_events(
    tmp_path: Path,
) -> None:
    async with world(tmp_path) as w, tail_worker(f"{w.proc.url}/api/v1/tail/edge", PUSH_TOKEN) as p:
        for _ in range(10):  # the old version alone: the source hears the Tail Worker
            await tail(p, [w.invocation() for _ in range(RPS // 10)])
            await asyncio.sleep(0.1)
        w.cf.deploy("api", [(w.new, 10.0), (w.old, 90.0)], "canary v2")
        split_at = time.monotonic()
        while w.cf.live_versions("api") != [(w.old, 100.0)]:
            assert time.monotonic() - split_at < BOUND_S, w.proc.log_tail()
            await tail(p, [w.invocation() for _ in range(RPS // 10)])
            await asyncio.sleep(0.1)
        assert await stderr_of(p) == ""  # every POST was accepted
    deployments = w.cf.live_deployment("api")
    assert deployments is not None
    assert "rollback" in deployments.message.lower(), deployments.message
    log = "\n".join(path.read_text() for path in w.proc.logs)
    assert "Traceback" not in log
    assert "fails more often than the old during the split" in log


async def test_a_wrong_token_is_refused_and_the_tail_worker_says_so(tmp_path: Path) -> None:
    """The Tail Worker's push token opens the push routes only: not the status, not a
    silence."""
    async with world(tmp_path) as w:
        url = f"{w.proc.url}/api/v1/tail/edge"
        async with tail_worker(url, "not-the-token") as p:
            await tail(p, [w.invocation()])
            said = await stderr_of(p)
        assert f"rollback watchdog {url}: HTTP 401" in said
        async with httpx.AsyncClient(base_url=w.proc.url) as api:
            status = await api.get(
                "/api/v1/status", headers={"authorization": f"Bearer {API_TOKEN}"}
            )
            assert status.status_code == 200
            pushed = {"authorization": f"Bearer {PUSH_TOKEN}"}
            assert (await api.get("/api/v1/status", headers=pushed)).status_code == 401
            silence = {"matchers": [], "all": True, "by": "x", "comment": "y", "duration": "1h"}
            refused = await api.post("/api/v1/silences", json=silence, headers=pushed)
            assert refused.status_code == 401
            # Nothing was counted: the source has not heard the Tail Worker (no evidence).
            assert status.json()["ready_reason"] == "sources not answering: edge"


async def test_a_busy_isolate_batches_and_only_the_counted_fields_leave(tmp_path: Path) -> None:
    """50 invocations at once: the first posts at once, the next 49 wait in the
    isolate's batch and post when the flush interval ends, without another call (the
    isolate may get none for minutes); one more after that, alone, likewise. No URL, log
    line or exception message leaves."""
    from watchdog.http.server import Request, Response, Router

    posts: list[list[dict[str, Any]]] = []

    async def record(request: Request, _: dict[str, str]) -> Response:
        posts.append(request.json())
        return Response.json({"status": "accepted"})

    router = Router()
    router.add("POST", "/api/v1/tail/edge", record)
    cf = FakeCloudflare(token=CF_TOKEN, account_id="acct")
    old = cf.publish("api", "v1")
    w = World(cf, DaemonProc({}, tmp_path), old, old, random.Random(3))
    async with serve(router) as srv, tail_worker(f"{srv.url}/api/v1/tail/edge", API_TOKEN) as p:
        await tail(p, [w.invocation() for _ in range(50)])
        await asyncio.sleep(1.1)
        await tail(p, [w.invocation()])
        assert await stderr_of(p) == ""
    assert [len(batch) for batch in posts] == [1, 49, 1]
    sent = posts[1][0]
    assert set(sent) == {
        "scriptName",
        "scriptVersion",
        "outcome",
        "eventTimestamp",
        "wallTime",
        "event",
    }
    assert sent["event"] in ({"response": {"status": 200}}, {"response": {"status": 500}})
    assert sent["scriptVersion"] == {"id": old}
