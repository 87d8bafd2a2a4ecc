"""Build a rule set's actions (targets, purges, notifiers) by their ``type:``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

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
from watchdog.settings import Settings


@dataclass
class Actions:
    targets: dict[str, Target]
    purges: dict[str, Purge]
    notifiers: dict[str, Notifier]
    target_purges: dict[str, tuple[str, ...]]


def _cloudflare(settings: Settings, http: httpx.AsyncClient, clock: Clock) -> CloudflareClient:
    if settings.cloudflare_api_token is None:
        raise ConfigError(
            "CLOUDFLARE_API_TOKEN: not set (the rules have Cloudflare targets or zone purges)"
        )
    return CloudflareClient(http, settings.cloudflare_api_url, settings.cloudflare_api_token, clock)


def build_actions(
    ruleset: RuleSet,
    settings: Settings,
    http: httpx.AsyncClient,
    clock: Clock,
    statuspage_incidents: Mapping[str, str] | None = None,
) -> Actions:
    """Every target, purge and notifier of ``ruleset``; ``ConfigError`` names what is missing."""
    client: CloudflareClient | None = None

    def cloudflare() -> CloudflareClient:
        nonlocal client
        if client is None:
            client = _cloudflare(settings, http, clock)
        return client

    targets: dict[str, Target] = {}
    for name, spec in ruleset.targets.items():
        if spec.type == "cloudflare-worker":
            targets[name] = WorkerTarget(name, spec, settings.cloudflare_account_id, cloudflare())
        elif spec.type == "cloudflare-pages":
            targets[name] = PagesTarget(name, spec, settings.cloudflare_account_id, cloudflare())
        else:
            token = settings.secret(spec.token_secret)
            if token is None:
                raise ConfigError(
                    f"target {name}: secret {spec.token_secret!r} is not set "
                    f"(WATCHDOG_SECRETS__{spec.token_secret.upper()})"
                )
            targets[name] = GithubWorkflowTarget(name, spec, token, http, clock)
    purges: dict[str, Purge] = {}
    for name, purge in ruleset.purges.items():
        if purge.type == "app-admin":
            purges[name] = AppCachePurge(
                name, purge, http=http, clock=clock, token=settings.secret(purge.token_secret)
            )
        else:
            purges[name] = ZonePurge(name, purge, cloudflare())
    notifiers = {
        name: build_notifier(
            name, spec, settings, http, clock, statuspage_incidents=statuspage_incidents
        )
        for name, spec in ruleset.notifiers.items()
    }
    target_purges = {name: tuple(spec.purge) for name, spec in ruleset.targets.items()}
    return Actions(targets, purges, notifiers, target_purges)
