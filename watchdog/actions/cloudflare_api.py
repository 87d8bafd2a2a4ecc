"""A thin Cloudflare REST client: adds the token, sends through ``http.send`` (the one
retrying helper), unwraps the ``{success, errors, result, result_info}`` envelope and
turns every failure into our errors. Decisions are based on ``success``, not only on
the HTTP status (apis.md §1): ``success: false`` on HTTP 200 is an error too.

Mutating calls take ``dry_run``: the request is then not sent, and the result carries
the exact request (method, path, params, body) for the journal and the operator.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import SecretStr
from tenacity import AsyncRetrying

from watchdog import termtext
from watchdog.clock import Clock
from watchdog.errors import ConfigError, PermanentActionError
from watchdog.http.client import RetryPolicy, retrying, send

AUTH_ERROR_CODE = 10000
SECRETS_CHANGED_CODE = 10220
MESSAGE_MAX_BYTES = 100


@dataclass(frozen=True)
class ApiResult:
    """An unwrapped answer. ``sent`` is False for a dry run (then ``result`` is None)."""

    result: Any
    result_info: dict[str, Any] | None
    request: dict[str, Any] = field(default_factory=dict)
    sent: bool = True


def seg(value: str) -> str:
    """One URL path segment (script, project and account names are user input)."""
    return quote(value, safe="")


def truncate_utf8(text: str, limit: int = MESSAGE_MAX_BYTES) -> str:
    """At most ``limit`` bytes of UTF-8, never cutting a character in half."""
    return termtext.truncate_utf8(text, limit)


def target_account(name: str, spec_account: str | None, default: str | None) -> str:
    """The account a target acts in: the rules file's ``account``, else
    CLOUDFLARE_ACCOUNT_ID; a ``ConfigError`` when neither is set."""
    account = spec_account or default
    if not account:
        raise ConfigError(
            f"target {name}: no Cloudflare account id (set 'account' in the rules file "
            "or CLOUDFLARE_ACCOUNT_ID)"
        )
    return account


def parse_time(value: Any, where: str) -> float:
    """Cloudflare's RFC 3339 times (``...Z``, 3 or 6 fractional digits) → Unix seconds."""
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value).timestamp()
        except ValueError:
            pass
    raise PermanentActionError(f"{where}: expected an RFC 3339 time, got {value!r:.60}")


class CloudflareClient:
    """Calls ``base_url`` (``https://api.cloudflare.com/client/v4``) with a Bearer token."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        base_url: str,
        token: SecretStr,
        clock: Clock,
        policy: RetryPolicy | None = None,
        *,
        timeout_s: float | None = None,
    ) -> None:
        self.http = http
        self.base_url = base_url.rstrip("/")
        self._token = token
        self.clock = clock
        self.policy = policy or RetryPolicy()
        self.timeout_s = timeout_s

    def retrying(self, what: str) -> AsyncRetrying:
        """A retry loop for an idempotent sequence (re-read, then write once) with this
        client's policy and clock; the calls inside should pass ``retry=False``."""
        return retrying(self.clock, self.policy, what=what)

    async def get(
        self, path: str, *, params: dict[str, str] | None = None, retry: bool = True
    ) -> ApiResult:
        return await self.request("GET", path, params=params, retry=retry)

    async def post(
        self,
        path: str,
        body: Any = None,
        *,
        params: dict[str, str] | None = None,
        dry_run: bool = False,
        retry: bool = True,
    ) -> ApiResult:
        return await self.request(
            "POST", path, body=body, params=params, dry_run=dry_run, retry=retry
        )

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: dict[str, str] | None = None,
        dry_run: bool = False,
        retry: bool = True,
    ) -> ApiResult:
        """``path`` is relative to the base URL. ``retry=False`` makes one attempt: use it
        for a non-idempotent write, and retry the whole read-then-write sequence instead."""
        record = {"method": method, "path": path, "params": dict(params or {}), "body": body}
        if dry_run and method != "GET":
            return ApiResult(None, None, record, sent=False)
        what = f"Cloudflare API {method} {path}"
        policy = self.policy if retry else replace(self.policy, max_attempts=1)
        response = await send(
            self.http,
            method,
            self.base_url + path,
            what=what,
            clock=self.clock,
            policy=policy,
            json=body,
            headers={"Authorization": f"Bearer {self._token.get_secret_value()}"},
            params=params,
            timeout_s=self.timeout_s,
            accept_4xx=True,
        )
        result, info = unwrap(response, what)
        return ApiResult(result, info, record)


def unwrap(response: httpx.Response, what: str) -> tuple[Any, dict[str, Any] | None]:
    """The envelope's ``result`` and ``result_info``, or ``PermanentActionError`` naming
    the first Cloudflare error code and message."""
    status = response.status_code
    content_type = response.headers.get("content-type", "")
    mitigated = response.headers.get("cf-mitigated")
    if mitigated or "html" in content_type:
        how = f"cf-mitigated: {mitigated}" if mitigated else "no cf-mitigated header"
        raise PermanentActionError(
            f"{what}: HTTP {status} with an HTML page instead of the API's JSON: most likely "
            f"blocked by Cloudflare's firewall (WAF challenge, {how}); "
            "an automated client cannot pass it"
        )
    try:
        data = response.json()
    except ValueError:
        excerpt = " ".join(response.text.split())[:120]
        raise PermanentActionError(
            f"{what}: HTTP {status}, the body is not JSON: {excerpt!r}"
        ) from None
    if not isinstance(data, dict):
        raise PermanentActionError(f"{what}: HTTP {status}, not a Cloudflare envelope")
    if "success" not in data:
        # Some endpoints answer a bare {code, error} (wrangler's throwFetchError fallback).
        if "code" in data and "error" in data:
            code = data["code"] if isinstance(data["code"], int) else None
            raise PermanentActionError(
                f"{what}: HTTP {status}, Cloudflare error {data['code']}: {data['error']!s:.300}",
                code,
            )
        raise PermanentActionError(
            f"{what}: HTTP {status}, not a Cloudflare envelope (no 'success')"
        )
    if data["success"] is not True or status >= 400:
        raise _api_error(what, status, data)
    info = data.get("result_info")
    return data.get("result"), info if isinstance(info, dict) else None


def _api_error(what: str, status: int, data: dict[str, Any]) -> PermanentActionError:
    errors = [e for e in data.get("errors") or [] if isinstance(e, dict)]
    if not errors:
        return PermanentActionError(f"{what}: HTTP {status}, success is false and no error given")
    first = errors[0]
    code = first.get("code") if isinstance(first.get("code"), int) else None
    text = f"Cloudflare error {first.get('code')}: {first.get('message', '')!s:.500}"
    if len(errors) > 1:
        text += f" (and {len(errors) - 1} more)"
    if code == AUTH_ERROR_CODE or status in (401, 403):
        text += "; check the API token and its permissions"
    return PermanentActionError(f"{what}: HTTP {status}, {text}", code)


_SECRETS_RE = re.compile(r"The following secrets have changed:\s*(.+)$", re.DOTALL)


def changed_secrets(message: str) -> list[str]:
    """The secret names in a 10220 message, as wrangler parses them (names, not values)."""
    match = _SECRETS_RE.search(message)
    if match is None:
        return []
    return [name.strip() for name in match.group(1).split(",") if name.strip()]
