"""Roll back by dispatching the runbook's ``rollback.yml`` GitHub Actions workflow.

``POST /repos/{repo}/actions/workflows/{workflow}/dispatches`` with ``ref`` and the
workflow's inputs ``component`` and ``reason``. GitHub answers 204 (or 200 with run
details). A dispatch is not idempotent: a 5xx or a timeout after sending may still
have started a run, so only a 429 or a connection that never opened is retried;
anything else is reported as "may have happened" for a human to check.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import SecretStr

from watchdog.clock import Clock
from watchdog.errors import ActionError, PermanentActionError, RetryableActionError
from watchdog.http.client import RetryPolicy, send
from watchdog.model import ActionResult, Deploy, RollbackPlan, TargetState
from watchdog.rules.response import GithubWorkflowTargetSpec

API_VERSION = "2022-11-28"
DISPATCH_POLICY = RetryPolicy(deadline_s=60.0, retry_statuses=frozenset({429}), idempotent=False)
_REASON_MAX = 1000


class GithubWorkflowTarget:
    """A ``github-workflow`` target. It cannot see what is live: the workflow itself
    (``wrangler rollback``) picks the previous deployment, so ``state()`` reports the
    live version as unknown and the rollback version as ``previous``."""

    kind = "github-workflow"

    def __init__(
        self,
        name: str,
        spec: GithubWorkflowTargetSpec,
        token: SecretStr,
        http: httpx.AsyncClient,
        clock: Clock,
        policy: RetryPolicy = DISPATCH_POLICY,
    ) -> None:
        self.name = name
        self.spec = spec
        self._token = token
        self._http = http
        self._clock = clock
        self._policy = policy
        self._done: dict[RollbackPlan, ActionResult] = {}

    @property
    def description(self) -> str:
        s = self.spec
        return f"dispatches {s.workflow} on {s.repo}@{s.ref} with component={s.component}"

    @property
    def path(self) -> str:
        workflow = quote(self.spec.workflow, safe="")
        return f"/repos/{self.spec.repo}/actions/workflows/{workflow}/dispatches"

    def body(self, plan: RollbackPlan) -> dict[str, Any]:
        reason = plan.reason if len(plan.reason) <= _REASON_MAX else plan.reason[:_REASON_MAX]
        return {
            "ref": self.spec.ref,
            "inputs": {"component": self.spec.component, "reason": reason},
        }

    async def state(self, healthy: Collection[str] = ()) -> TargetState:
        previous = Deploy(
            id=f"{self.spec.repo}/{self.spec.workflow}@{self.spec.ref}",
            version="previous",
            created_at=0.0,
            description=f"whatever {self.spec.workflow} rolls back to",
            author="github-actions",
        )
        return TargetState(
            target=self.name, kind=self.kind, live=None, rollback_to=previous, why=self.description
        )

    async def rollback(self, plan: RollbackPlan, dry_run: bool = False) -> ActionResult:
        body = self.body(plan)
        if dry_run:
            return ActionResult(
                action="rollback",
                target=self.name,
                ok=True,
                detail=f"would dispatch: {self.description}",
                would=True,
                request={"method": "POST", "path": self.path, "body": body},
            )
        if plan in self._done:  # the same plan twice in one process: one run is enough
            earlier = self._done[plan]
            return ActionResult(
                action="rollback",
                target=self.name,
                ok=True,
                detail=f"already dispatched: {self.description}",
                data=dict(earlier.data),
            )
        result = await self._dispatch(body)
        if result.ok:
            self._done[plan] = result
        return result

    async def _dispatch(self, body: dict[str, Any]) -> ActionResult:
        what = f"github workflow dispatch for {self.name!r}"
        try:
            response = await send(
                self._http,
                "POST",
                self.spec.api_url.rstrip("/") + self.path,
                what=what,
                clock=self._clock,
                policy=self._policy,
                json=body,
                headers={
                    "Authorization": f"Bearer {self._token.get_secret_value()}",
                    "Accept": "application/vnd.github+json",
                    "X-GitHub-Api-Version": API_VERSION,
                    "User-Agent": "rollback-watchdog",
                },
            )
        except (PermanentActionError, RetryableActionError) as exc:
            # Refused, or never got through: certainly no run was started.
            return self._result(False, str(exc), dispatched=False)
        except ActionError as exc:
            detail = f"{exc}; check the workflow's runs before dispatching again"
            return self._result(False, detail, outcome_unknown=True)
        data: dict[str, Any] = {}
        if response.status_code == 200:
            run = _json(response)
            for key in ("workflow_run_id", "run_url", "html_url"):
                if key in run:
                    data[key] = run[key]
        return self._result(True, f"dispatched: {self.description}", **data)

    def _result(self, ok: bool, detail: str, **data: Any) -> ActionResult:
        return ActionResult(action="rollback", target=self.name, ok=ok, detail=detail, data=data)


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}
