"""The github-workflow rollback target: dispatching the runbook's rollback.yml."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from pydantic import SecretStr

from tests.helpers import InstantClock
from tests.notify_helpers import GITHUB_TOKEN, Served, in_process
from watchdog.actions.github_workflow import GithubWorkflowTarget
from watchdog.demo.fakes.receivers import Receivers, WorkflowInput
from watchdog.model import RollbackPlan
from watchdog.rules.response import GithubWorkflowTargetSpec

PLAN = RollbackPlan("ci", "live", "previous", "error-rate: error_rate 7.2% > 5% for 5m")


def _spec(env: Served, **overrides: str) -> GithubWorkflowTargetSpec:
    fields = {
        "type": "github-workflow",
        "repo": "acme/pitchey",
        "component": "worker",
        "api_url": Receivers.github_api_url(env.url),
        **overrides,
    }
    return GithubWorkflowTargetSpec.model_validate(fields)


def _target(env: Served, token: str = GITHUB_TOKEN, **overrides: str) -> GithubWorkflowTarget:
    return GithubWorkflowTarget(
        "ci", _spec(env, **overrides), SecretStr(token), env.http, env.clock
    )


class FlakyTransport(httpx.AsyncBaseTransport):
    """Fails the first requests with a transport error, before or after delivering
    them to the app, then lets requests through."""

    def __init__(self, app: Receivers, failures: list[type[httpx.TransportError]], delivered: bool):
        self.inner = httpx.ASGITransport(app=app)
        self.failures = failures
        self.delivered = delivered

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.failures:
            error = self.failures.pop(0)
            if self.delivered:  # the request arrived; only the answer was lost
                response = await self.inner.handle_async_request(request)
                await response.aread()
            raise error("injected", request=request)
        return await self.inner.handle_async_request(request)


@asynccontextmanager
async def flaky(
    failures: list[type[httpx.TransportError]], delivered: bool
) -> AsyncIterator[Served]:
    receivers = Receivers(github_token=GITHUB_TOKEN)
    receivers.github.add_workflow("acme/pitchey")
    transport = FlakyTransport(receivers, failures, delivered)
    async with httpx.AsyncClient(transport=transport) as http:
        yield Served(receivers, "http://receivers.test", http, InstantClock())


async def test_state_says_what_it_will_dispatch() -> None:
    """state() explains the dispatch; the live version is unknown, the target 'previous'."""
    async with in_process() as env:
        state = await _target(env).state()
    assert state.why == "dispatches rollback.yml on acme/pitchey@main with component=worker"
    assert state.live is None
    assert state.rollback_to is not None
    assert state.rollback_to.version == "previous"


async def test_dispatch_posts_ref_and_runbook_inputs_with_github_headers() -> None:
    """POST .../workflows/rollback.yml/dispatches with ref, component and reason; 204 is ok."""
    async with in_process() as env:
        result = await _target(env).rollback(PLAN)
    assert result.ok, result.detail
    [dispatch] = env.receivers.github.dispatches
    assert dispatch.repo == "acme/pitchey"
    assert dispatch.workflow == "rollback.yml"
    assert dispatch.ref == "main"
    assert dispatch.inputs == {"component": "worker", "reason": PLAN.reason}
    assert dispatch.headers["accept"] == "application/vnd.github+json"
    assert dispatch.headers["x-github-api-version"] == "2022-11-28"
    assert dispatch.headers["authorization"] == f"Bearer {GITHUB_TOKEN}"
    assert GITHUB_TOKEN not in repr(result)


async def test_unknown_workflow_is_a_permanent_failure() -> None:
    """404 (no such workflow or no access) is reported, not retried."""
    async with in_process() as env:
        result = await _target(env, workflow="nope.yml").rollback(PLAN)
    assert not result.ok
    assert "HTTP 404" in result.detail
    assert result.data == {"dispatched": False}
    assert len(env.receivers.github.requests) == 1


async def test_inputs_the_workflow_does_not_declare_are_a_422() -> None:
    """A workflow without a 'reason' input refuses the dispatch with 422."""
    async with in_process() as env:
        env.receivers.github.add_workflow(
            "acme/pitchey", "old.yml", {"component": WorkflowInput(required=True)}
        )
        result = await _target(env, workflow="old.yml").rollback(PLAN)
    assert not result.ok
    assert "HTTP 422" in result.detail
    assert "Unexpected inputs" in result.detail


async def test_bad_token_is_401_without_leaking_it() -> None:
    """A wrong token fails; the token is in no result field."""
    async with in_process() as env:
        result = await _target(env, token="ghp_wrong_TOKEN").rollback(PLAN)
    assert not result.ok
    assert "HTTP 401" in result.detail
    assert "ghp_wrong_TOKEN" not in repr(result)


async def test_server_error_is_not_retried_because_the_run_may_exist() -> None:
    """A 500 after sending may have started a run: one request, outcome unknown."""
    async with in_process() as env:
        env.receivers.github.fail_next(500)
        result = await _target(env).rollback(PLAN)
    assert not result.ok
    assert "may have taken effect" in result.detail
    assert "check the workflow's runs" in result.detail
    assert result.data == {"outcome_unknown": True}
    assert len(env.receivers.github.requests) == 1
    assert env.clock.sleeps == []


async def test_rate_limit_429_is_retried_after_retry_after() -> None:
    """429 was refused, so it is safe to retry, after Retry-After."""
    async with in_process() as env:
        env.receivers.github.fail_next(429, retry_after=7)
        result = await _target(env).rollback(PLAN)
    assert result.ok, result.detail
    assert env.clock.sleeps == [7.0]
    assert len(env.receivers.github.dispatches) == 1


async def test_connect_error_is_retried() -> None:
    """A connection that never opened sent nothing: retry it."""
    async with flaky([httpx.ConnectError, httpx.ConnectTimeout], delivered=False) as env:
        result = await _target(env).rollback(PLAN)
    assert result.ok, result.detail
    assert len(env.clock.sleeps) == 2
    assert len(env.receivers.github.dispatches) == 1


async def test_timeout_after_sending_is_not_retried() -> None:
    """A read timeout after the request went out: report, never dispatch twice."""
    async with flaky([httpx.ReadTimeout], delivered=True) as env:
        result = await _target(env).rollback(PLAN)
    assert not result.ok
    assert "may have taken effect" in result.detail
    assert len(env.receivers.github.dispatches) == 1
    assert env.clock.sleeps == []


async def test_same_plan_twice_dispatches_once() -> None:
    """Idempotent within the process: a repeated plan does not start a second run."""
    async with in_process() as env:
        target = _target(env)
        first = await target.rollback(PLAN)
        second = await target.rollback(PLAN)
    assert first.ok
    assert second.ok
    assert second.detail.startswith("already dispatched")
    assert len(env.receivers.github.dispatches) == 1


async def test_dry_run_shows_the_dispatch_and_sends_nothing() -> None:
    """Dry-run returns method, path and body; the token is not in it."""
    async with in_process() as env:
        result = await _target(env).rollback(PLAN, dry_run=True)
    assert result.would
    assert result.request == {
        "method": "POST",
        "path": "/repos/acme/pitchey/actions/workflows/rollback.yml/dispatches",
        "body": {"ref": "main", "inputs": {"component": "worker", "reason": PLAN.reason}},
    }
    assert env.receivers.github.requests == []
