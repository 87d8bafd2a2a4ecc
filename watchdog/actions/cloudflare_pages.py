"""Roll back a Cloudflare Pages project (apis.md §3): what serves production is
``project.canonical_deployment`` (never "the newest deployment": after a rollback that
is no longer live). The rollback target is the most recent successful, non-skipped
production deployment older than the live one; ``POST .../deployments/{id}/rollback``
makes it canonical, and the result is confirmed by reading the project again.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from watchdog.actions.base import ActionResult, Deploy, RollbackPlan, TargetState
from watchdog.actions.cloudflare_api import CloudflareClient, parse_time, seg, target_account
from watchdog.clock import iso
from watchdog.errors import PermanentActionError, RetryableActionError
from watchdog.rules_model import PagesTargetSpec

KIND = "cloudflare-pages"


@dataclass(frozen=True)
class PagesDeployment:
    id: str
    created_at: float
    environment: str
    stage: str
    status: str
    is_skipped: bool
    commit_hash: str = ""
    commit_message: str = ""

    @property
    def eligible(self) -> bool:
        """A valid rollback target: a production build that deployed successfully."""
        return (
            self.environment == "production"
            and self.stage == "deploy"
            and self.status == "success"
            and not self.is_skipped
        )

    def as_deploy(self) -> Deploy:
        text = " ".join(p for p in (self.commit_hash[:7], self.commit_message) if p)
        return Deploy(self.id, self.id, self.created_at, text)


def parse_pages_deployment(raw: Any, where: str) -> PagesDeployment:
    if not isinstance(raw, dict) or not isinstance(raw.get("id"), str):
        raise PermanentActionError(f"{where}: a deployment without an id")
    stage = _object(raw.get("latest_stage"))
    meta = _object(_object(raw.get("deployment_trigger")).get("metadata"))
    message = str(meta.get("commit_message") or "").strip()
    return PagesDeployment(
        id=raw["id"],
        created_at=parse_time(raw.get("created_on"), f"{where}: deployment {raw['id']}"),
        environment=str(raw.get("environment", "")),
        stage=str(stage.get("name", "")),
        status=str(stage.get("status", "")),
        is_skipped=raw.get("is_skipped") is True,
        commit_hash=str(meta.get("commit_hash") or ""),
        commit_message=message.splitlines()[0] if message else "",
    )


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


class PagesTarget:
    """A Pages project's production environment."""

    kind = KIND

    def __init__(
        self,
        name: str,
        spec: PagesTargetSpec,
        account_id: str | None,
        client: CloudflareClient,
        *,
        per_page: int = 25,
        max_pages: int = 40,
    ) -> None:
        account = target_account(name, spec.account, account_id)
        self.name = name
        self.spec = spec
        self.account_id = account
        self.client = client
        self.per_page = per_page
        self.max_pages = max_pages
        self._base = f"/accounts/{seg(account)}/pages/projects/{seg(spec.project)}"

    async def live(self, retry: bool = True) -> PagesDeployment | None:
        """What serves production now: the project's canonical deployment."""
        answer = await self.client.get(self._base, retry=retry)
        project = answer.result
        if not isinstance(project, dict):
            raise PermanentActionError(f"Cloudflare API GET {self._base}: no project object")
        canonical = project.get("canonical_deployment")
        if canonical is None:
            return None
        return parse_pages_deployment(canonical, f"Cloudflare API GET {self._base}")

    async def production_deployments(self) -> list[PagesDeployment]:
        """Production deployments, newest first, walking the pages of the list
        (at most ``max_pages``); sorted here because the API's order is not documented."""
        path = f"{self._base}/deployments"
        found: list[PagesDeployment] = []
        for page in range(1, self.max_pages + 1):
            params = {"env": "production", "page": str(page), "per_page": str(self.per_page)}
            answer = await self.client.get(path, params=params)
            if not isinstance(answer.result, list):
                raise PermanentActionError(f"Cloudflare API GET {path}: result is not a list")
            found.extend(
                parse_pages_deployment(raw, f"Cloudflare API GET {path}") for raw in answer.result
            )
            if not _more_pages(answer.result_info, page, len(answer.result), self.per_page):
                break
        production = [d for d in found if d.environment == "production"]
        return sorted({d.id: d for d in production}.values(), key=lambda d: -d.created_at)

    async def state(self, healthy: Collection[str] = ()) -> TargetState:
        live = await self.live()
        if live is None:
            return TargetState(
                self.name, KIND, None, None, "nothing serves production (no canonical deployment)"
            )
        deployments = await self.production_deployments()
        candidates = [
            d
            for d in deployments
            if d.eligible and d.id != live.id and d.created_at < live.created_at
        ]
        if not candidates:
            why = (
                "no successful, non-skipped production deployment older than the live one "
                f"({live.id}, {iso(live.created_at)})"
            )
            return TargetState(self.name, KIND, live.as_deploy(), None, why)
        for d in candidates:
            if d.id in healthy:
                why = (
                    f"deployment {d.id} ({iso(d.created_at)}) served production "
                    "and was seen healthy"
                )
                return TargetState(self.name, KIND, live.as_deploy(), d.as_deploy(), why)
        first = candidates[0]
        note = "; none of the candidates was seen healthy" if healthy else ""
        why = (
            f"deployment {first.id} ({iso(first.created_at)}) is the most recent successful "
            f"production deployment before the live one{note}"
        )
        return TargetState(self.name, KIND, live.as_deploy(), first.as_deploy(), why)

    async def rollback(self, plan: RollbackPlan, dry_run: bool = False) -> ActionResult:
        """Make ``plan.to_version`` (a deployment id) canonical. Each attempt reads the
        project first, so a retried or replayed rollback does nothing twice."""
        async for attempt in self.client.retrying(f"roll back pages {self.spec.project}"):
            with attempt:
                return await self._attempt(plan, dry_run)
        raise AssertionError("unreachable: tenacity re-raises the last error")  # pragma: no cover

    async def _attempt(self, plan: RollbackPlan, dry_run: bool) -> ActionResult:
        project, to = self.spec.project, plan.to_version
        live = await self.live(retry=False)
        if live is not None and live.id == to:
            return ActionResult(
                "rollback",
                self.name,
                True,
                f"already rolled back: deployment {to} serves production of {project}; "
                "nothing sent",
                would=dry_run,
                data={"deployment_id": to, "already": True},
            )
        path = f"{self._base}/deployments/{seg(to)}/rollback"
        if dry_run:
            sent = await self.client.post(path, {}, dry_run=True)
            return ActionResult(
                "rollback",
                self.name,
                True,
                f"would make deployment {to} serve production of {project}",
                would=True,
                request=sent.request,
            )
        try:
            answer = await self.client.post(path, {}, retry=False)
        except PermanentActionError as exc:
            raise PermanentActionError(
                f"pages {project}: rollback to deployment {to} refused: {exc}", exc.code
            ) from None
        now = await self.live(retry=False)
        if now is None or now.id != to:
            # Accepted but not (yet) live: the next attempt re-reads and, if needed, re-posts
            # (a Pages rollback only moves the canonical pointer, so repeating it is safe).
            raise RetryableActionError(
                f"pages {project}: rollback to {to} accepted, but production is served by "
                f"{now.id if now else 'nothing'}"
            )
        return ActionResult(
            "rollback",
            self.name,
            True,
            f"deployment {to} now serves production of {project}",
            request=answer.request,
            data={"deployment_id": to, "from": live.id if live else ""},
        )


def _more_pages(info: dict[str, Any] | None, page: int, count: int, requested: int) -> bool:
    """More pages while ``page * per_page < total_count`` (apis.md §1), with the
    server's ``per_page`` (it may cap ours); an empty page always ends the walk, and
    without ``result_info`` the walk goes on while pages come back full."""
    if count == 0:
        return False
    info = info or {}
    per_page, total = info.get("per_page"), info.get("total_count")
    if isinstance(per_page, int) and isinstance(total, int):
        return page * per_page < total
    total_pages = info.get("total_pages")
    if isinstance(total_pages, int):
        return page < total_pages
    return count >= requested
