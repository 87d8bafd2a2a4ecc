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


def _slow_body(start: float, end: float, over: dict[str, Any]) -> dict[str, Any]:
    body = _body(start, end)
    body["parameters"]["filters"].append(over)
    body["parameters"]["groupBys"] = [{"type": "string", "value": "$workers.scriptVersion.id"}]
    return body


def test_gt_counts_the_events_slower_than_a_bound_per_version() -> None:
    """The latency canary's query: ``$workers.wallTimeMs`` ``gt`` a bound in ms."""
    clock = InstantClock()
    fake = FakeCloudflare(clock=clock)
    old, new = _split(fake, 50)
    edge = fake.edge("api")
    edge.behaviours[old] = Behaviour(wall_ms=100.0)
    edge.behaviours[new] = Behaviour(wall_ms=100.0, slow_share=0.2, slow_factor=10.0)
    served = edge.simulate(T0, 4000)
    clock._now += 1
    over = {"key": "$workers.wallTimeMs", "operation": "gt", "type": "number", "value": 500}
    result = fake.telemetry.query(_slow_body(T0 - 1, T0 + 1, over))
    (calc,) = result["calculations"]
    counts = {a["groups"][0]["value"]: a["count"] for a in calc["aggregates"]}
    assert old not in counts  # a version with no slow event has no group, like the real API
    assert 0.15 < counts[new] / served[new][1] < 0.25
    # The bound is strict: 1000 ms is not gt 1000; gte and the symbol spelling agree.
    at_bound = {**over, "value": 1000}
    assert (
        fake.telemetry.query(_slow_body(T0 - 1, T0 + 1, at_bound))["calculations"][0]["aggregates"]
        == []
    )
    gte = {**over, "operation": ">=", "value": 1000}
    again = fake.telemetry.query(_slow_body(T0 - 1, T0 + 1, gte))["calculations"][0]
    assert again["aggregates"][0]["count"] == counts[new]


async def test_filters_the_sdk_does_not_describe_are_refused() -> None:
    """Checked before any event is read: refused even over an empty timeframe."""
    fake = FakeCloudflare(clock=InstantClock())
    gt = {"key": "$workers.wallTimeMs", "operation": "gt", "type": "number", "value": 500}
    bad = [
        ({k: v for k, v in gt.items() if k != "type"}, "needs a key, an operation, a type"),
        ({**gt, "type": "float"}, "type must be string, number or boolean"),
        ({**gt, "type": "string"}, "compares numbers: needs type number"),
        ({**gt, "value": "500"}, "compares numbers"),
        ({**gt, "value": True}, "compares numbers"),
        ({**gt, "operation": "greater"}, "operation 'greater' is not served here"),
        ({**gt, "value": [500]}, "value must be a string, number or boolean"),
    ]
    async with cloudflare_stack(fake) as stack:
        headers = {"Authorization": f"Bearer {fake.token}"}
        for over, why in bad:
            answer = await stack.http.post(
                stack.base_url + QUERY, json=_slow_body(0, 1, over), headers=headers
            )
            assert answer.status_code == 400, over
            assert why in answer.text, (over, answer.text)
        good = await stack.http.post(
            stack.base_url + QUERY, json=_slow_body(0, 1, gt), headers=headers
        )
    assert good.status_code == 200
