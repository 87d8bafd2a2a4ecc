"""Roll back a Cloudflare Worker the way ``wrangler rollback`` does (apis.md §2.2):
read the deployments, pick an earlier deployment that had exactly one version at
100 %, and create a new deployment of that version at 100 %.

Differences from wrangler, on purpose: the choice is the version ledger's
(watchdog/ledger.py): never a version live in the deployment being rolled away
from, never one anybody rolled away from, verified-healthy ones first; versions
Cloudflare does not list as deployable are skipped and named. Every attempt re-reads
what is live first: a retried or replayed rollback never deploys twice, and one
whose ``from`` is no longer live (someone deployed meanwhile) stops.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from watchdog.actions.base import deployed_meanwhile
from watchdog.actions.cloudflare_api import (
    SECRETS_CHANGED_CODE,
    ApiResult,
    CloudflareClient,
    changed_secrets,
    parse_time,
    seg,
    target_account,
    truncate_utf8,
)
from watchdog.actions.ledger import choose, describe_step_how, rebuild, verified_from
from watchdog.errors import PermanentActionError
from watchdog.model import (
    ActionResult,
    Candidate,
    Deploy,
    LiveStep,
    Observed,
    RollbackPlan,
    TargetState,
)
from watchdog.rules.response import WorkerTargetSpec
from watchdog.store.base import LedgerEntry

KIND = "cloudflare-worker"


@dataclass(frozen=True)
class WorkerDeployment:
    """One deployment as the API lists it (only the fields the choice needs)."""

    id: str
    created_at: float
    versions: tuple[tuple[str, float], ...]
    message: str = ""
    triggered_by: str = ""
    author: str = ""
    source: str = ""

    @property
    def sole_version(self) -> str | None:
        """The version when exactly one serves 100 % of traffic, else None."""
        if len(self.versions) == 1 and self.versions[0][1] == 100:
            return self.versions[0][0]
        return None

    @property
    def version_ids(self) -> set[str]:
        return {v for v, _ in self.versions}

    def split_text(self) -> str:
        return " / ".join(f"{v} {p:g}%" for v, p in self.versions)


def parse_deployment(raw: Any, where: str) -> WorkerDeployment:
    if not isinstance(raw, dict) or not isinstance(raw.get("id"), str):
        raise PermanentActionError(f"{where}: a deployment without an id")
    versions = raw.get("versions")
    if not isinstance(versions, list) or not versions:
        raise PermanentActionError(f"{where}: deployment {raw['id']} has no versions")
    parsed: list[tuple[str, float]] = []
    for item in versions:
        if not isinstance(item, dict) or not isinstance(item.get("version_id"), str):
            raise PermanentActionError(f"{where}: deployment {raw['id']}: a version without id")
        pct = item.get("percentage")
        if isinstance(pct, bool) or not isinstance(pct, int | float):
            raise PermanentActionError(f"{where}: deployment {raw['id']}: bad percentage")
        parsed.append((item["version_id"], float(pct)))
    annotations = raw.get("annotations")
    if not isinstance(annotations, dict):
        annotations = {}
    return WorkerDeployment(
        id=raw["id"],
        created_at=parse_time(raw.get("created_on"), f"{where}: deployment {raw['id']}"),
        versions=tuple(parsed),
        message=str(annotations.get("workers/message", "")),
        triggered_by=str(annotations.get("workers/triggered_by", "")),
        author=str(raw.get("author_email") or ""),
        source=str(raw.get("source") or ""),
    )


def _bad_versions(live: WorkerDeployment, stable: Sequence[WorkerDeployment]) -> set[str]:
    """The live versions a rollback moves away from. For a gradual deployment that
    still carries the version that was at 100 % before it, that one is not bad."""
    bad = live.version_ids
    if len(live.versions) > 1 and stable and stable[0].sole_version in bad:
        bad = bad - {stable[0].sole_version or ""}
    return bad


def live_label(deployments: Sequence[WorkerDeployment]) -> str:
    """What a plan's ``from`` says for the live deployment: its sole version, or the
    versions a rollback moves away from (a gradual deployment), comma-joined."""
    if not deployments:
        return ""
    live = deployments[0]
    stable = [d for d in deployments[1:] if d.sole_version is not None]
    return live.sole_version or ",".join(sorted(_bad_versions(live, stable)))


def step_of(dep: WorkerDeployment) -> LiveStep:
    how = describe_step_how(dep.source, dep.triggered_by, dep.message)
    detail = ", ".join(
        p
        for p in (
            dep.source,
            dep.author,
            f"triggered by {dep.triggered_by}" if dep.triggered_by else "",
            repr(dep.message) if dep.message else "",
        )
        if p
    )
    return LiveStep(
        dep.id,
        dep.created_at,
        tuple(v for v, _ in dep.versions),
        how,
        detail,
        rollback=dep.triggered_by == "rollback",
    )


def observed_of(
    deployments: Sequence[WorkerDeployment], deployable: Collection[str] | None
) -> Observed:
    """The ledger's view of a Worker's history (``deployments`` newest first)."""
    if not deployments:
        return Observed(None, (), (), (), empty_why="the Worker has no deployments")
    live, older = deployments[0], deployments[1:]
    stable = [d for d in older if d.sole_version is not None]
    bad = _bad_versions(live, stable)
    candidates = []
    for d in stable:
        version = d.sole_version or ""
        blocked = ""
        if deployable is not None and version not in deployable:
            blocked = (
                "not deployable: Cloudflare does not list it among the Worker's "
                f"{len(deployable)} deployable versions (versions?deployable=true; a "
                "deployment may use only recent uploads)"
            )
        candidates.append(Candidate(version, _deploy(d, version), blocked))
    note = f"live is a gradual deployment ({live.split_text()})" if len(live.versions) > 1 else ""
    return Observed(
        live=_deploy(live, live_label(deployments)),
        bad=tuple(sorted(bad)),
        steps=tuple(step_of(d) for d in reversed(deployments)),
        candidates=tuple(candidates),
        empty_why=(
            "no earlier deployment has a single version at 100% other than the live "
            f"version(s) {', '.join(sorted(bad))}"
        ),
        note=note,
        live_since=live.created_at,  # every change of what serves is a new deployment
    )


def _deploy(dep: WorkerDeployment, version: str) -> Deploy:
    text = dep.message or (f"({dep.triggered_by})" if dep.triggered_by else "")
    if len(dep.versions) > 1:
        text = f"gradual: {dep.split_text()}" + (f"; {text}" if text else "")
    return Deploy(dep.id, version, dep.created_at, text, dep.author)


# One lock per script (and event loop) for every move of a Worker's deployment: the
# ramp's steps and the rollbacks each read what is live and then post, and two of those
# in flight at once could land in either order (a step posted before a rollback but
# applied after it would put the rolled-away version back). Keyed by script, not by
# target object, so a reload's new targets share it; dropped when nobody holds it.
_MOVES: weakref.WeakValueDictionary[tuple[int, str], asyncio.Lock] = weakref.WeakValueDictionary()


def _moving(base: str) -> asyncio.Lock:
    """The lock for moves of the Worker at API path ``base`` in this event loop."""
    key = (id(asyncio.get_running_loop()), base)
    lock = _MOVES.get(key)
    if lock is None:
        lock = _MOVES[key] = asyncio.Lock()
    return lock


class WorkerTarget:
    """A Worker script; ``rollback`` creates a deployment of one version at 100 %."""

    kind = KIND

    def __init__(
        self,
        name: str,
        spec: WorkerTargetSpec,
        account_id: str | None,
        client: CloudflareClient,
    ) -> None:
        account = target_account(name, spec.account, account_id)
        self.name = name
        self.spec = spec
        self.account_id = account
        self.client = client
        self._base = f"/accounts/{seg(account)}/workers/scripts/{seg(spec.script)}"
        self._moves_key = client.base_url + self._base

    async def deployments(self, retry: bool = True) -> list[WorkerDeployment]:
        """All deployments, newest first (sorted here; the API's order is not relied on)."""
        path = f"{self._base}/deployments"
        answer = await self.client.get(path, retry=retry)
        raw = answer.result.get("deployments") if isinstance(answer.result, dict) else None
        if not isinstance(raw, list):
            raise PermanentActionError(f"Cloudflare API GET {path}: no deployments list")
        parsed = [parse_deployment(item, f"Cloudflare API GET {path}") for item in raw]
        return sorted(parsed, key=lambda d: d.created_at, reverse=True)

    async def deployable_versions(self) -> set[str]:
        """The versions a deployment may use (the 100 most recent)."""
        path = f"{self._base}/versions"
        answer = await self.client.get(path, params={"deployable": "true"})
        items = answer.result.get("items") if isinstance(answer.result, dict) else None
        if not isinstance(items, list):
            raise PermanentActionError(f"Cloudflare API GET {path}: no items list")
        return {i["id"] for i in items if isinstance(i, dict) and isinstance(i.get("id"), str)}

    async def observe(self, ledger: Mapping[str, LedgerEntry] | None = None) -> Observed:
        """The deployments (all of them: the list is not paginated) and, when there is
        an earlier one, the deployable versions."""
        deployments = await self.deployments()
        deployable = await self.deployable_versions() if len(deployments) > 1 else None
        return observed_of(deployments, deployable)

    async def state(self, healthy: Collection[str] = ()) -> TargetState:
        observed = await self.observe()
        known = verified_from(healthy, self.name)
        entries = {**known, **rebuild(self.name, known, observed, ())}
        return choose(self.name, KIND, observed, entries)

    async def rollback(self, plan: RollbackPlan, dry_run: bool = False) -> ActionResult:
        """Deploy ``plan.to_version`` at 100 %. Each attempt re-reads the live deployment
        first, so a retry after a timeout or 5xx on the write never deploys twice."""
        async for attempt in self.client.retrying(f"roll back worker {self.spec.script}"):
            with attempt:
                async with _moving(self._moves_key):
                    return await self._attempt(plan, dry_run)
        raise AssertionError("unreachable: tenacity re-raises the last error")  # pragma: no cover

    async def _post(self, path: str, body: dict[str, Any], to: str) -> tuple[ApiResult, bool]:
        """POST the deployment; refused for changed secrets (10220), again with
        ``?force=true`` unless ``on_secret_changed`` is 'refuse'. Returns the answer
        and whether it was forced."""
        script = self.spec.script
        try:
            return await self.client.post(path, body, retry=False), False
        except PermanentActionError as exc:
            if exc.code != SECRETS_CHANGED_CODE:
                raise PermanentActionError(
                    f"worker {script}: rollback to version {to} refused: {exc}", exc.code
                ) from None
            names = changed_secrets(str(exc))
            which = f" ({', '.join(names)})" if names else ""
            if self.spec.on_secret_changed == "refuse":  # noqa: S105 (a policy, not a secret)
                raise PermanentActionError(
                    f"worker {script}: rollback to version {to} refused by Cloudflare "
                    f"(code 10220): secrets changed since that version was live{which}. "
                    "on_secret_changed is 'refuse': escalation needed, a human must decide "
                    "whether the old version works with today's secrets",
                    SECRETS_CHANGED_CODE,
                ) from None
        answer = await self.client.post(path, body, params={"force": "true"}, retry=False)
        return answer, True

    async def _attempt(self, plan: RollbackPlan, dry_run: bool) -> ActionResult:
        script, to = self.spec.script, plan.to_version
        deployments = await self.deployments(retry=False)
        live = deployments[0] if deployments else None
        if live is not None and live.sole_version == to:
            return ActionResult(
                "rollback",
                self.name,
                True,
                f"already rolled back: version {to} serves 100% of {script} "
                f"(deployment {live.id}); nothing sent",
                would=dry_run,
                data={"deployment_id": live.id, "version": to, "already": True},
            )
        # A compare-and-swap: only from what the plan saw live. Anything else means a
        # person (a hotfix) or another process deployed since the plan was made.
        now_live = live_label(deployments)
        if now_live != plan.from_version:
            return deployed_meanwhile(self.name, plan, now_live or "nothing", dry_run)
        path = f"{self._base}/deployments"
        body = {
            "strategy": "percentage",
            "versions": [{"version_id": to, "percentage": 100}],
            "annotations": {"workers/message": truncate_utf8(plan.reason)},
        }
        if dry_run:
            sent = await self.client.post(path, body, dry_run=True)
            return ActionResult(
                "rollback",
                self.name,
                True,
                f"would deploy version {to} of {script} at 100%",
                would=True,
                request=sent.request,
            )
        answer, forced = await self._post(path, body, to)
        created = parse_deployment(answer.result, f"Cloudflare API POST {path}")
        if created.sole_version != to:
            raise PermanentActionError(
                f"worker {script}: asked for version {to} at 100% but deployment "
                f"{created.id} serves {created.split_text()}"
            )
        force_note = " with ?force=true (secrets had changed)" if forced else ""
        return ActionResult(
            "rollback",
            self.name,
            True,
            f"deployed version {to} of {script} at 100% (deployment {created.id}){force_note}",
            request=answer.request,
            data={
                "deployment_id": created.id,
                "version": to,
                "from": live.split_text() if live else "",
                "forced": forced,
            },
        )

    async def set_split(
        self, expect: str, versions: Sequence[tuple[str, float]], message: str
    ) -> ActionResult:
        """Deploy ``versions`` (a ramp's step), only from the deployment ``expect`` (a
        compare-and-swap: a person's deploy since then is never overwritten). Already
        live: nothing sent. Each attempt re-reads what is live, so a retry never
        deploys twice."""
        async for attempt in self.client.retrying(f"ramp worker {self.spec.script}"):
            with attempt:
                async with _moving(self._moves_key):
                    return await self._split_attempt(expect, tuple(versions), message)
        raise AssertionError("unreachable: tenacity re-raises the last error")  # pragma: no cover

    async def _split_attempt(
        self, expect: str, versions: tuple[tuple[str, float], ...], message: str
    ) -> ActionResult:
        script, wanted = self.spec.script, WorkerDeployment("", 0.0, versions)
        deployments = await self.deployments(retry=False)
        live = deployments[0] if deployments else None
        if live is not None and sorted(live.versions) == sorted(versions):
            detail = f"already live: {wanted.split_text()} (deployment {live.id}); nothing sent"
            data = {"deployment_id": live.id, "already": True}
            return ActionResult("ramp-step", self.name, True, detail, data=data)
        if live is None or live.id != expect:
            now = live.split_text() if live else "nothing"
            raise PermanentActionError(
                f"worker {script}: not moving the split to {wanted.split_text()}: "
                f"{now} is live (deployment {live.id if live else '-'}), not {expect}: "
                "somebody deployed meanwhile"
            )
        path = f"{self._base}/deployments"
        body = {
            "strategy": "percentage",
            "versions": [{"version_id": v, "percentage": p} for v, p in versions],
            "annotations": {"workers/message": truncate_utf8(message)},
        }
        answer = await self.client.post(path, body, retry=False)
        created = parse_deployment(answer.result, f"Cloudflare API POST {path}")
        detail = f"deployed {created.split_text()} of {script} (deployment {created.id})"
        data = {"deployment_id": created.id, "from": live.split_text()}
        return ActionResult("ramp-step", self.name, True, detail, request=answer.request, data=data)
