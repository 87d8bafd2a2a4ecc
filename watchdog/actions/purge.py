"""Cache purges after a rollback: the app's own admin endpoint (the runbook's
``curl -X DELETE .../api/admin/cache -H "Authorization: Bearer $ADMIN_TOKEN"``) and a
Cloudflare zone purge (apis.md §4). Both are idempotent, so plain retries are safe."""

from __future__ import annotations

from typing import Any

import httpx
from pydantic import SecretStr

from watchdog.actions.cloudflare_api import CloudflareClient, seg
from watchdog.clock import Clock
from watchdog.errors import ConfigError, PermanentActionError, RetryableActionError
from watchdog.http.client import RetryPolicy, send
from watchdog.model import ActionResult
from watchdog.rules.response import AppCachePurgeSpec, ZonePurgeSpec
from watchdog.settings import Settings

MAX_ITEMS_PER_REQUEST = 100  # tags, hosts, prefixes and files per purge request


class AppCachePurge:
    """``DELETE {url}`` (or POST) with the bearer token named by ``spec.token_secret``."""

    def __init__(
        self,
        name: str,
        spec: AppCachePurgeSpec,
        *,
        http: httpx.AsyncClient,
        clock: Clock,
        token: SecretStr | None,
        policy: RetryPolicy | None = None,
        timeout_s: float | None = None,
    ) -> None:
        if token is None:
            raise ConfigError(
                f"purge {name}: secret {spec.token_secret!r} is not set "
                f"(WATCHDOG_SECRETS__{spec.token_secret.upper()} or a file in the secrets "
                "directory)"
            )
        self.name = name
        self.spec = spec
        self._http = http
        self._clock = clock
        self._token = token
        self._policy = policy
        self._timeout_s = timeout_s

    @classmethod
    def from_settings(
        cls,
        name: str,
        spec: AppCachePurgeSpec,
        settings: Settings,
        *,
        http: httpx.AsyncClient,
        clock: Clock,
        policy: RetryPolicy | None = None,
    ) -> AppCachePurge:
        return cls(
            name,
            spec,
            http=http,
            clock=clock,
            token=settings.secret(spec.token_secret),
            policy=policy,
        )

    async def purge(self, dry_run: bool = False) -> ActionResult:
        request = {"method": self.spec.method, "url": self.spec.url}
        if dry_run:
            return ActionResult(
                "purge",
                self.name,
                True,
                f"would send {self.spec.method} to the app's cache endpoint",
                would=True,
                request=request,
            )
        response = await send(
            self._http,
            self.spec.method,
            self.spec.url,
            what=f"app cache purge {self.name}",
            clock=self._clock,
            policy=self._policy,
            headers={"Authorization": f"Bearer {self._token.get_secret_value()}"},
            timeout_s=self._timeout_s,
        )
        if not 200 <= response.status_code < 300:
            raise PermanentActionError(
                f"app cache purge {self.name}: HTTP {response.status_code}", response.status_code
            )
        return ActionResult(
            "purge",
            self.name,
            True,
            f"app cache purged (HTTP {response.status_code})",
            request=request,
            data={"status": response.status_code},
        )


class ZonePurge:
    """``POST /zones/{zone}/purge_cache``: everything, or tags / hosts / prefixes / files
    in requests of at most 100 items."""

    def __init__(
        self,
        name: str,
        spec: ZonePurgeSpec,
        client: CloudflareClient,
        *,
        batch: int = MAX_ITEMS_PER_REQUEST,
    ) -> None:
        self.name = name
        self.spec = spec
        self.client = client
        self.batch = batch
        self.path = f"/zones/{seg(spec.zone)}/purge_cache"

    def bodies(self) -> list[dict[str, Any]]:
        """One body per request: a single purge type each (mixing is not documented)."""
        if self.spec.everything:
            return [{"purge_everything": True}]
        for kind in ("tags", "hosts", "prefixes", "files"):
            items: tuple[str, ...] = getattr(self.spec, kind)
            if items:
                return [
                    {kind: list(items[i : i + self.batch])}
                    for i in range(0, len(items), self.batch)
                ]
        raise ConfigError(f"purge {self.name}: nothing to purge")  # the spec forbids this

    async def purge(self, dry_run: bool = False) -> ActionResult:
        bodies = self.bodies()
        if dry_run:
            records = [(await self.client.post(self.path, b, dry_run=True)).request for b in bodies]
            return ActionResult(
                "purge",
                self.name,
                True,
                f"would purge zone {self.spec.zone}: {_describe(bodies)}",
                would=True,
                request=records[0],
                data={"requests": records},
            )
        ids: list[str] = []
        for done, body in enumerate(bodies):
            # Errors keep their kind (retryable or not) and say what already went through.
            progress = f"zone purge {self.name}: {done} of {len(bodies)} requests done"
            try:
                answer = await self.client.post(self.path, body)
            except PermanentActionError as exc:
                raise PermanentActionError(f"{progress}; {exc}", exc.code) from None
            except RetryableActionError as exc:
                raise RetryableActionError(f"{progress}; {exc}", exc.retry_after_s) from None
            result = answer.result if isinstance(answer.result, dict) else {}
            ids.append(str(result.get("id", "")))
        return ActionResult(
            "purge",
            self.name,
            True,
            f"purged zone {self.spec.zone}: {_describe(bodies)}",
            request={"method": "POST", "path": self.path, "body": bodies[0]},
            data={"purge_ids": ids, "requests": len(bodies)},
        )


def _describe(bodies: list[dict[str, Any]]) -> str:
    if "purge_everything" in bodies[0]:
        return "everything"
    kind = next(iter(bodies[0]))
    count = sum(len(b[kind]) for b in bodies)
    return f"{count} {kind} in {len(bodies)} request(s)"
