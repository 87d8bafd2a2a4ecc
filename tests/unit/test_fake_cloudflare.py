"""The local Cloudflare API: envelope, auth, Workers/Pages/purge state and validation,
and the injectable faults, driven in-process through httpx.ASGITransport."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from watchdog.demo.fakes.cloudflare import FakeCloudflare, Fault, truncate_utf8

ACCOUNT = "test-account"
SCRIPT = f"/accounts/{ACCOUNT}/workers/scripts/api"
PROJECT = f"/accounts/{ACCOUNT}/pages/projects/site"


class SleepRecorder:
    """An injected sleep that records the wait and returns at once."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture
def sleeps() -> SleepRecorder:
    return SleepRecorder()


@pytest.fixture
def fake(sleeps: SleepRecorder) -> FakeCloudflare:
    return FakeCloudflare(sleep=sleeps)


@contextlib.asynccontextmanager
async def client_for(fake: FakeCloudflare) -> AsyncIterator[httpx.AsyncClient]:
    """An in-process client for the fake, with its token."""
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=fake.router),
        base_url="http://cloudflare.test/client/v4",
        headers={"Authorization": f"Bearer {fake.token}"},
    ) as client:
        yield client


@pytest.fixture
async def api(fake: FakeCloudflare) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(fake) as client:
        yield client


def body(version: str, pct: float = 100, message: str | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "strategy": "percentage",
        "versions": [{"version_id": version, "percentage": pct}],
    }
    if message is not None:
        data["annotations"] = {"workers/message": message}
    return data


def error_code(response: httpx.Response) -> int:
    data = response.json()
    assert data["success"] is False
    assert data["result"] is None
    code = data["errors"][0]["code"]
    assert isinstance(code, int)
    return code


# --- envelope and auth -----------------------------------------------------------------


async def test_missing_or_wrong_token_is_refused(
    fake: FakeCloudflare, api: httpx.AsyncClient
) -> None:
    """No token → 401, a wrong one → 403, both code 10000 in the envelope."""
    fake.add_script("api")
    missing = await api.get(f"{SCRIPT}/deployments", headers={"Authorization": ""})
    wrong = await api.get(f"{SCRIPT}/deployments", headers={"Authorization": "Bearer nope"})
    right = await api.get(f"{SCRIPT}/deployments")
    assert (missing.status_code, error_code(missing)) == (401, 10000)
    assert (wrong.status_code, error_code(wrong)) == (403, 10000)
    assert right.json() == {
        "success": True,
        "errors": [],
        "messages": [],
        "result": {"deployments": []},
    }
    assert len(fake.calls) == 3


async def test_unknown_script_account_and_route(
    fake: FakeCloudflare, api: httpx.AsyncClient
) -> None:
    """A missing Worker is 10007, a foreign account 7003, an unknown path 404."""
    fake.add_script("api")
    no_script = await api.get(f"/accounts/{ACCOUNT}/workers/scripts/nope/deployments")
    no_account = await api.get("/accounts/other/workers/scripts/api/deployments")
    no_route = await api.get("/nowhere")
    assert (no_script.status_code, error_code(no_script)) == (404, 10007)
    assert (no_account.status_code, error_code(no_account)) == (404, 7003)
    assert no_route.status_code == 404
    assert error_code(no_route) == 7000


# --- Workers ---------------------------------------------------------------------------


async def test_deployments_listed_newest_first(
    fake: FakeCloudflare, api: httpx.AsyncClient
) -> None:
    """The list is newest first with the real fields; one deployment can be read."""
    v1, v2 = fake.upload_version("api", "one"), fake.upload_version("api", "two")
    d1 = fake.deploy("api", [(v1, 100)], "first")
    d2 = fake.deploy("api", [(v1, 70), (v2, 30)])
    listed = (await api.get(f"{SCRIPT}/deployments")).json()["result"]["deployments"]
    assert [d["id"] for d in listed] == [d2, d1]
    assert listed[0]["versions"] == [
        {"version_id": v1, "percentage": 70.0},
        {"version_id": v2, "percentage": 30.0},
    ]
    assert listed[0]["strategy"] == "percentage"
    assert listed[1]["annotations"] == {
        "workers/message": "first",
        "workers/triggered_by": "upload",
    }
    assert listed[0]["created_on"].endswith("Z")
    one = (await api.get(f"{SCRIPT}/deployments/{d1}")).json()["result"]
    assert one["id"] == d1
    assert fake.live_versions("api") == [(v1, 70.0), (v2, 30.0)]


async def test_create_deployment_changes_live(fake: FakeCloudflare, api: httpx.AsyncClient) -> None:
    """POST deployments makes the version live, truncates the message to 100 bytes
    without splitting a character, and marks the trigger and source."""
    v1, v2 = fake.upload_version("api"), fake.upload_version("api")
    fake.deploy("api", [(v1, 100)])
    fake.deploy("api", [(v2, 100)])
    response = await api.post(f"{SCRIPT}/deployments", json=body(v1, message="ü" * 60))
    result = response.json()["result"]
    assert response.status_code == 200
    assert result["annotations"]["workers/message"] == "ü" * 50
    assert result["annotations"]["workers/triggered_by"] == "rollback"
    assert result["source"] == "api"
    assert fake.live_versions("api") == [(v1, 100.0)]
    assert fake.live_deployment("api").id == result["id"]  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        ([], "JSON object"),
        ({"strategy": "immediate", "versions": []}, 'strategy must be "percentage"'),
        ({"strategy": "percentage", "versions": []}, "one or two versions"),
        ({"strategy": "percentage", "versions": [{"version_id": "V1", "percentage": 90}]}, "100"),
        ({"strategy": "percentage", "versions": [{"version_id": "V1", "percentage": "x"}]}, "num"),
        (
            {"strategy": "percentage", "versions": [{"version_id": "nope", "percentage": 100}]},
            "not",
        ),
        (
            {
                "strategy": "percentage",
                "versions": [{"version_id": "V1", "percentage": 100}],
                "annotations": {"workers/triggered_by": "me"},
            },
            "not writable",
        ),
    ],
)
async def test_create_deployment_validates_body(
    fake: FakeCloudflare, api: httpx.AsyncClient, payload: Any, fragment: str
) -> None:
    """A bad create-deployment body is a 4xx with code 10021 and says what is wrong;
    nothing changes."""
    v1 = fake.upload_version("api")
    fake.deploy("api", [(v1, 100)])
    text = json.dumps(payload).replace("V1", v1)
    response = await api.post(
        f"{SCRIPT}/deployments", content=text, headers={"content-type": "application/json"}
    )
    assert response.status_code in (400, 404)
    assert error_code(response) == 10021
    assert fragment in response.json()["errors"][0]["message"]
    assert len(fake.scripts["api"].deployments) == 1


async def test_only_recent_versions_are_deployable() -> None:
    """Versions outside the most recent N cannot be deployed; deployable=true lists
    exactly those N, newest first, ignoring pagination."""
    fake = FakeCloudflare(max_deployable_versions=2)
    async with client_for(fake) as client:
        v1, v2, v3 = (fake.upload_version("api", f"v{i}") for i in range(1, 4))
        refused = await client.post(f"{SCRIPT}/deployments", json=body(v1))
        allowed = await client.post(f"{SCRIPT}/deployments", json=body(v2))
        listed = await client.get(f"{SCRIPT}/versions", params={"deployable": "true"})
        paged = await client.get(f"{SCRIPT}/versions", params={"page": "2", "per_page": "2"})
        one = await client.get(f"{SCRIPT}/versions/{v2}")
    assert refused.status_code == 400
    assert "most recent versions" in refused.json()["errors"][0]["message"]
    assert allowed.status_code == 200
    assert [i["id"] for i in listed.json()["result"]["items"]] == [v3, v2]
    assert [i["id"] for i in paged.json()["result"]["items"]] == [v1]
    assert paged.json()["result_info"]["total_count"] == 3
    version = one.json()["result"]
    assert version["number"] == 2
    assert version["annotations"]["workers/message"] == "v2"
    assert "created_on" in version["metadata"]


# --- Pages -----------------------------------------------------------------------------


async def test_pages_project_and_paginated_list() -> None:
    """The project names the canonical and latest deployments; the list filters by env
    and pages with result_info, capping per_page."""
    fake = FakeCloudflare(pages_max_per_page=2)
    async with client_for(fake) as client:
        good = [fake.add_pages_deployment("site", commit_message=f"c{i}") for i in range(3)]
        preview = fake.add_pages_deployment("site", environment="preview")
        project = (await client.get(PROJECT)).json()["result"]
        page2 = await client.get(
            f"{PROJECT}/deployments", params={"env": "production", "page": "2", "per_page": "25"}
        )
    assert project["canonical_deployment"]["id"] == good[2]
    assert project["latest_deployment"]["id"] == preview
    assert project["canonical_deployment"]["deployment_trigger"]["metadata"]["commit_message"] == (
        "c2"
    )
    assert [d["id"] for d in page2.json()["result"]] == [good[0]]
    assert page2.json()["result_info"] == {
        "page": 2,
        "per_page": 2,
        "count": 1,
        "total_count": 3,
        "total_pages": 2,
    }


async def test_pages_rollback_only_to_successful_production(
    fake: FakeCloudflare, api: httpx.AsyncClient
) -> None:
    """Preview, failed and skipped targets are refused; a good one becomes canonical
    while the newest deployment stays the latest."""
    old = fake.add_pages_deployment("site")
    failed = fake.add_pages_deployment("site", stage="build", status="failure")
    skipped = fake.add_pages_deployment("site", is_skipped=True)
    preview = fake.add_pages_deployment("site", environment="preview")
    live = fake.add_pages_deployment("site")
    for bad in (failed, skipped, preview):
        refused = await api.post(f"{PROJECT}/deployments/{bad}/rollback", json={})
        assert refused.status_code == 400
        assert error_code(refused) == 8000000
    assert fake.canonical("site") == live
    done = await api.post(f"{PROJECT}/deployments/{old}/rollback", json={})
    assert done.json()["result"]["id"] == old
    project = (await api.get(PROJECT)).json()["result"]
    assert project["canonical_deployment"]["id"] == old
    assert project["latest_deployment"]["id"] == live
    missing = await api.post(f"{PROJECT}/deployments/nope/rollback", json={})
    assert (missing.status_code, error_code(missing)) == (404, 8000009)


# --- purge -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        {"purge_everything": False},
        {"tags": []},
        {"tags": ["a"], "hosts": ["b"]},
        {"tags": [f"t{i}" for i in range(101)]},
        {"other": True},
    ],
)
async def test_purge_rejects_bad_bodies(
    fake: FakeCloudflare, api: httpx.AsyncClient, payload: dict[str, Any]
) -> None:
    """One purge type per request, non-empty, at most 100 items; nothing recorded else."""
    response = await api.post("/zones/z1/purge_cache", json=payload)
    assert response.status_code == 400
    assert fake.purges == []


async def test_purge_records_and_answers_an_id(
    fake: FakeCloudflare, api: httpx.AsyncClient
) -> None:
    """A valid purge is recorded with its zone and body, and the result carries an id."""
    response = await api.post("/zones/z1/purge_cache", json={"prefixes": ["www.example.com/a"]})
    purge_id = response.json()["result"]["id"]
    assert [(p.zone, p.body, p.id) for p in fake.purges] == [
        ("z1", {"prefixes": ["www.example.com/a"]}, purge_id)
    ]


# --- faults ----------------------------------------------------------------------------


async def test_rate_limit_for_a_count_of_requests(
    fake: FakeCloudflare, api: httpx.AsyncClient
) -> None:
    """Two 429s with Retry-After, then normal answers; the fault counts its hits."""
    fake.add_script("api")
    fault = fake.rate_limit(
        "GET", "/accounts/{account}/workers/scripts/{script}/deployments", "9", 2
    )
    answers = [await api.get(f"{SCRIPT}/deployments") for _ in range(3)]
    assert [a.status_code for a in answers] == [429, 429, 200]
    assert answers[0].headers["retry-after"] == "9"
    assert error_code(answers[0]) == 971
    assert fault.hits == 2
    assert not fault.active


async def test_secrets_changed_only_without_force(
    fake: FakeCloudflare, api: httpx.AsyncClient
) -> None:
    """10220 answers every plain create-deployment, never one with ?force=true."""
    v1, v2 = fake.upload_version("api"), fake.upload_version("api")
    fake.deploy("api", [(v2, 100)])
    fake.secrets_changed("api", ("A", "B"))
    plain = await api.post(f"{SCRIPT}/deployments", json=body(v1))
    again = await api.post(f"{SCRIPT}/deployments", json=body(v1))
    forced = await api.post(f"{SCRIPT}/deployments", params={"force": "true"}, json=body(v1))
    assert (plain.status_code, error_code(plain)) == (400, 10220)
    assert plain.json()["errors"][0]["message"].endswith("The following secrets have changed: A, B")
    assert again.status_code == 400
    assert forced.status_code == 200
    assert fake.live_versions("api") == [(v1, 100.0)]


async def test_waf_page_and_success_false(fake: FakeCloudflare, api: httpx.AsyncClient) -> None:
    """The WAF fault is an HTML challenge page; success_false is HTTP 200 with an error."""
    fake.add_script("api")
    fake.waf("GET", f"{SCRIPT}/deployments")
    fake.success_false("GET", f"{SCRIPT}/deployments", 10013, "oops")
    waf = await api.get(f"{SCRIPT}/deployments")
    soft = await api.get(f"{SCRIPT}/deployments")
    assert waf.status_code == 403
    assert waf.headers["content-type"].startswith("text/html")
    assert waf.headers["cf-mitigated"] == "challenge"
    assert "<html>" in waf.text
    assert soft.status_code == 200
    assert error_code(soft) == 10013


async def test_fail_after_apply_still_applies(fake: FakeCloudflare, api: httpx.AsyncClient) -> None:
    """The change is made, then the answer is a 500."""
    v1, v2 = fake.upload_version("api"), fake.upload_version("api")
    fake.deploy("api", [(v2, 100)])
    fake.fail_after_apply("POST", f"{SCRIPT}/deployments")
    response = await api.post(f"{SCRIPT}/deployments", json=body(v1))
    assert response.status_code == 500
    assert fake.live_versions("api") == [(v1, 100.0)]


async def test_delays_use_the_injected_sleep(
    fake: FakeCloudflare, api: httpx.AsyncClient, sleeps: SleepRecorder
) -> None:
    """Latency, a delay fault and a stall after applying all wait on the injected
    sleep (no real waiting here), and the stalled request still applies and answers."""
    v1, v2 = fake.upload_version("api"), fake.upload_version("api")
    fake.deploy("api", [(v2, 100)])
    fake.set_latency("*", "/accounts/{account}/workers/scripts/{script}/deployments", 0.25)
    fake.delay("GET", f"{SCRIPT}/deployments", 3.0)
    fake.stall_after_apply("POST", f"{SCRIPT}/deployments", 30.0)
    await api.get(f"{SCRIPT}/deployments")
    stalled = await api.post(f"{SCRIPT}/deployments", json=body(v1))
    assert sleeps.waits == [0.25, 3.0, 0.25, 30.0]
    assert stalled.status_code == 200
    assert fake.live_versions("api") == [(v1, 100.0)]


async def test_fault_after_lets_requests_through_first(
    fake: FakeCloudflare, api: httpx.AsyncClient
) -> None:
    """``after=2`` fails the third matching request only."""
    fake.inject(Fault("POST", "/zones/{zone}/purge_cache", "status", status=502, after=2))
    codes = [
        (await api.post("/zones/z/purge_cache", json={"purge_everything": True})).status_code
        for _ in range(4)
    ]
    assert codes == [200, 200, 502, 200]


async def test_calls_are_recorded(fake: FakeCloudflare, api: httpx.AsyncClient) -> None:
    """Each request is kept with method, path under /client/v4, query and JSON body."""
    fake.add_project("site")
    await api.get(f"{PROJECT}/deployments", params={"env": "production", "page": "1"})
    await api.post("/zones/z/purge_cache", json={"hosts": ["a.example"]})
    assert [(c.method, c.path, c.query, c.json) for c in fake.calls] == [
        ("GET", f"{PROJECT}/deployments", {"env": "production", "page": "1"}, None),
        ("POST", "/zones/z/purge_cache", {}, {"hosts": ["a.example"]}),
    ]
    assert fake.count("POST", "/zones/{zone}/purge_cache") == 1
    assert fake.count("*", "/accounts/{account}/pages/projects/{project}/deployments") == 1


def test_truncate_utf8_never_splits_a_character() -> None:
    """100 bytes of UTF-8 at most, cut on a character boundary."""
    assert truncate_utf8("a" * 120) == "a" * 100
    assert truncate_utf8("a" + "€" * 40) == "a" + "€" * 33
    assert len(truncate_utf8("😀" * 30).encode()) == 100


async def test_graphql_analytics_served_behind_the_same_front(
    fake: FakeCloudflare, api: httpx.AsyncClient
) -> None:
    """POST /graphql reaches the analytics fake, which checks the token its own way
    (GraphQL errors, not the REST envelope); the requests are logged like the others."""
    wrong = await api.post("/graphql", json={"query": "{}"}, headers={"Authorization": "Bearer x"})
    unknown = await api.post("/graphql", json={"query": "{ viewer { zones { nope } } }"})
    assert wrong.status_code == 401
    assert "success" not in wrong.json()
    assert unknown.status_code == 200
    assert unknown.json()["errors"]
    assert fake.count("POST", "/graphql") == 2
