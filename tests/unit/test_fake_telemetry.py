"""The local Cloudflare API's gradual-deployment pieces: routing by weight, the
version-override header, and per-version telemetry answers (late, sampled), served
on a real loopback socket."""

from __future__ import annotations

from typing import Any

import httpx

from tests.helpers import T0, InstantClock, cloudflare_stack
from watchdog.demo.fakes.cloudflare import FakeCloudflare
from watchdog.demo.fakes.cloudflare_telemetry import Behaviour, parse_overrides
from watchdog.http.server import serve

QUERY = "/accounts/test-account/workers/observability/telemetry/query"


def _split(fake: FakeCloudflare, pct_new: float) -> tuple[str, str]:
    old = fake.publish("api", "old")
    new = fake.upload_version("api", "new")
    fake.deploy("api", [(new, pct_new), (old, 100 - pct_new)])
    return old, new


def _body(start: float, end: float) -> dict[str, Any]:
    return {
        "queryId": "q",
        "timeframe": {"from": start * 1000, "to": end * 1000},
        "view": "calculations",
        "parameters": {
            "filters": [
                {"key": "$workers.scriptName", "operation": "eq", "type": "string", "value": "api"}
            ],
            "groupBys": [
                {"type": "string", "value": "$workers.scriptVersion.id"},
                {"type": "string", "value": "$workers.outcome"},
            ],
            "calculations": [{"operator": "count", "alias": "n"}],
        },
    }


def _counts(result: dict[str, Any]) -> dict[tuple[str, str], tuple[float, float]]:
    out = {}
    for agg in result["calculations"][0]["aggregates"]:
        groups = {g["key"]: g["value"] for g in agg["groups"]}
        out[(groups["$workers.scriptVersion.id"], groups["$workers.outcome"])] = (
            agg["count"],
            agg["sampleInterval"],
        )
    return out


def test_a_split_routes_by_weight() -> None:
    fake = FakeCloudflare(clock=InstantClock())
    old, new = _split(fake, 10)
    edge = fake.edge("api")
    served = edge.simulate(T0, 20_000)
    share = served[new][1] / 20_000
    assert 0.085 < share < 0.115, share
    assert served[old][1] + served[new][1] == 20_000


def test_the_override_header_pins_a_version_even_at_zero_percent() -> None:
    fake = FakeCloudflare(clock=InstantClock())
    old, new = _split(fake, 0)
    edge = fake.edge("api")
    assert {edge.route() for _ in range(200)} == {old}
    assert edge.route(f'api="{new}"') == new
    # Silently ignored: a version not in the deployment, another script, a malformed header.
    stray = fake.upload_version("api", "stray")
    assert edge.route(f'api="{stray}"') == old
    assert edge.route(f'other="{new}"') == old
    assert edge.route(f"api={new}") == old
    assert parse_overrides(f'other="x", api="{new}"') == {"other": "x", "api": new}


async def test_the_edge_answers_with_its_version_header() -> None:
    fake = FakeCloudflare(clock=InstantClock())
    old, new = _split(fake, 0)
    edge = fake.edge("api", version_header="x-version")
    edge.behaviours[new] = Behaviour(error_ratio=1.0)
    async with serve(edge.router) as srv, httpx.AsyncClient() as http:
        plain = await http.get(srv.url + "/login")
        pinned = await http.get(
            srv.url + "/login", headers={"Cloudflare-Workers-Version-Overrides": f'api="{new}"'}
        )
    assert (plain.status_code, plain.headers["x-version"]) == (200, old)
    assert (pinned.status_code, pinned.headers["x-version"]) == (500, new)


async def test_telemetry_counts_per_version_after_the_delay() -> None:
    clock = InstantClock()
    fake = FakeCloudflare(clock=clock)
    old, new = _split(fake, 50)
    fake.telemetry.delay_s = 60.0
    edge = fake.edge("api")
    edge.behaviours[new] = Behaviour(error_ratio=1.0)
    edge.simulate(T0, 100)
    async with cloudflare_stack(fake) as stack:
        headers = {"Authorization": f"Bearer {fake.token}"}
        early = await stack.http.post(
            stack.base_url + QUERY, json=_body(T0 - 10, T0 + 10), headers=headers
        )
        assert early.json()["result"]["calculations"][0]["aggregates"] == []  # not yet delivered
        clock._now += 61
        late = await stack.http.post(
            stack.base_url + QUERY, json=_body(T0 - 10, T0 + 10), headers=headers
        )
        denied = await stack.http.post(stack.base_url + QUERY, json=_body(T0, T0 + 1))
        bad = await stack.http.post(
            stack.base_url + QUERY, json={"view": "events"}, headers=headers
        )
    counts = _counts(late.json()["result"])
    assert counts[(old, "ok")][0] + counts[(new, "exception")][0] == 100
    assert (new, "ok") not in counts
    assert (old, "exception") not in counts
    assert denied.status_code in (400, 401, 403)
    assert bad.status_code == 400
    assert "queryId" in bad.text


async def test_head_sampling_thins_counts_and_says_its_interval() -> None:
    clock = InstantClock()
    fake = FakeCloudflare(clock=clock)
    old, _ = _split(fake, 0)
    fake.telemetry.head_sampling_rate = 0.1
    fake.edge("api").simulate(T0, 5000)
    clock._now += 1
    result = fake.telemetry.query(_body(T0 - 1, T0 + 1))
    count, interval = _counts(result)[(old, "ok")]
    assert interval == 10.0
    assert 380 < count < 620, count
