"""Build a rule set's actions (targets, purges, notifiers) by their ``type:``."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

import httpx

from watchdog.actions.base import Purge, Target
from watchdog.actions.cloudflare_api import CloudflareClient
from watchdog.actions.cloudflare_pages import PagesTarget
from watchdog.actions.cloudflare_worker import WorkerTarget
from watchdog.actions.github_workflow import GithubWorkflowTarget
from watchdog.actions.notify.base import Notifier
from watchdog.actions.notify.registry import build_notifier
from watchdog.actions.purge import AppCachePurge, ZonePurge
from watchdog.clock import Clock
from watchdog.errors import ConfigError
from watchdog.rules.load import RuleSet
from watchdog.rules.response import (
    AppCachePurgeSpec,
    GithubWorkflowTargetSpec,
    PagesTargetSpec,
    PurgeSpec,
    TargetSpec,
    WorkerTargetSpec,
    ZonePurgeSpec,
)
from watchdog.settings import Settings


@dataclass
class Actions:
    targets: dict[str, Target]
    purges: dict[str, Purge]
    notifiers: dict[str, Notifier]
    target_purges: dict[str, tuple[str, ...]]


class _Deps:
    """What the factories build with; one Cloudflare client, made when first needed."""

    def __init__(self, settings: Settings, http: httpx.AsyncClient, clock: Clock) -> None:
        self.settings = settings
        self.http = http
        self.clock = clock
        self._client: CloudflareClient | None = None

    def cloudflare(self) -> CloudflareClient:
        if self._client is None:
            self._client = _cloudflare(self.settings, self.http, self.clock)
        return self._client


def _cloudflare(settings: Settings, http: httpx.AsyncClient, clock: Clock) -> CloudflareClient:
    if settings.cloudflare_api_token is None:
        raise ConfigError(
            "CLOUDFLARE_API_TOKEN: not set (the rules have Cloudflare targets or zone purges)"
        )
    return CloudflareClient(http, settings.cloudflare_api_url, settings.cloudflare_api_token, clock)


_Spec = TypeVar("_Spec")


def _expect(what: str, spec: object, kind: type[_Spec]) -> _Spec:
    if not isinstance(spec, kind):  # the rules model's discriminator makes this unreachable
        raise ConfigError(f"{what}: a {kind.__name__} was expected, got {type(spec).__name__}")
    return spec


def _worker(name: str, spec: TargetSpec, deps: _Deps) -> Target:
    spec = _expect(f"target {name}", spec, WorkerTargetSpec)
    return WorkerTarget(name, spec, deps.settings.cloudflare_account_id, deps.cloudflare())


def _pages(name: str, spec: TargetSpec, deps: _Deps) -> Target:
    spec = _expect(f"target {name}", spec, PagesTargetSpec)
    return PagesTarget(name, spec, deps.settings.cloudflare_account_id, deps.cloudflare())


def _github_workflow(name: str, spec: TargetSpec, deps: _Deps) -> Target:
    spec = _expect(f"target {name}", spec, GithubWorkflowTargetSpec)
    token = deps.settings.secret(spec.token_secret)
    if token is None:
        raise ConfigError(
            f"target {name}: secret {spec.token_secret!r} is not set "
            f"(WATCHDOG_SECRETS__{spec.token_secret.upper()})"
        )
    return GithubWorkflowTarget(name, spec, token, deps.http, deps.clock)


def _app_admin(name: str, spec: PurgeSpec, deps: _Deps) -> Purge:
    spec = _expect(f"purge {name}", spec, AppCachePurgeSpec)
    token = deps.settings.secret(spec.token_secret)
    return AppCachePurge(name, spec, http=deps.http, clock=deps.clock, token=token)


def _zone(name: str, spec: PurgeSpec, deps: _Deps) -> Purge:
    return ZonePurge(name, _expect(f"purge {name}", spec, ZonePurgeSpec), deps.cloudflare())


# The rules file's ``type:`` to the factory that builds it.
TARGET_FACTORIES: dict[str, Callable[[str, TargetSpec, _Deps], Target]] = {
    "cloudflare-worker": _worker,
    "cloudflare-pages": _pages,
    "github-workflow": _github_workflow,
}
PURGE_FACTORIES: dict[str, Callable[[str, PurgeSpec, _Deps], Purge]] = {
    "app-admin": _app_admin,
    "cloudflare-zone": _zone,
}


def build_actions(
    ruleset: RuleSet,
    settings: Settings,
    http: httpx.AsyncClient,
    clock: Clock,
    statuspage_incidents: Mapping[str, str] | None = None,
) -> Actions:
    """Every target, purge and notifier of ``ruleset``; ``ConfigError`` names what is missing."""
    deps = _Deps(settings, http, clock)
    targets = {
        name: TARGET_FACTORIES[spec.type](name, spec, deps)
        for name, spec in ruleset.targets.items()
    }
    purges = {
        name: PURGE_FACTORIES[spec.type](name, spec, deps) for name, spec in ruleset.purges.items()
    }
    notifiers = {
        name: build_notifier(
            name, spec, settings, http, clock, statuspage_incidents=statuspage_incidents
        )
        for name, spec in ruleset.notifiers.items()
    }
    target_purges = {name: tuple(spec.purge) for name, spec in ruleset.targets.items()}
    return Actions(targets, purges, notifiers, target_purges)
