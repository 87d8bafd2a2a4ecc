"""Cloudflare actions (Worker and Pages rollback, zone and app cache purge) against the
local Cloudflare API on a real loopback socket; retry waits go to an instant clock."""

from __future__ import annotations

import email.utils
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from tests.helpers import T0, CloudflareStack, InstantClock, cloudflare_stack
from watchdog.actions.cloudflare_pages import PagesTarget
from watchdog.actions.cloudflare_worker import WorkerTarget
from watchdog.actions.purge import AppCachePurge, ZonePurge
from watchdog.demo.fakes.cloudflare import FakeCloudflare, Fault
from watchdog.errors import ConfigError, PermanentActionError, RetryableActionError
from watchdog.http.client import RetryPolicy
from watchdog.http.server import Request, Response, Router, serve
from watchdog.model import RollbackPlan
from watchdog.rules.response import (
    AppCachePurgeSpec,
    PagesTargetSpec,
    WorkerTargetSpec,
    ZonePurgeSpec,
)
from watchdog.settings import load_settings

ACCOUNT = "test-account"
DEPLOYMENTS = f"/accounts/{ACCOUNT}/workers/scripts/api/deployments"
VERSIONS = f"/accounts/{ACCOUNT}/workers/scripts/api/versions"
PROJECT = f"/accounts/{ACCOUNT}/pages/projects/site"
PAGES_LIST = f"{PROJECT}/deployments"
PAGES_ROLLBACK = f"{PROJECT}/deployments/{{id}}/rollback"


def worker(
    stack: CloudflareStack, when_secrets_changed: str = "refuse", account: str | None = ACCOUNT
) -> WorkerTarget:
    spec = WorkerTargetSpec.model_validate(
        {"type": "cloudflare-worker", "script": "api", "on_secret_changed": when_secrets_changed}
    )
    return WorkerTarget("worker", spec, account, stack.client)


def pages(stack: CloudflareStack) -> PagesTarget:
    spec = PagesTargetSpec(type="cloudflare-pages", project="site")
    return PagesTarget("frontend", spec, ACCOUNT, stack.client)


def history(fake: FakeCloudflare, count: int = 3) -> list[str]:
    """``count`` versions, each deployed at 100 % in turn; returns the version ids."""
    return [fake.publish("api", f"deploy v{i}") for i in range(1, count + 1)]


def plan(
    to: str, reason: str = "Auto-rollback: error rate 7.2% > 5% for 5m", *, frm: str
) -> RollbackPlan:
    return RollbackPlan(target="worker", from_version=frm, to_version=to, reason=reason)


def wplan(
    fake: FakeCloudflare, to: str, reason: str = "Auto-rollback: error rate 7.2% > 5% for 5m"
) -> RollbackPlan:
    """A Worker plan from what is live now (as the incident manager makes it)."""
    live = ",".join(sorted(v for v, _ in fake.live_versions("api")))
    return plan(to, reason, frm=live)


def pplan(fake: FakeCloudflare, to: str) -> RollbackPlan:
    """A Pages plan from what is live now."""
    return plan(to, frm=fake.canonical("site") or "")


def posts(fake: FakeCloudflare) -> int:
    return fake.count("POST", DEPLOYMENTS)


# --- Worker: choosing the version ------------------------------------------------------


async def test_worker_state_picks_previous_100_percent_version() -> None:
    """Live is the newest deployment; the rollback goes to the previous 100 % version,
    read with one deployments call and one deployable-versions call."""
    fake = FakeCloudflare()
    _v1, v2, v3 = history(fake)
    async with cloudflare_stack(fake) as cf:
        state = await worker(cf).state()
    assert state.live is not None
    assert state.live.version == v3
    assert state.live.description == "deploy v3"
    assert state.rollback_to is not None
    assert state.rollback_to.version == v2
    assert "the newest earlier version not rolled away from" in state.why
    assert fake.count("GET", DEPLOYMENTS) == 1
    assert [c.query for c in fake.calls if c.path == VERSIONS] == [{"deployable": "true"}]


async def test_worker_gradual_deployment_rolls_back_to_the_stable_version() -> None:
    """A live gradual deployment (v2 90 % / v3 10 %) rolls back to v2, which was at
    100 % before it; the bad version reported as live is v3."""
    fake = FakeCloudflare()
    _v1, v2 = history(fake, 2)
    v3 = fake.upload_version("api", "v3")
    fake.deploy("api", [(v2, 90), (v3, 10)])
    async with cloudflare_stack(fake) as cf:
        state = await worker(cf).state()
    assert state.rollback_to is not None
    assert state.rollback_to.version == v2
    assert state.live is not None
    assert state.live.version == v3
    assert "gradual" in state.why


async def test_worker_gradual_of_two_new_versions_skips_both() -> None:
    """A split of two versions never at 100 % before rolls back to the last 100 % one."""
    fake = FakeCloudflare()
    (v1,) = history(fake, 1)
    v2, v3 = fake.upload_version("api"), fake.upload_version("api")
    fake.deploy("api", [(v2, 50), (v3, 50)])
    async with cloudflare_stack(fake) as cf:
        state = await worker(cf).state()
    assert state.rollback_to is not None
    assert state.rollback_to.version == v1


async def test_worker_never_picks_the_live_version() -> None:
    """When the previous 100 % deployment carried the same (bad) version, as after a
    secret change, wrangler would pick it; the watchdog goes one further back."""
    fake = FakeCloudflare()
    v1, v2 = history(fake, 2)
    fake.deploy("api", [(v2, 100)], triggered_by="secret")
    async with cloudflare_stack(fake) as cf:
        state = await worker(cf).state()
    assert state.rollback_to is not None
    assert state.rollback_to.version == v1


async def test_worker_no_earlier_100_percent_version() -> None:
    """Only split deployments before the live one: no rollback target, with the reason."""
    fake = FakeCloudflare()
    v1, v2, v3 = (fake.upload_version("api") for _ in range(3))
    fake.deploy("api", [(v1, 60), (v2, 40)])
    fake.deploy("api", [(v3, 100)])
    async with cloudflare_stack(fake) as cf:
        state = await worker(cf).state()
    assert state.rollback_to is None
    assert "no earlier deployment has a single version at 100%" in state.why


async def test_worker_single_deployment_has_no_target() -> None:
    """A Worker deployed once has nothing to roll back to (and no versions call)."""
    fake = FakeCloudflare()
    history(fake, 1)
    async with cloudflare_stack(fake) as cf:
        state = await worker(cf).state()
    assert state.live is not None
    assert state.rollback_to is None
    assert fake.count("GET", VERSIONS) == 0


async def test_worker_prefers_a_version_verified_healthy() -> None:
    """With v1 verified healthy and v2 not, the rollback goes to v1; with no candidate
    verified healthy it falls back to the newest not rolled away from and says so."""
    fake = FakeCloudflare()
    v1, v2, _v3 = history(fake)
    async with cloudflare_stack(fake) as cf:
        target = worker(cf)
        preferred = await target.state(healthy={v1})
        fallback = await target.state(healthy={"unknown-version"})
    assert preferred.rollback_to is not None
    assert preferred.rollback_to.version == v1
    assert "verified healthy" in preferred.why
    assert fallback.rollback_to is not None
    assert fallback.rollback_to.version == v2
    assert "none is verified healthy" in fallback.why


async def test_worker_skips_versions_too_old_to_deploy() -> None:
    """A candidate Cloudflare does not list as deployable is not chosen, and the reason
    names that list and its real size (here 2), not a made-up "100 most recent"
    (issue 11: `targets` misreported why it skipped an undeployable version)."""
    fake = FakeCloudflare(max_deployable_versions=2)
    v1, v2 = history(fake, 2)
    for _ in range(2):
        fake.upload_version("api", "not deployed")
    async with cloudflare_stack(fake) as cf:
        state = await worker(cf).state()
    assert state.rollback_to is None
    assert "100" not in state.why
    assert "no version left to roll back to" in state.why
    skipped = {line.version: line.reason for line in state.ledger if line.status == "skipped"}
    assert list(skipped) == [v1]
    assert "not deployable" in skipped[v1]
    assert "2 deployable versions" in skipped[v1]
    assert [line.version for line in state.ledger if line.status == "live"] == [v2]


async def test_worker_needs_an_account() -> None:
    """No account in the spec or settings is a configuration error naming the target."""
    async with cloudflare_stack() as cf:
        with pytest.raises(ConfigError, match="target worker: no Cloudflare account id"):
            worker(cf, account=None)


# --- Worker: rolling back --------------------------------------------------------------


async def test_worker_rollback_posts_wrangler_body_and_changes_live() -> None:
    """The rollback re-reads, then POSTs wrangler's create-deployment body once."""
    fake = FakeCloudflare()
    _v1, v2, _v3 = history(fake)
    async with cloudflare_stack(fake) as cf:
        result = await worker(cf).rollback(wplan(fake, v2))
    assert result.ok
    assert not result.would
    assert fake.live_versions("api") == [(v2, 100.0)]
    post = [c for c in fake.calls if c.method == "POST"]
    assert len(post) == 1
    assert post[0].path == DEPLOYMENTS
    assert post[0].query == {}
    assert post[0].json == {
        "strategy": "percentage",
        "versions": [{"version_id": v2, "percentage": 100}],
        "annotations": {"workers/message": "Auto-rollback: error rate 7.2% > 5% for 5m"},
    }
    assert [c.method for c in fake.calls] == ["GET", "POST"]
    assert result.data["deployment_id"] == fake.live_deployment("api").id  # type: ignore[union-attr]


async def test_worker_rollback_message_truncated_to_100_bytes() -> None:
    """The annotation is at most 100 bytes of UTF-8 and never splits a character."""
    fake = FakeCloudflare()
    v1, _v2 = history(fake, 2)
    async with cloudflare_stack(fake) as cf:
        await worker(cf).rollback(wplan(fake, v1, reason="é" * 80))
    message = next(c for c in fake.calls if c.method == "POST").json["annotations"][
        "workers/message"
    ]
    assert message == "é" * 50
    assert len(message.encode()) == 100


async def test_worker_rollback_already_done_sends_nothing() -> None:
    """A replayed rollback whose version already serves 100 % posts nothing."""
    fake = FakeCloudflare()
    _v1, v2 = history(fake, 2)
    async with cloudflare_stack(fake) as cf:
        result = await worker(cf).rollback(wplan(fake, v2))
    assert result.ok
    assert result.data["already"] is True
    assert "already rolled back" in result.detail
    assert posts(fake) == 0


async def test_worker_rollback_dry_run_returns_the_exact_request() -> None:
    """Dry-run reads but makes no mutating call, and returns the request it would send."""
    fake = FakeCloudflare()
    _v1, v2, v3 = history(fake)
    async with cloudflare_stack(fake) as cf:
        result = await worker(cf).rollback(wplan(fake, v2), dry_run=True)
    assert result.would
    assert result.ok
    assert result.request == {
        "method": "POST",
        "path": DEPLOYMENTS,
        "params": {},
        "body": {
            "strategy": "percentage",
            "versions": [{"version_id": v2, "percentage": 100}],
            "annotations": {"workers/message": "Auto-rollback: error rate 7.2% > 5% for 5m"},
        },
    }
    assert all(c.method == "GET" for c in fake.calls)
    assert fake.live_versions("api") == [(v3, 100.0)]


async def test_worker_rollback_429_retry_after_seconds() -> None:
    """A 429 with Retry-After: 7 waits exactly 7 s, re-reads, then posts once more."""
    fake = FakeCloudflare()
    _v1, v2, _v3 = history(fake)
    fake.rate_limit("POST", DEPLOYMENTS, retry_after="7")
    async with cloudflare_stack(fake) as cf:
        result = await worker(cf).rollback(wplan(fake, v2))
        sleeps = cf.clock.sleeps
    assert result.ok
    assert sleeps == [7.0]
    assert [c.method for c in fake.calls] == ["GET", "POST", "GET", "POST"]
    assert len(fake.scripts["api"].deployments) == 4


async def test_worker_state_429_retry_after_http_date() -> None:
    """A Retry-After HTTP date is turned into the wait until that moment."""
    fake = FakeCloudflare()
    history(fake)
    when = email.utils.formatdate(T0 + 12, usegmt=True)
    fake.rate_limit("GET", DEPLOYMENTS, retry_after=when)
    async with cloudflare_stack(fake) as cf:
        state = await worker(cf).state()
        sleeps = cf.clock.sleeps
    assert state.rollback_to is not None
    assert sleeps == [12.0]
    assert fake.count("GET", DEPLOYMENTS) == 2


async def test_worker_rollback_5xx_then_success() -> None:
    """Two 503s on the write are retried (re-reading each time); one deployment results."""
    fake = FakeCloudflare()
    _v1, v2, _v3 = history(fake)
    fake.fail("POST", DEPLOYMENTS, status=503, times=2)
    async with cloudflare_stack(fake) as cf:
        result = await worker(cf).rollback(wplan(fake, v2))
        sleeps = cf.clock.sleeps
    assert result.ok
    assert len(sleeps) == 2
    assert posts(fake) == 3
    assert len(fake.scripts["api"].deployments) == 4
    assert fake.live_versions("api") == [(v2, 100.0)]


async def test_worker_rollback_500_after_the_deployment_was_created() -> None:
    """The API creates the deployment but answers 500: the retry re-reads, sees the
    version live and stops. Exactly one deployment is created in total."""
    fake = FakeCloudflare()
    _v1, v2, _v3 = history(fake)
    fake.fail_after_apply("POST", DEPLOYMENTS, status=500)
    async with cloudflare_stack(fake) as cf:
        result = await worker(cf).rollback(wplan(fake, v2))
    assert result.ok
    assert result.data["already"] is True
    assert posts(fake) == 1
    assert len(fake.scripts["api"].deployments) == 4
    assert [c.method for c in fake.calls] == ["GET", "POST", "GET"]


async def test_worker_rollback_timeout_after_the_deployment_was_created() -> None:
    """The API creates the deployment, then stalls past the client's timeout: a real
    timeout. The retry re-reads and creates nothing more."""
    fake = FakeCloudflare()
    _v1, v2, _v3 = history(fake)
    fake.stall_after_apply("POST", DEPLOYMENTS, seconds=0.5)
    async with cloudflare_stack(fake, timeout_s=0.1) as cf:
        result = await worker(cf).rollback(wplan(fake, v2))
    assert result.ok
    assert "already rolled back" in result.detail
    assert posts(fake) == 1
    assert len(fake.scripts["api"].deployments) == 4


async def test_worker_secrets_changed_refused_by_default() -> None:
    """10220 with on_secret_changed: refuse fails permanently, says secrets changed and
    that escalation is needed, and names the secrets; nothing is deployed."""
    fake = FakeCloudflare()
    _v1, v2, v3 = history(fake)
    fake.secrets_changed("api", ("DB_URL", "API_KEY"))
    async with cloudflare_stack(fake) as cf:
        with pytest.raises(PermanentActionError) as caught:
            await worker(cf).rollback(wplan(fake, v2))
    assert caught.value.code == 10220
    message = str(caught.value)
    assert "secrets changed" in message
    assert "escalation needed" in message
    assert "DB_URL, API_KEY" in message
    assert posts(fake) == 1
    assert fake.live_versions("api") == [(v3, 100.0)]


async def test_worker_secrets_changed_forced_when_configured() -> None:
    """With on_secret_changed: force, the same body is re-posted with ?force=true."""
    fake = FakeCloudflare()
    _v1, v2, _v3 = history(fake)
    fake.secrets_changed("api")
    async with cloudflare_stack(fake) as cf:
        result = await worker(cf, when_secrets_changed="force").rollback(wplan(fake, v2))
    assert result.ok
    assert result.data["forced"] is True
    post = [c for c in fake.calls if c.method == "POST"]
    assert [c.query for c in post] == [{}, {"force": "true"}]
    assert post[0].json == post[1].json
    assert fake.live_versions("api") == [(v2, 100.0)]


async def test_worker_other_refusal_names_code_and_message() -> None:
    """A refusal such as a Durable Object migration fails with its code and message."""
    fake = FakeCloudflare()
    _v1, v2, _v3 = history(fake)
    fake.refuse(
        "POST", DEPLOYMENTS, 10021, "Cannot rollback across a Durable Object migration", 400
    )
    async with cloudflare_stack(fake) as cf:
        with pytest.raises(PermanentActionError) as caught:
            await worker(cf).rollback(wplan(fake, v2))
    assert caught.value.code == 10021
    assert "Durable Object migration" in str(caught.value)
    assert "10021" in str(caught.value)
    assert posts(fake) == 1


async def test_worker_waf_html_page_is_a_clear_error() -> None:
    """An HTML challenge page (cf-mitigated: challenge) is reported as such."""
    fake = FakeCloudflare()
    history(fake)
    fake.waf("GET", DEPLOYMENTS)
    async with cloudflare_stack(fake) as cf:
        with pytest.raises(PermanentActionError) as caught:
            await worker(cf).state()
    message = str(caught.value)
    assert "HTML page" in message
    assert "cf-mitigated: challenge" in message
    assert "<html" not in message.lower()


async def test_worker_success_false_on_http_200_is_an_error() -> None:
    """success: false is an error even with HTTP 200; code and message are named."""
    fake = FakeCloudflare()
    _v1, v2, _v3 = history(fake)
    fake.success_false("POST", DEPLOYMENTS, 10013, "An unknown error has occurred")
    async with cloudflare_stack(fake) as cf:
        with pytest.raises(PermanentActionError) as caught:
            await worker(cf).rollback(wplan(fake, v2))
    assert caught.value.code == 10013
    assert "HTTP 200" in str(caught.value)
    assert "An unknown error has occurred" in str(caught.value)


async def test_wrong_token_is_an_auth_error_without_the_token() -> None:
    """A wrong token gives code 10000; the message never contains the token."""
    fake = FakeCloudflare()
    history(fake)
    async with cloudflare_stack(fake, token="wrong-token-value") as cf:
        with pytest.raises(PermanentActionError) as caught:
            await worker(cf).state()
    assert caught.value.code == 10000
    assert "check the API token" in str(caught.value)
    assert "wrong-token-value" not in str(caught.value)
    assert fake.count("GET", DEPLOYMENTS) == 1


async def test_worker_gives_up_after_the_deadline() -> None:
    """A write that keeps failing with 503 stops within the policy and says why."""
    fake = FakeCloudflare()
    _v1, v2, v3 = history(fake)
    fake.fail("POST", DEPLOYMENTS, status=503, times=None)
    policy = RetryPolicy(max_attempts=3)
    async with cloudflare_stack(fake, policy=policy) as cf:
        with pytest.raises(RetryableActionError, match="HTTP 503"):
            await worker(cf).rollback(wplan(fake, v2))
    assert posts(fake) == 3
    assert fake.live_versions("api") == [(v3, 100.0)]


# --- Pages -----------------------------------------------------------------------------


def pages_history(fake: FakeCloudflare) -> dict[str, str]:
    """Old good, good, failed, skipped, a preview, then the live one."""
    ids = {
        "old": fake.add_pages_deployment("site", commit_message="old"),
        "good": fake.add_pages_deployment("site", commit_hash="abc1234def", commit_message="fix"),
        "failed": fake.add_pages_deployment("site", stage="build", status="failure"),
        "skipped": fake.add_pages_deployment("site", is_skipped=True),
        "preview": fake.add_pages_deployment("site", environment="preview"),
        "live": fake.add_pages_deployment("site", commit_message="bad\n\nlong body"),
    }
    # A build still running is newer than live but not live.
    ids["running"] = fake.add_pages_deployment("site", stage="deploy", status="active")
    return ids


async def test_pages_state_skips_failed_skipped_and_preview() -> None:
    """Live is the canonical deployment; the target is the newest successful,
    non-skipped production deployment older than it."""
    fake = FakeCloudflare()
    ids = pages_history(fake)
    async with cloudflare_stack(fake) as cf:
        state = await pages(cf).state()
    assert state.live is not None
    assert state.live.id == ids["live"]
    assert state.live.description.endswith("bad")
    assert state.rollback_to is not None
    assert state.rollback_to.id == ids["good"]
    assert state.rollback_to.version == ids["good"]
    assert state.rollback_to.description == "abc1234 fix"
    list_calls = [c for c in fake.calls if c.path == PAGES_LIST]
    assert list_calls[0].query == {"env": "production", "page": "1", "per_page": "25"}


async def test_pages_state_prefers_healthy() -> None:
    """A deployment verified healthy wins over a more recent one not verified."""
    fake = FakeCloudflare()
    ids = pages_history(fake)
    async with cloudflare_stack(fake) as cf:
        state = await pages(cf).state(healthy={ids["old"]})
    assert state.rollback_to is not None
    assert state.rollback_to.id == ids["old"]


async def test_pages_state_walks_every_page_and_sorts_itself() -> None:
    """60 deployments, the server capping per_page at 10 and listing oldest first:
    all six pages are read and the right target is still found."""
    fake = FakeCloudflare(pages_max_per_page=10, pages_order="oldest")
    ids = [fake.add_pages_deployment("site") for _ in range(60)]
    fake.projects["site"].canonical_id = ids[40]
    async with cloudflare_stack(fake) as cf:
        state = await pages(cf).state()
    assert state.rollback_to is not None
    assert state.rollback_to.id == ids[39]
    pages_read = [c.query["page"] for c in fake.calls if c.path == PAGES_LIST]
    assert pages_read == ["1", "2", "3", "4", "5", "6"]


async def test_pages_state_without_live_or_target() -> None:
    """No canonical deployment, or nothing older that succeeded: no target, with why."""
    fake = FakeCloudflare()
    fake.add_project("site")
    fake.add_pages_deployment("site", stage="build", status="failure")
    async with cloudflare_stack(fake) as cf:
        empty = await pages(cf).state()
        fake.add_pages_deployment("site")
        single = await pages(cf).state()
    assert empty.live is None
    assert "nothing serves production" in empty.why
    assert single.live is not None
    assert single.rollback_to is None
    assert "no successful, non-skipped production deployment" in single.why


async def test_pages_rollback_makes_target_canonical() -> None:
    """POST .../rollback with {} then a confirming read; the list's newest is no longer
    live, and the next state() starts from the canonical one."""
    fake = FakeCloudflare()
    ids = pages_history(fake)
    async with cloudflare_stack(fake) as cf:
        target = pages(cf)
        result = await target.rollback(pplan(fake, ids["good"]))
        after = await target.state()
    assert result.ok
    assert fake.canonical("site") == ids["good"]
    rollback_path = PAGES_ROLLBACK.format(id=ids["good"])
    assert [(c.method, c.path) for c in fake.calls[:3]] == [
        ("GET", PROJECT),
        ("POST", rollback_path),
        ("GET", PROJECT),
    ]
    assert fake.calls[1].json == {}
    assert after.live is not None
    assert after.live.id == ids["good"]
    assert after.rollback_to is not None
    assert after.rollback_to.id == ids["old"]


async def test_pages_rollback_idempotent_and_dry_run() -> None:
    """Already canonical: nothing sent. Dry-run: nothing sent, exact request returned."""
    fake = FakeCloudflare()
    ids = pages_history(fake)
    async with cloudflare_stack(fake) as cf:
        target = pages(cf)
        already = await target.rollback(pplan(fake, ids["live"]))
        dry = await target.rollback(pplan(fake, ids["good"]), dry_run=True)
    assert already.data["already"] is True
    assert dry.would
    assert dry.request == {
        "method": "POST",
        "path": PAGES_ROLLBACK.format(id=ids["good"]),
        "params": {},
        "body": {},
    }
    assert all(c.method == "GET" for c in fake.calls)
    assert fake.canonical("site") == ids["live"]


async def test_pages_rollback_500_after_apply_posts_once() -> None:
    """The rollback applies but answers 500: the retry sees it canonical and stops."""
    fake = FakeCloudflare()
    ids = pages_history(fake)
    fake.fail_after_apply("POST", PAGES_ROLLBACK.format(id=ids["good"]))
    async with cloudflare_stack(fake) as cf:
        result = await pages(cf).rollback(pplan(fake, ids["good"]))
    assert result.data["already"] is True
    assert fake.count("POST", PAGES_ROLLBACK) == 1
    assert fake.canonical("site") == ids["good"]


async def test_pages_rollback_to_preview_is_refused() -> None:
    """Only successful production deployments are valid; the API's refusal is named."""
    fake = FakeCloudflare()
    ids = pages_history(fake)
    async with cloudflare_stack(fake) as cf:
        with pytest.raises(PermanentActionError) as caught:
            await pages(cf).rollback(pplan(fake, ids["preview"]))
    assert caught.value.code == 8000000
    assert "successful builds on production" in str(caught.value)
    assert fake.canonical("site") == ids["live"]


# --- purges ----------------------------------------------------------------------------


async def test_zone_purge_splits_into_requests_of_100() -> None:
    """250 tags go out as 100 + 100 + 50, one purge type per request."""
    tags = tuple(f"tag-{i}" for i in range(250))
    spec = ZonePurgeSpec(type="cloudflare-zone", zone="zone1", tags=tags)
    fake = FakeCloudflare()
    async with cloudflare_stack(fake) as cf:
        result = await ZonePurge("zone", spec, cf.client).purge()
    assert result.ok
    assert [len(p.body["tags"]) for p in fake.purges] == [100, 100, 50]
    assert [t for p in fake.purges for t in p.body["tags"]] == list(tags)
    assert {p.zone for p in fake.purges} == {"zone1"}
    assert result.data["purge_ids"] == [p.id for p in fake.purges]


async def test_zone_purge_everything_retries_429() -> None:
    """purge_everything sends exactly that body, and a 429 is waited out."""
    spec = ZonePurgeSpec(type="cloudflare-zone", zone="zone1", everything=True)
    fake = FakeCloudflare()
    fake.rate_limit("POST", "/zones/{zone}/purge_cache", retry_after="3")
    async with cloudflare_stack(fake) as cf:
        await ZonePurge("zone", spec, cf.client).purge()
        sleeps = cf.clock.sleeps
    assert sleeps == [3.0]
    assert [p.body for p in fake.purges] == [{"purge_everything": True}]


async def test_zone_purge_dry_run() -> None:
    """Dry-run sends nothing and returns every request it would send."""
    spec = ZonePurgeSpec(type="cloudflare-zone", zone="zone1", hosts=("a.example", "b.example"))
    fake = FakeCloudflare()
    async with cloudflare_stack(fake) as cf:
        result = await ZonePurge("zone", spec, cf.client, batch=1).purge(dry_run=True)
    assert result.would
    assert fake.calls == []
    assert result.request == {
        "method": "POST",
        "path": "/zones/zone1/purge_cache",
        "params": {},
        "body": {"hosts": ["a.example"]},
    }
    assert [r["body"] for r in result.data["requests"]] == [
        {"hosts": ["a.example"]},
        {"hosts": ["b.example"]},
    ]


async def test_zone_purge_partial_failure_says_what_went_through() -> None:
    """When the second request is refused the error says one of two went through."""
    spec = ZonePurgeSpec(type="cloudflare-zone", zone="zone1", files=("https://a/1", "https://a/2"))
    fake = FakeCloudflare()
    refusal = Fault("POST", "/zones/zone1/purge_cache", "refuse", status=400, code=1100)
    fake.inject(replace(refusal, message="Too many purge requests", after=1))
    async with cloudflare_stack(fake) as cf:
        with pytest.raises(PermanentActionError, match="1 of 2 requests done") as caught:
            await ZonePurge("zone", spec, cf.client, batch=1).purge()
    assert caught.value.code == 1100
    assert "Too many purge requests" in str(caught.value)
    assert [p.body for p in fake.purges] == [{"files": ["https://a/1"]}]


class AppServer:
    """The app's admin cache endpoint: DELETE /api/admin/cache with a bearer token."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.requests: list[tuple[str, str | None]] = []
        self.router = Router()
        self.router.add("DELETE", "/api/admin/cache", self.handle)

    async def handle(self, request: Request, params: dict[str, str]) -> Response:
        auth = request.headers.get("authorization")
        self.requests.append((request.method, auth))
        if auth != f"Bearer {self.token}":
            return Response.json({"error": "unauthorized"}, 401)
        return Response(204)


async def test_app_cache_purge_sends_delete_with_bearer(tmp_path: Path) -> None:
    """The runbook's DELETE with the token from the settings' secret; dry-run sends nothing."""
    app = AppServer("admin-s3cret")
    settings = load_settings(
        {"WATCHDOG_SECRETS__APP_ADMIN_TOKEN": "admin-s3cret", "WATCHDOG_SECRETS_DIR": str(tmp_path)}
    )
    async with serve(app.router) as srv, httpx.AsyncClient() as http:
        spec = AppCachePurgeSpec(type="app-admin", url=f"{srv.url}/api/admin/cache")
        purge = AppCachePurge.from_settings("app", spec, settings, http=http, clock=InstantClock())
        dry = await purge.purge(dry_run=True)
        assert app.requests == []
        result = await purge.purge()
    assert dry.would
    assert dry.request == {"method": "DELETE", "url": f"{srv.url}/api/admin/cache"}
    assert result.ok
    assert result.data["status"] == 204
    assert app.requests == [("DELETE", "Bearer admin-s3cret")]


async def test_app_cache_purge_wrong_token_and_missing_secret() -> None:
    """A 401 is a permanent error without the token; a missing secret is a config error."""
    app = AppServer("right")
    async with serve(app.router) as srv, httpx.AsyncClient() as http:
        spec = AppCachePurgeSpec(type="app-admin", url=f"{srv.url}/api/admin/cache")
        purge = AppCachePurge(
            "app", spec, http=http, clock=InstantClock(), token=SecretStr("wrong-value")
        )
        with pytest.raises(PermanentActionError) as caught:
            await purge.purge()
        with pytest.raises(ConfigError, match="'app_admin_token' is not set"):
            AppCachePurge("app", spec, http=http, clock=InstantClock(), token=None)
    assert caught.value.code == 401
    assert "wrong-value" not in str(caught.value)
