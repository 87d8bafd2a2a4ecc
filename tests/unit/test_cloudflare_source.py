"""The cloudflare source against the local GraphQL fake (and a raw server for bodies
the fake would never send)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from pydantic import SecretStr

from watchdog.clock import FakeClock
from watchdog.demo.fakes.cloudflare_graphql import WorkersAnalytics, install
from watchdog.http.server import Request, Response, Router, serve
from watchdog.model import Sample, SampleKind
from watchdog.rules.load import ResolvedSignal
from watchdog.rules.model import IMPLICIT_FIELDS, CloudflareSourceSpec, SignalSpec
from watchdog.sources.base import SourceDeps
from watchdog.sources.cloudflare import CloudflareSource
from watchdog.units import iso

NOW = 1_790_000_040.0  # on a minute boundary
TOKEN = "cf-test-token-123"
ACCOUNT = "acc-1"
SCRIPT = "api-worker"
FIELDS = tuple(f for f in IMPLICIT_FIELDS["cloudflare"] if f != "versions")  # script mode


@dataclass
class Env:
    analytics: WorkersAnalytics
    api_url: str
    http: httpx.AsyncClient
    clock: FakeClock

    def source(
        self, token: str | None = TOKEN, timeout_s: float = 5.0, account: str | None = None
    ) -> CloudflareSource:
        spec = CloudflareSourceSpec(
            type="cloudflare", script=SCRIPT, timeout=timeout_s, account=account
        )
        deps = SourceDeps(
            http=self.http,
            clock=self.clock,
            cloudflare_api_url=self.api_url,
            cloudflare_api_token=SecretStr(token) if token is not None else None,
            cloudflare_account_id=ACCOUNT,
        )
        return CloudflareSource("cf", spec, deps)

    async def sample(self, source: CloudflareSource | None = None) -> dict[str, Sample]:
        src = source or self.source()
        return await src.sample([signal(name) for name in FIELDS], NOW)


def signal(field_name: str) -> ResolvedSignal:
    spec = CloudflareSourceSpec(type="cloudflare", script=SCRIPT)
    signal_spec = SignalSpec(source="cf", field=field_name)
    return ResolvedSignal(field_name, "cf", spec, signal_spec, "number", 60.0)


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    analytics = WorkersAnalytics(token=TOKEN, account_id=ACCOUNT)
    router = Router()
    install(router, analytics)
    async with serve(router) as server, httpx.AsyncClient() as http:
        yield Env(analytics, server.url + "/client/v4", http, FakeClock(NOW))


async def test_fields_and_microseconds_to_seconds(env: Env) -> None:
    """error_rate = errors/requests with requests; quantiles arrive in µs, leave in s."""
    env.analytics.record(
        SCRIPT,
        NOW - 300,
        requests=1000,
        errors=25,
        wall_time_p50_s=0.02,
        wall_time_p99_s=1.5,
        cpu_time_p99_s=0.03,
    )
    samples = await env.sample()
    assert samples["error_rate"].value == pytest.approx(0.025)
    assert samples["error_rate"].requests == 1000
    assert samples["error_rate"].errors == 25  # the counts, for confidence rules
    assert samples["requests"].value == 1000
    assert samples["wall_time_p50"].value == pytest.approx(0.02)
    assert samples["wall_time_p99"].value == pytest.approx(1.5)
    assert samples["cpu_time_p99"].value == pytest.approx(0.03)


async def test_window_skips_the_newest_minutes(env: Env) -> None:
    """Only [now - delay - window, now - delay] counts: newer and older rows are left out."""
    env.analytics.record(SCRIPT, NOW - 300, requests=100, errors=1)
    env.analytics.record(SCRIPT, NOW - 60, requests=100, errors=100)  # still being delivered
    env.analytics.record(SCRIPT, NOW - 900, requests=100, errors=100)  # before the window
    samples = await env.sample()
    assert samples["error_rate"].value == pytest.approx(0.01)
    variables = env.analytics.queries[0]
    assert variables["start"] == iso(NOW - 180 - 300)
    assert variables["end"] == iso(NOW - 180)
    assert (variables["accountTag"], variables["scriptName"]) == (ACCOUNT, SCRIPT)


async def test_several_minutes_add_up(env: Env) -> None:
    """Counts over the window's minutes are summed; p99 is request-weighted."""
    env.analytics.record(SCRIPT, NOW - 420, requests=300, errors=3, wall_time_p99_s=1.0)
    env.analytics.record(SCRIPT, NOW - 240, requests=100, errors=7, wall_time_p99_s=2.0)
    samples = await env.sample()
    assert samples["requests"].value == 400
    assert samples["error_rate"].value == pytest.approx(10 / 400)
    assert samples["wall_time_p99"].value == pytest.approx(1.25)


async def test_no_rows_is_no_data(env: Env) -> None:
    """No invocations in the window → no_data for every field, never zero."""
    samples = await env.sample()
    assert {s.kind for s in samples.values()} == {SampleKind.NO_DATA}


async def test_missing_token_is_an_error_without_a_request(env: Env) -> None:
    """No API token configured → error samples, and nothing is sent."""
    samples = await env.sample(env.source(token=None))
    assert {s.kind for s in samples.values()} == {SampleKind.ERROR}
    assert env.analytics.queries == []


async def test_wrong_token_is_401_without_leaking_it(env: Env) -> None:
    """401 → an error that says to check the token, and never contains a token."""
    samples = await env.sample(env.source(token="wrong-token-xyz"))
    reason = samples["error_rate"].reason
    assert samples["error_rate"].kind is SampleKind.ERROR
    assert "HTTP 401" in reason
    assert "token" in reason
    assert "wrong-token-xyz" not in reason
    assert TOKEN not in reason


async def test_other_account_is_403(env: Env) -> None:
    """403 → an error that names the missing permission."""
    samples = await env.sample(env.source(account="someone-else"))
    assert "HTTP 403" in samples["requests"].reason
    assert "Analytics" in samples["requests"].reason


async def test_graphql_errors_on_200_are_errors(env: Env) -> None:
    """A 200 that carries ``errors`` is an error sample with the messages."""
    env.analytics.record(SCRIPT, NOW - 300, requests=10)
    env.analytics.fail_next(200, "cannot request data older than 2678400s", code="authz")
    samples = await env.sample()
    assert samples["requests"].kind is SampleKind.ERROR
    assert "cannot request data older than" in samples["requests"].reason
    assert "(authz)" in samples["requests"].reason


async def test_429_holds_off_until_retry_after(env: Env) -> None:
    """After a 429 the source stays quiet until Retry-After, then queries again."""
    env.analytics.fail_next(429, "rate limiter budget depleted", retry_after=120)
    source = env.source()
    first = await env.sample(source)
    assert "HTTP 429" in first["requests"].reason
    second = await env.sample(source)
    assert "rate limited" in second["requests"].reason
    assert env.analytics.queries == []  # the second call never reached the API
    await env.clock.advance(121)
    third = await env.sample(source)
    assert third["requests"].kind is SampleKind.NO_DATA
    assert len(env.analytics.queries) == 1


async def test_server_errors_are_errors(env: Env) -> None:
    """503 "too many queries in progress" → an error sample naming the status."""
    env.analytics.fail_next(503, "too many queries in progress")
    samples = await env.sample()
    assert samples["error_rate"].reason.startswith("Cloudflare GraphQL: HTTP 503")
    assert "too many queries" in samples["error_rate"].reason


@pytest.fixture
async def raw() -> AsyncIterator[tuple[str, dict[str, Response | None], asyncio.Event]]:
    """A server whose /graphql answer is set by the test (None = never answer)."""
    answer: dict[str, Response | None] = {}
    release = asyncio.Event()
    router = Router()

    @router.route("POST", "/client/v4/graphql")
    async def graphql(request: Request, params: dict[str, str]) -> Response:
        response = answer["response"]
        if response is None:
            await release.wait()
            return Response.json({})
        return response

    async with serve(router) as server:
        yield server.url + "/client/v4", answer, release
        release.set()


async def test_html_page_is_an_error(
    raw: tuple[str, dict[str, Response | None], asyncio.Event],
) -> None:
    """A WAF challenge page (HTML with 200) is an error, not a crash."""
    url, answer, _ = raw
    answer["response"] = Response.text("<html>challenge</html>", content_type="text/html")
    async with httpx.AsyncClient() as http:
        samples = await Env(WorkersAnalytics(), url, http, FakeClock(NOW)).sample()
    assert "not JSON" in samples["requests"].reason
    assert "HTML" in samples["requests"].reason


async def test_slow_api_times_out(
    raw: tuple[str, dict[str, Response | None], asyncio.Event],
) -> None:
    """No answer within the source's timeout → an error sample."""
    url, answer, _ = raw
    answer["response"] = None
    async with httpx.AsyncClient() as http:
        env = Env(WorkersAnalytics(), url, http, FakeClock(NOW))
        samples = await env.sample(env.source(timeout_s=0.2))
    assert samples["requests"].reason == "Cloudflare GraphQL: timed out after 200ms"


async def test_fake_answers_unknown_queries_with_a_graphql_error(env: Env) -> None:
    """The fake, like Cloudflare, answers an unknown dataset with 200 and ``errors``."""
    query = "query { viewer { accounts(filter: {accountTag: $a}) { nope { count } } } }"
    response = await env.http.post(
        env.api_url + "/graphql",
        json={"query": query, "variables": {}},
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert response.status_code == 200
    assert response.json()["errors"][0]["message"] == 'unknown field "nope"'


async def test_fake_groups_by_minute_when_asked(env: Env) -> None:
    """With ``dimensions { datetimeMinute }`` the fake returns one row per minute."""
    env.analytics.record(SCRIPT, NOW - 120, requests=5)
    env.analytics.record(SCRIPT, NOW - 60, requests=7)
    query = (
        "query($a: string!, $s: string!, $t0: Time!, $t1: Time!) { viewer {"
        " accounts(filter: {accountTag: $a}) { workersInvocationsAdaptive(limit: 10,"
        " filter: {scriptName: $s, datetime_geq: $t0, datetime_lt: $t1}) {"
        " sum { requests } dimensions { datetimeMinute } } } } }"
    )
    variables = {"a": ACCOUNT, "s": SCRIPT, "t0": iso(NOW - 600), "t1": iso(NOW)}
    response = await env.http.post(
        env.api_url + "/graphql",
        json={"query": query, "variables": variables},
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    rows = response.json()["data"]["viewer"]["accounts"][0]["workersInvocationsAdaptive"]
    assert rows == [
        {"sum": {"requests": 5}, "dimensions": {"datetimeMinute": iso(NOW - 120)}},
        {"sum": {"requests": 7}, "dimensions": {"datetimeMinute": iso(NOW - 60)}},
    ]
