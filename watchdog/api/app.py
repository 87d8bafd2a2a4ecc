"""The watchdog's HTTP face: /metrics, /healthz, /readyz, /-/reload, /api/v1/status and
/api/v1/openapi.json (``api/openapi.py``).

The control API (everything under /api/ and /-/) needs ``Authorization: Bearer
<WATCHDOG_API_TOKEN>``; without a configured token it answers only on loopback.
"""

from __future__ import annotations

import hmac
import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, Counter, generate_latest
from pydantic import SecretStr

from watchdog import __version__
from watchdog.api import alertmanager as alertmanager_api
from watchdog.api import guard as api_guard
from watchdog.api import ramps as ramps_api
from watchdog.api import silences as silence_api
from watchdog.api import tail as tail_api
from watchdog.api.openapi import document as openapi_document
from watchdog.api.push import PUSH_PREFIXES
from watchdog.core.decider import burn_of, evidence_of, regression_of
from watchdog.core.evaluator import RuleState
from watchdog.http.server import Request, Response, Router
from watchdog.incidents.silence import Silences
from watchdog.rules.model import RuleSpec
from watchdog.run.daemon import Watchdog
from watchdog.run.ramp import Ramps
from watchdog.units import format_duration, format_value, iso

StatusExtra = Callable[[], dict[str, Any]]


class ControlAuth:
    """Bearer-token check for the control API, counting refusals; without a token,
    loopback only and no web page (``api_guard``). The push token opens the push
    routes and nothing else, with or without the API token."""

    def __init__(
        self,
        token: SecretStr | None,
        refusals: Counter,
        listen_host: str | None = None,
        extra_hosts: Sequence[str] = (),
        push_token: SecretStr | None = None,
    ) -> None:
        self.token = token
        self.push_token = push_token
        self.refusals = refusals
        self.hosts = api_guard.allowed_hosts(listen_host, extra_hosts)

    async def __call__(self, request: Request) -> Response | None:
        if not request.path.startswith(("/api/", "/-/")):
            return None
        given = _bearer(request)
        push = self.push_token
        if push is not None and request.path.startswith(PUSH_PREFIXES) and _is(given, push):
            return None
        if self.token is None:
            if api_guard.is_loopback_client(request.client_host):
                refused = api_guard.refusal(request.method, request.headers, self.hosts)
                if refused is None:
                    return None
                status, reason, message = refused
                self.refusals.labels(reason=reason).inc()
                return Response.json({"error": message}, status)
            self.refusals.labels(reason="not_loopback").inc()
            return Response.json(
                {
                    "error": "the control API answers only on loopback unless "
                    "WATCHDOG_API_TOKEN is set"
                },
                403,
            )
        if not given:
            self.refusals.labels(reason="missing_token").inc()
            return Response.json(
                {"error": "missing bearer token"}, 401, {"www-authenticate": "Bearer"}
            )
        if not _is(given, self.token):
            self.refusals.labels(reason="wrong_token").inc()
            return Response.json(
                {"error": "wrong bearer token"}, 401, {"www-authenticate": "Bearer"}
            )
        return None


def _bearer(request: Request) -> str:
    """The request's bearer token ("" without one)."""
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    return given if scheme.lower() == "bearer" else ""


def _is(given: str, token: SecretStr) -> bool:
    """Whether ``given`` is ``token`` (in constant time)."""
    return hmac.compare_digest(given.encode(), token.get_secret_value().encode())


@dataclass(frozen=True)
class Modes:
    """Whether the watchdog would act right now, apart from the rules' own states."""

    dry_run: bool  # the whole process (WATCHDOG_DRY_RUN / --dry-run)
    dry_run_rules: list[str]  # rules with dry_run: true
    silenced: bool  # an active silence covers every action
    silences_active: int

    @classmethod
    def of(cls, watchdog: Watchdog, silences: Silences | None, dry_run: bool) -> Modes:
        active = silences.active() if silences is not None else []
        return cls(
            dry_run=dry_run,
            dry_run_rules=[rule.name for rule in watchdog.ruleset.rules if rule.dry_run],
            silenced=any(not record.matchers for record in active),
            silences_active=len(active),
        )


def status_snapshot(watchdog: Watchdog) -> dict[str, Any]:
    """Rules with their current values against thresholds, states and recent decisions."""
    ruleset = watchdog.ruleset
    rules = []
    for rule in ruleset.rules:
        state = watchdog.engine.states[rule.name]
        signal = ruleset.signals[rule.signal]
        rules.append(
            {
                "rule": rule.name,
                "severity": rule.severity,
                "signal": rule.signal,
                "state": state.state.value,
                "value": None if math.isnan(state.value) else state.value,
                "value_text": format_value(state.value, signal.unit),
                "comparison": rule.comparison,
                "threshold": rule.threshold.value,
                "threshold_text": rule.threshold.text,
                "for": format_duration(rule.for_),
                "active_since": iso(state.active_since) if state.active_since else None,
                "blind_reason": state.blind_reason or None,
                **_evidence_fields(rule, state),
                "targets": list(rule.rollback),
                "dry_run": rule.dry_run,
            }
        )
    ready, why = watchdog.ready()
    return {
        "version": __version__,
        "ready": ready,
        "ready_reason": why,
        "rules_files": list(ruleset.files),
        "last_reload_error": watchdog.last_reload_error,
        "rules": rules,
        "decisions": [d.to_dict() for d in list(watchdog.decisions)[-20:]],
    }


def _evidence_fields(rule: RuleSpec, state: RuleState) -> dict[str, Any]:
    """A confidence rule's counts and interval, for the status (empty for other rules)."""
    found = evidence_of(rule, state) or regression_of(rule, state) or burn_of(rule, state)
    if found is None:
        return {}
    return {"evidence": asdict(found), "evidence_text": found.text()}


def build_app(
    watchdog: Watchdog,
    token: SecretStr | None,
    reload: Callable[[], Awaitable[bool]] | None = None,
    extra_status: StatusExtra | None = None,
    silences: Silences | None = None,
    dry_run: bool = False,
    listen_host: str | None = None,
    allowed_hosts: Sequence[str] = (),
    ramps: Ramps | None = None,
    push_token: SecretStr | None = None,
) -> Router:
    refusals = watchdog.metrics.api_refused
    router = Router(max_body_bytes=64 * 1024)
    router.middleware.append(ControlAuth(token, refusals, listen_host, allowed_hosts, push_token))
    modes = Modes.of(watchdog, silences, dry_run)
    watchdog.metrics.set_modes(modes.dry_run, modes.silenced, modes.silences_active)

    @router.route("GET", "/metrics")
    async def metrics(_: Request, __: dict[str, str]) -> Response:
        # Silences expire and the flag file comes and goes: read them at scrape time.
        modes = Modes.of(watchdog, silences, dry_run)
        watchdog.metrics.set_modes(modes.dry_run, modes.silenced, modes.silences_active)
        return Response(
            200, generate_latest(watchdog.metrics.registry), {"content-type": CONTENT_TYPE_LATEST}
        )

    @router.route("GET", "/healthz")
    async def healthz(_: Request, __: dict[str, str]) -> Response:
        return Response.text("ok\n")

    @router.route("GET", "/readyz")
    async def readyz(_: Request, __: dict[str, str]) -> Response:
        ready, why = watchdog.ready()
        return Response.text(f"{why}\n", 200 if ready else 503)

    @router.route("POST", "/-/reload")
    async def do_reload(_: Request, __: dict[str, str]) -> Response:
        ok = await (reload() if reload is not None else watchdog.reload())
        if ok:
            return Response.json({"status": "reloaded", "rules": len(watchdog.ruleset.rules)})
        return Response.json({"status": "failed", "error": watchdog.last_reload_error}, 422)

    @router.route("GET", "/api/v1/status")
    async def status(_: Request, __: dict[str, str]) -> Response:
        body = status_snapshot(watchdog)
        body.update(asdict(Modes.of(watchdog, silences, dry_run)))
        if silences is not None:
            now = silences.clock.now()
            body["silences"] = [silence_api.silence_json(s, now) for s in silences.active()]
        if extra_status is not None:
            body.update(extra_status())
        return Response.json(body)

    @router.route("GET", "/api/v1/openapi.json")
    async def openapi(_: Request, __: dict[str, str]) -> Response:
        return Response.json(openapi_document())

    _install_apis(router, watchdog, silences, ramps)
    return router


def _install_apis(
    router: Router, watchdog: Watchdog, silences: Silences | None, ramps: Ramps | None
) -> None:
    if silences is not None:
        silence_api.install(router, silences)
    alertmanager_api.install(router, watchdog.deps.inboxes)
    tail_api.install(router, watchdog.deps.inboxes)
    ramps_api.install(router, ramps, watchdog.deps.clock)
