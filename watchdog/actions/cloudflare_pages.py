"""Roll back a Cloudflare Pages project (apis.md §3): what serves production is
``project.canonical_deployment`` (never "the newest deployment": after a rollback that
is no longer live). The rollback target is the version ledger's choice among the
successful, non-skipped production deployments older than the live one;
``POST .../deployments/{id}/rollback`` makes it canonical, and the result is
confirmed by reading the project again.

The list is paginated: the walk goes on until the choice is certain (past the live
deployment, with the ledger's preferred candidate found) or the list ends. A list
longer than ``max_pages`` allows leaves the target uncertain: no choice, and why.
Successful production deployments newer than the live one were rolled away from
(production was moved back past them); the Pages API keeps no history of the
canonical pointer, so that is all the remote can tell.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from watchdog.actions.base import deployed_meanwhile
from watchdog.actions.cloudflare_api import CloudflareClient, parse_time, seg, target_account
from watchdog.actions.ledger import choose, describe_step_how, rebuild, verified_from
from watchdog.errors import PermanentActionError, RetryableActionError
from watchdog.model import (
    ActionResult,
    Candidate,
    Deploy,
    LiveStep,
    Observed,
    RollbackPlan,
    TargetState,
)
from watchdog.rules.response import PagesTargetSpec
from watchdog.store.base import LedgerEntry
from watchdog.units import iso

KIND = "cloudflare-pages"
DEPLOYMENT_NOT_FOUND_CODE = 8000009
VERIFIED_LOOKUPS = 20  # verified deployments beyond an early-stopped walk, read by id


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
    trigger: str = ""

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

    def step(self) -> LiveStep:
        text = " ".join(p for p in (self.commit_hash[:7], repr(self.commit_message)) if p)
        detail = f"{self.trigger}: {text}" if self.trigger else text
        return LiveStep(
            self.id, self.created_at, (self.id,), describe_step_how("", self.trigger, ""), detail
        )


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
        trigger=str(_object(raw.get("deployment_trigger")).get("type") or ""),
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
        max_pages: int = 400,
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

    async def observe(self, ledger: Mapping[str, LedgerEntry] | None = None) -> Observed:
        """Live, then the production deployments page by page (newest first, as the
        API lists them; if it does not, the whole list is read) until the choice is
        certain: past the live deployment with a usable candidate found. A version the
        ledger holds as verified healthy that the walk did not reach (older) is read
        by its id, since the choice would prefer it."""
        ledger = ledger or {}
        live = await self.live()
        if live is None:
            why = "nothing serves production (no canonical deployment)"
            return Observed(None, (), (), (), empty_why=why)
        path = f"{self._base}/deployments"
        found: dict[str, PagesDeployment] = {}
        newest_first, last = True, math.inf
        uncertain = ""
        for page in range(1, self.max_pages + 1):
            params = {"env": "production", "page": str(page), "per_page": str(self.per_page)}
            answer = await self.client.get(path, params=params)
            if not isinstance(answer.result, list):
                raise PermanentActionError(f"Cloudflare API GET {path}: result is not a list")
            for raw in answer.result:
                dep = parse_pages_deployment(raw, f"Cloudflare API GET {path}")
                newest_first = newest_first and dep.created_at <= last
                last = dep.created_at
                if dep.environment == "production":
                    found[dep.id] = dep
            if not _more_pages(answer.result_info, page, len(answer.result), self.per_page):
                break
            if newest_first and _certain(found, live, ledger):
                await self._read_verified(found, live, ledger)
                break
        else:
            total = _total(answer.result_info)
            uncertain = (
                f"read {len(found)} production deployments in {self.max_pages} pages (max_pages) "
                f"of {total if total is not None else 'more'}, and the choice could lie beyond"
            )
        return _observed(live, found, uncertain)

    async def _read_verified(
        self,
        found: dict[str, PagesDeployment],
        live: PagesDeployment,
        ledger: Mapping[str, LedgerEntry],
    ) -> None:
        """Add the verified-healthy deployments the walk stopped short of (the most
        recently verified first, at most ``VERIFIED_LOOKUPS``); one deleted since is
        simply gone."""
        unseen = sorted(
            (
                e
                for v, e in ledger.items()
                if e.verified and not e.rolled_away and v not in found and v != live.id
            ),
            key=lambda e: -(e.verified_at or 0.0),
        )
        for entry in unseen[:VERIFIED_LOOKUPS]:
            path = f"{self._base}/deployments/{seg(entry.version)}"
            try:
                answer = await self.client.get(path)
            except PermanentActionError as exc:
                if exc.code == DEPLOYMENT_NOT_FOUND_CODE:
                    continue
                raise
            dep = parse_pages_deployment(answer.result, f"Cloudflare API GET {path}")
            if dep.environment == "production":
                found[dep.id] = dep

    async def state(self, healthy: Collection[str] = ()) -> TargetState:
        known = verified_from(healthy, self.name)
        observed = await self.observe(known)
        entries = {**known, **rebuild(self.name, known, observed, ())}
        return choose(self.name, KIND, observed, entries)

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
        # A compare-and-swap: only from what the plan saw live (see the Worker target).
        if live is None:
            return deployed_meanwhile(self.name, plan, "nothing", dry_run)
        if live.id != plan.from_version:
            return deployed_meanwhile(self.name, plan, live.id, dry_run)
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
            data={"deployment_id": to, "from": live.id},
        )


def _total(info: dict[str, Any] | None) -> int | None:
    total = (info or {}).get("total_count")
    return total if isinstance(total, int) else None


def _certain(
    found: Mapping[str, PagesDeployment], live: PagesDeployment, ledger: Mapping[str, LedgerEntry]
) -> bool:
    """Read far enough (newest first): past the live deployment, a usable candidate
    found (verified ones beyond are then read by id)."""
    return any(
        d.created_at < live.created_at
        and d.eligible
        and not (d.id in ledger and ledger[d.id].rolled_away)
        for d in found.values()
    )


def _observed(
    live: PagesDeployment, found: Mapping[str, PagesDeployment], uncertain: str
) -> Observed:
    newest_first = sorted(found.values(), key=lambda d: -d.created_at)
    eligible_oldest_first = [d for d in reversed(newest_first) if d.eligible]
    steps = [d.step() for d in eligible_oldest_first]
    newer = [d.id for d in eligible_oldest_first if d.created_at > live.created_at]
    if newer:
        # Production serves an older deployment than the newest successful one: someone
        # (a person, the watchdog) rolled back past every newer one.
        steps.append(
            LiveStep(
                live.id,
                max(d.created_at for d in eligible_oldest_first),
                (live.id,),
                "unknown",
                "production serves an older deployment (a rollback)",
                rollback=True,
                away=tuple(newer),
            )
        )
    # Failed, skipped and running builds never served production: not versions to go to.
    candidates = tuple(
        Candidate(d.id, d.as_deploy())
        for d in newest_first
        if d.eligible and d.id != live.id and d.created_at < live.created_at
    )
    why = (
        "no successful, non-skipped production deployment older than the live one "
        f"({live.id}, {iso(live.created_at)})"
    )
    return Observed(
        live=live.as_deploy(),
        bad=(live.id,),
        steps=tuple(steps),
        candidates=candidates,
        empty_why=why,
        uncertain=uncertain,
        # A production deployment newer than live means a rollback at an unknown time.
        live_since=None if newer or uncertain else live.created_at,
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
