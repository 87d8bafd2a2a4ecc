"""One way to call a remote API: retries on 429/5xx/connection errors with backoff,
``Retry-After`` honoured (seconds or HTTP date, capped), all inside a deadline on the
injected clock; other 4xx fail at once. Bodies are read through ``watchdog.http.bounded_read``
(capped after decoding). Errors name the API (``what``), never the URL, since webhook
URLs are secrets."""

from __future__ import annotations

import random
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

import structlog

from watchdog import strict_json
from watchdog.clock import Clock
from watchdog.errors import ActionError, PermanentActionError, RetryableActionError
from watchdog.http import bounded_read

if TYPE_CHECKING:  # httpx and tenacity are imported where a request is sent
    import httpx
    from tenacity import AsyncRetrying, RetryCallState

log = structlog.get_logger("watchdog.http")

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    deadline_s: float = 60.0
    max_attempts: int = 6
    backoff_base_s: float = 0.5
    backoff_max_s: float = 10.0
    retry_after_cap_s: float = 30.0
    retry_statuses: Collection[int] = RETRY_STATUSES
    # False for a call that must not run twice (a CI dispatch): retry only what surely
    # never reached the server (``retry_statuses`` such as 429, connect errors). A 5xx,
    # a timeout or a dropped connection after sending may have taken effect, so they
    # fail at once with a plain ``ActionError`` (neither retryable nor permanent).
    idempotent: bool = True
    # A response body is read up to this many bytes after decoding (a bomb or a
    # runaway proxy page must not fill memory); past it the call fails.
    max_response_bytes: int = 8 * 1024 * 1024


def parse_retry_after(value: str | None, now: float) -> float | None:
    """``Retry-After`` as delta-seconds or an HTTP date → seconds to wait (>= 0)."""
    if not value:
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - now)


class _Wait:
    def __init__(self, policy: RetryPolicy, rng: random.Random) -> None:
        self.policy = policy
        self.rng = rng

    def __call__(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        if isinstance(exc, RetryableActionError) and exc.retry_after_s is not None:
            return min(exc.retry_after_s, self.policy.retry_after_cap_s)
        backoff = self.policy.backoff_base_s * 2 ** (state.attempt_number - 1)
        jitter = self.rng.uniform(0, self.policy.backoff_base_s)
        return float(min(self.policy.backoff_max_s, backoff + jitter))


class _Stop:
    """Stop after max attempts, or when the next wait would pass the deadline."""

    def __init__(self, policy: RetryPolicy, clock: Clock, started: float, wait: _Wait) -> None:
        self.policy = policy
        self.clock = clock
        self.started = started
        self.wait = wait

    def __call__(self, state: RetryCallState) -> bool:
        if state.attempt_number >= self.policy.max_attempts:
            return True
        elapsed = self.clock.monotonic() - self.started
        return elapsed + self.wait(state) > self.policy.deadline_s


def retrying(
    clock: Clock,
    policy: RetryPolicy | None = None,
    *,
    what: str,
    rng: random.Random | None = None,
) -> AsyncRetrying:
    """The retry loop ``send`` runs, for callers that must retry a whole idempotent
    sequence (re-read, then write) rather than repeat one non-idempotent request.
    Retries ``RetryableActionError`` with the same waits, cap and deadline."""
    from tenacity import AsyncRetrying, retry_if_exception_type

    policy = policy or RetryPolicy()
    wait = _Wait(policy, rng or random.Random())  # noqa: S311 (jitter, not crypto)
    stop = _Stop(policy, clock, clock.monotonic(), wait)

    async def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        log.warning("retrying", api=what, attempt=state.attempt_number, reason=str(exc))

    return AsyncRetrying(
        retry=retry_if_exception_type(RetryableActionError),
        wait=wait,
        stop=stop,
        sleep=clock.sleep,
        reraise=True,
        before_sleep=before_sleep,
    )


async def send(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    what: str,
    clock: Clock,
    policy: RetryPolicy | None = None,
    json: Any = None,
    content: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    params: Mapping[str, str] | None = None,
    timeout_s: float | None = None,
    rng: random.Random | None = None,
    accept_4xx: bool = False,
) -> httpx.Response:
    """Send with retries; return the first response that is not retryable.

    Raises ``RetryableActionError`` when retries ran out and ``PermanentActionError``
    for a 4xx that retrying cannot fix. The caller checks 2xx bodies itself.
    ``accept_4xx`` returns 4xx responses instead, for APIs whose error body says
    more than the status (Cloudflare's envelope carries the error code)."""
    policy = policy or RetryPolicy()
    if json is not None:  # the strict encoder: httpx's own writes NaN
        content = strict_json.dumpb(json)
        headers = {**strict_json.JSON_HEADERS, **(headers or {})}
    async for attempt in retrying(clock, policy, what=what, rng=rng):
        with attempt:
            return await _once(
                client,
                method,
                url,
                what=what,
                clock=clock,
                policy=policy,
                content=content,
                headers=headers,
                params=params,
                timeout_s=timeout_s,
                accept_4xx=accept_4xx,
            )
    raise AssertionError("unreachable: tenacity re-raises the last error")  # pragma: no cover


async def _once(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    what: str,
    clock: Clock,
    policy: RetryPolicy,
    content: bytes | None,
    headers: Mapping[str, str] | None,
    params: Mapping[str, str] | None,
    timeout_s: float | None,
    accept_4xx: bool = False,
) -> httpx.Response:
    import httpx  # here, not at load: the backtest imports this module, never httpx

    # Transport errors raised before the request left this process.
    unsent = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
    kwargs: dict[str, Any] = {}
    if timeout_s is not None:
        kwargs["timeout"] = timeout_s
    try:
        response = await bounded_read.fetch(
            client,
            method,
            url,
            max_bytes=policy.max_response_bytes,
            content=content,
            headers=headers,
            params=params,
            **kwargs,
        )
    except bounded_read.BodyError as exc:
        # The status still says whether a retry may help; the body is not kept.
        if exc.status in policy.retry_statuses and (policy.idempotent or exc.status == 429):
            raise RetryableActionError(f"{what}: HTTP {exc.status}, {exc}") from None
        raise ActionError(f"{what}: HTTP {exc.status}, {exc}") from None
    except httpx.TimeoutException as exc:
        if not policy.idempotent and not isinstance(exc, unsent):
            raise ActionError(
                f"{what}: timed out after sending; it may have taken effect"
            ) from None
        raise RetryableActionError(f"{what}: timed out") from None
    except httpx.TransportError as exc:
        if not policy.idempotent and not isinstance(exc, unsent):
            raise ActionError(
                f"{what}: connection lost ({type(exc).__name__}); it may have taken effect"
            ) from None
        raise RetryableActionError(f"{what}: connection failed ({type(exc).__name__})") from None
    _judge_status(response, what=what, clock=clock, policy=policy, accept_4xx=accept_4xx)
    return response


def _judge_status(
    response: httpx.Response, *, what: str, clock: Clock, policy: RetryPolicy, accept_4xx: bool
) -> None:
    """Raise for a status that is not a success: retryable, permanent, or (a 5xx to a
    call that is not idempotent) one that may have taken effect."""
    if response.status_code in policy.retry_statuses:
        retry_after = parse_retry_after(response.headers.get("retry-after"), clock.now())
        raise RetryableActionError(
            f"{what}: HTTP {response.status_code}{_excerpt(response)}", retry_after
        )
    if 400 <= response.status_code < 500 and not accept_4xx:
        raise PermanentActionError(
            f"{what}: HTTP {response.status_code}{_excerpt(response)}", response.status_code
        )
    if response.status_code >= 500:
        if not policy.idempotent:
            raise ActionError(
                f"{what}: HTTP {response.status_code}{_excerpt(response)}; it may have taken effect"
            )
        raise RetryableActionError(f"{what}: HTTP {response.status_code}{_excerpt(response)}")


def _excerpt(response: httpx.Response, limit: int = 200) -> str:
    """A short, single-line piece of the body for an error message (never the URL)."""
    content_type = response.headers.get("content-type", "")
    if "html" in content_type:
        return " (an HTML page, not the API's JSON)"
    text = " ".join(response.text.split())[:limit]
    return f": {text}" if text else ""
