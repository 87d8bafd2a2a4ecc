"""A stateful local Cloudflare API: the Workers, Pages and cache-purge endpoints the
watchdog calls, under the real paths (``/client/v4/...``), with the real envelope
``{success, errors, messages, result, result_info}`` and Bearer-token auth.

Serve ``FakeCloudflare().router`` with ``httpserver.serve``; the base URL is
``srv.url + "/client/v4"``. Tests, the benchmark and the demo arrange state with the
helpers (``add_script``, ``upload_version``, ``deploy``, ``add_project``,
``add_pages_deployment``), inject faults per endpoint (``rate_limit``, ``fail``,
``fail_after_apply``, ``stall_after_apply``, ``refuse``, ``secrets_changed``, ``waf``,
``success_false``, ``delay``, ``set_latency``) and count requests in ``calls``.
``analytics`` is the GraphQL Analytics store (``cloudflare_graphql``), served at
``POST /client/v4/graphql`` behind the same request log, latency and faults.
``attach_tail`` gives a script a Tail Worker (``cloudflare_tail.TailFeed``) that
pushes each invocation to the watchdog.

Where the real API's behaviour is unknown (see apis.md §11) the choice made here is
marked "guess".
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from watchdog import termtext
from watchdog.clock import Clock, SystemClock
from watchdog.demo.fakes.cloudflare_graphql import WorkersAnalytics, install
from watchdog.demo.fakes.cloudflare_tail import TailFeed
from watchdog.demo.fakes.cloudflare_telemetry import Telemetry, WorkerEdge
from watchdog.demo.fakes.cloudflare_telemetry import install as install_telemetry
from watchdog.http.server import Request, Response, Router

API_PREFIX = "/client/v4"
GRAPHQL_PATH = "/graphql"
MESSAGE_MAX_BYTES = 100
SECRETS_CHANGED_CODE = 10220
VALIDATION_CODE = 10021
AUTH_CODE = 10000
SCRIPT_NOT_FOUND_CODE = 10007
RATE_LIMITED_CODE = 971
PAGES_ERROR_CODE = 8000000  # guess: the generic Pages code; the rollback-refusal code is unknown
PAGES_PROJECT_NOT_FOUND_CODE = 8000007
PAGES_DEPLOYMENT_NOT_FOUND_CODE = 8000009
PURGE_ERROR_CODE = 1100  # guess

Sleep = Callable[[float], Awaitable[None]]
FaultKind = Literal[
    "status",  # answer with an error status (5xx) before doing anything
    "rate_limit",  # 429 with Retry-After (seconds or HTTP date), before doing anything
    "delay",  # wait, then handle normally
    "refuse",  # an API error envelope with a code (10220, 10021, ...), before doing anything
    "waf",  # an HTML challenge page (cf-mitigated: challenge)
    "success_false",  # HTTP 200 with success: false
    "apply_then_status",  # do the change, then answer with an error status
    "apply_then_stall",  # do the change, then wait before answering (a client timeout)
]
_PRE_KINDS = frozenset({"status", "rate_limit", "refuse", "waf", "success_false"})


# --- records and faults ------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """One request as received. ``path`` is relative to ``/client/v4``; ``query`` keeps
    the first value of each parameter; ``json`` is the parsed body or None; ``at`` is
    the fake's clock when the request arrived (the detection benchmark times on it)."""

    method: str
    path: str
    query: dict[str, str]
    json: Any
    at: float = 0.0


@dataclass(frozen=True)
class PurgeRecord:
    zone: str
    body: dict[str, Any]
    id: str


def compile_path(pattern: str) -> re.Pattern[str]:
    """``/accounts/{account}/workers/scripts/{script}/deployments`` → a regex;
    ``{name}`` matches one path segment, everything else literally."""
    parts = re.split(r"(\{\w+\})", pattern.rstrip("/") or "/")
    regex = "".join("[^/]+" if re.fullmatch(r"\{\w+\}", p) else re.escape(p) for p in parts)
    return re.compile(f"^{regex}/?$")


@dataclass
class Fault:
    """A fault for requests matching ``method`` (or ``*``) and the path ``pattern``
    (relative to ``/client/v4``), for the next ``times`` of them (None: always)."""

    method: str
    path: str
    kind: FaultKind
    times: int | None = 1
    status: int = 503
    code: int = 0
    message: str = ""
    retry_after: str | None = None
    delay_s: float = 0.0
    unless_force: bool = False  # not applied to requests with ?force=true (10220)
    after: int = 0  # let this many matching requests through first
    hits: int = 0
    passed: int = 0
    _regex: re.Pattern[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._regex = compile_path(self.path)

    @property
    def active(self) -> bool:
        return self.times is None or self.hits < self.times

    def matches(self, method: str, path: str, query: dict[str, str]) -> bool:
        if not self.active or self.method not in ("*", method):
            return False
        if self.unless_force and query.get("force") == "true":
            return False
        return self._regex.match(path) is not None


@dataclass
class _Latency:
    method: str
    regex: re.Pattern[str]
    seconds: float


class _ApiError(Exception):
    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


# --- state -------------------------------------------------------------------------------


@dataclass
class WorkerVersion:
    id: str
    number: int
    created_on: float
    message: str = ""
    tag: str | None = None
    triggered_by: str = "upload"
    source: str = "wrangler"


@dataclass
class WorkerDeployment:
    id: str
    created_on: float
    versions: list[tuple[str, float]]
    message: str = ""
    triggered_by: str = "upload"
    source: str = "wrangler"
    author_email: str = "deployer@example.com"


@dataclass
class WorkerScript:
    name: str
    versions: list[WorkerVersion] = field(default_factory=list)  # oldest first
    deployments: list[WorkerDeployment] = field(default_factory=list)  # oldest first


@dataclass
class PagesDeployment:
    id: str
    project: str
    environment: Literal["production", "preview"]
    created_on: float
    stage: str = "deploy"
    status: str = "success"
    is_skipped: bool = False
    commit_hash: str = ""
    commit_message: str = ""
    branch: str = "main"
    trigger_type: str = "github:push"

    @property
    def successful(self) -> bool:
        return self.stage == "deploy" and self.status == "success" and not self.is_skipped


@dataclass
class PagesProject:
    name: str
    created_on: float
    production_branch: str = "main"
    deployments: list[PagesDeployment] = field(default_factory=list)  # oldest first
    canonical_id: str | None = None


# --- wire helpers ------------------------------------------------------------------------


def envelope(result: Any, result_info: dict[str, Any] | None = None, status: int = 200) -> Response:
    body: dict[str, Any] = {"success": True, "errors": [], "messages": [], "result": result}
    if result_info is not None:
        body["result_info"] = result_info
    return Response.json(body, status)


def envelope_error(
    status: int, code: int, message: str, headers: dict[str, str] | None = None
) -> Response:
    body = {
        "success": False,
        "errors": [{"code": code, "message": message}],
        "messages": [],
        "result": None,
    }
    return Response.json(body, status, headers)


def truncate_utf8(text: str, limit: int = MESSAGE_MAX_BYTES) -> str:
    """At most ``limit`` bytes of UTF-8, never cutting a character in half."""
    return termtext.truncate_utf8(text, limit)


def _iso_us(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _iso_ms(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def _render_router_error(status: int, message: str) -> Response:
    codes = {400: VALIDATION_CODE, 404: 7000, 405: 7001, 413: 7002}
    return envelope_error(status, codes.get(status, 7000), message)


_WAF_PAGE = (
    "<!DOCTYPE html><html><head><title>Just a moment...</title></head>"
    "<body><h1>Checking your browser before accessing api.cloudflare.com</h1></body></html>"
)


def _body_json(body: bytes) -> Any:
    if not body:
        return None
    try:
        return json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None


def _int_arg(request: Request, name: str, default: int) -> int:
    text = request.arg(name)
    if text is None:
        return default
    if not text.isdigit() or int(text) < 1:
        raise _ApiError(400, VALIDATION_CODE, f"{name} must be a positive integer, got {text!r}")
    return int(text)


# --- the fake ----------------------------------------------------------------------------


class FakeCloudflare:
    """One Cloudflare account with Worker scripts, Pages projects and zones."""

    def __init__(
        self,
        *,
        token: str = "test-token",  # noqa: S107 (the fake's own test token)
        account_id: str = "test-account",
        clock: Clock | None = None,
        sleep: Sleep | None = None,
        seed: int = 0,
        max_deployable_versions: int = 100,
        pages_max_per_page: int = 25,
        pages_order: Literal["newest", "oldest"] = "newest",
    ) -> None:
        self.token = token
        self.account_id = account_id
        self.clock: Clock = clock or SystemClock()
        self._sleep: Sleep = sleep or asyncio.sleep
        self._rng = random.Random(seed)
        self.max_deployable_versions = max_deployable_versions
        self.pages_max_per_page = pages_max_per_page
        self.pages_order = pages_order
        self.scripts: dict[str, WorkerScript] = {}
        self.projects: dict[str, PagesProject] = {}
        self.purges: list[PurgeRecord] = []
        self.calls: list[Call] = []
        self.faults: list[Fault] = []
        self._latencies: list[_Latency] = []
        self._last_stamp = 0.0
        self._api = Router(render_error=_render_router_error)
        self._routes()
        # GraphQL analytics (another module) checks the token itself, with GraphQL errors.
        self.analytics = WorkersAnalytics(token=token, account_id=account_id)
        install(self._api, self.analytics)
        # Workers Observability (per-version telemetry), behind the same auth and faults.
        self.telemetry = Telemetry(self.clock, seed=seed)
        self.tails: dict[str, TailFeed] = {}  # Tail Workers by producer script
        self._edges: list[WorkerEdge] = []
        install_telemetry(self._api, self.telemetry, API_PREFIX, self._account_of)
        self.router = Router(render_error=_render_router_error)
        self.router.middleware.append(self._front)

    # --- arranging state (tests, demo, benchmark) ---------------------------------------

    def new_id(self) -> str:
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    def _stamp(self, created_on: float | None) -> float:
        """Creation times strictly increase unless given, so "newest" is never a tie."""
        ts = (
            created_on
            if created_on is not None
            else max(self.clock.now(), self._last_stamp + 0.001)
        )
        self._last_stamp = max(self._last_stamp, ts)
        return ts

    def add_script(self, name: str) -> WorkerScript:
        return self.scripts.setdefault(name, WorkerScript(name))

    def upload_version(
        self,
        script: str,
        message: str = "",
        *,
        tag: str | None = None,
        created_on: float | None = None,
    ) -> str:
        """Upload a new version (not deployed); returns its id."""
        worker = self.add_script(script)
        version = WorkerVersion(
            id=self.new_id(),
            number=len(worker.versions) + 1,
            created_on=self._stamp(created_on),
            message=truncate_utf8(message),
            tag=tag,
        )
        worker.versions.append(version)
        return version.id

    def deploy(
        self,
        script: str,
        versions: list[tuple[str, float]],
        message: str = "",
        *,
        created_on: float | None = None,
        triggered_by: str | None = None,
    ) -> str:
        """Deploy versions (like ``wrangler deploy`` / ``versions deploy``); returns the
        deployment id. No validation: tests may build any history."""
        worker = self._script(script)
        for version_id, _ in versions:
            self._version(worker, version_id)
        trigger = triggered_by or ("upload" if len(versions) == 1 else "deployment")
        deployment = WorkerDeployment(
            id=self.new_id(),
            created_on=self._stamp(created_on),
            versions=[(v, float(p)) for v, p in versions],
            message=truncate_utf8(message),
            triggered_by=trigger,
        )
        worker.deployments.append(deployment)
        return deployment.id

    def publish(self, script: str, message: str = "", *, created_on: float | None = None) -> str:
        """Upload a version and deploy it at 100 % (``wrangler deploy``); returns the version."""
        version = self.upload_version(script, message, created_on=created_on)
        self.deploy(script, [(version, 100)], message, created_on=created_on)
        return version

    def live_deployment(self, script: str) -> WorkerDeployment | None:
        deployments = self._script(script).deployments
        return max(deployments, key=lambda d: d.created_on) if deployments else None

    def edge(self, script: str, version_header: str = "x-worker-version") -> WorkerEdge:
        """The Worker's front door: routes by the live split, records telemetry (and
        feeds the script's Tail Worker, when one is attached)."""
        edge = WorkerEdge(
            script,
            lambda: self.live_versions(script),
            self.telemetry,
            version_header,
            tail=self.tails.get(script),
        )
        self._edges.append(edge)
        return edge

    def attach_tail(
        self,
        script: str,
        *,
        delay_s: float = 2.0,
        jitter_s: float = 1.0,
        seed: int = 0,
        slim: bool = False,
    ) -> TailFeed:
        """Attach a Tail Worker to ``script`` (``tail_consumers``): its front doors, made
        before or after, hand it every invocation; ``deliver`` posts them (``slim``: as
        ``deploy/tail-worker`` forwards them)."""
        feed = TailFeed(script, delay_s=delay_s, jitter_s=jitter_s, seed=seed, slim=slim)
        self.tails[script] = feed
        for edge in self._edges:
            if edge.script == script:
                edge.tail = feed
        return feed

    def graphql_versions(self, served: bool = True) -> None:
        """Serve (or not) GraphQL's ``scriptVersion`` dimension, from the telemetry rows."""
        self.analytics.per_version = self.telemetry.per_version if served else None

    def _account_of(self, account: str) -> None:
        self._account({"account": account})

    def live_versions(self, script: str) -> list[tuple[str, float]]:
        """What serves the script now: ``[(version_id, percentage), ...]``."""
        live = self.live_deployment(script)
        return list(live.versions) if live else []

    def add_project(self, name: str, production_branch: str = "main") -> PagesProject:
        if name not in self.projects:
            self.projects[name] = PagesProject(
                name, self._stamp(None), production_branch=production_branch
            )
        return self.projects[name]

    def add_pages_deployment(
        self,
        project: str,
        *,
        environment: Literal["production", "preview"] = "production",
        stage: str = "deploy",
        status: str = "success",
        is_skipped: bool = False,
        commit_hash: str | None = None,
        commit_message: str = "",
        branch: str | None = None,
        created_on: float | None = None,
    ) -> str:
        """Add a deployment; a successful production one becomes what serves production."""
        proj = self.add_project(project)
        dep = PagesDeployment(
            id=self.new_id(),
            project=project,
            environment=environment,
            created_on=self._stamp(created_on),
            stage=stage,
            status=status,
            is_skipped=is_skipped,
            commit_hash=commit_hash or f"{self._rng.getrandbits(160):040x}",
            commit_message=commit_message,
            branch=branch or (proj.production_branch if environment == "production" else "dev"),
        )
        proj.deployments.append(dep)
        if environment == "production" and dep.successful:
            proj.canonical_id = dep.id
        return dep.id

    def canonical(self, project: str) -> str | None:
        return self._project(project).canonical_id

    # --- faults ---------------------------------------------------------------------------

    def inject(self, fault: Fault) -> Fault:
        self.faults.append(fault)
        return fault

    def fail(self, method: str, path: str, status: int = 503, times: int | None = 1) -> Fault:
        return self.inject(Fault(method, path, "status", times, status=status))

    def rate_limit(
        self, method: str, path: str, retry_after: str | None = "1", times: int | None = 1
    ) -> Fault:
        """429; ``retry_after`` is the header value: delta-seconds or an HTTP date."""
        return self.inject(
            Fault(method, path, "rate_limit", times, status=429, retry_after=retry_after)
        )

    def delay(self, method: str, path: str, seconds: float, times: int | None = 1) -> Fault:
        return self.inject(Fault(method, path, "delay", times, delay_s=seconds))

    def fail_after_apply(
        self, method: str, path: str, status: int = 500, times: int | None = 1
    ) -> Fault:
        """Do the change, then answer ``status``: the client believes it failed."""
        return self.inject(Fault(method, path, "apply_then_status", times, status=status))

    def stall_after_apply(
        self, method: str, path: str, seconds: float, times: int | None = 1
    ) -> Fault:
        """Do the change, then wait ``seconds`` before answering: the client times out."""
        return self.inject(Fault(method, path, "apply_then_stall", times, delay_s=seconds))

    def refuse(
        self,
        method: str,
        path: str,
        code: int,
        message: str,
        status: int = 400,
        times: int | None = 1,
        unless_force: bool = False,
    ) -> Fault:
        return self.inject(
            Fault(
                method,
                path,
                "refuse",
                times,
                status=status,
                code=code,
                message=message,
                unless_force=unless_force,
            )
        )

    def secrets_changed(
        self, script: str, names: tuple[str, ...] = ("SECRET",), times: int | None = None
    ) -> Fault:
        """Create-deployment on ``script`` answers 10220 unless sent with ?force=true."""
        message = (
            "A secret has changed since this version was active. If you are sure this is ok, "
            "add a ?force=true query parameter to allow the rollback. The following secrets "
            f"have changed: {', '.join(names)}"
        )
        path = f"/accounts/{self.account_id}/workers/scripts/{script}/deployments"
        return self.refuse("POST", path, SECRETS_CHANGED_CODE, message, 400, times, True)

    def waf(self, method: str, path: str, times: int | None = 1) -> Fault:
        return self.inject(Fault(method, path, "waf", times, status=403))

    def success_false(
        self, method: str, path: str, code: int, message: str, times: int | None = 1
    ) -> Fault:
        return self.inject(
            Fault(method, path, "success_false", times, status=200, code=code, message=message)
        )

    def set_latency(self, method: str, path: str, seconds: float) -> None:
        """Every matching request waits ``seconds`` first (for the benchmark)."""
        self._latencies.append(_Latency(method, compile_path(path), seconds))

    def count(self, method: str, path: str) -> int:
        """How many requests matched ``method`` (or ``*``) and the path pattern."""
        regex = compile_path(path)
        return sum(
            1 for c in self.calls if method in ("*", c.method) and regex.match(c.path) is not None
        )

    # --- request pipeline -----------------------------------------------------------------

    async def _front(self, request: Request) -> Response:
        path = request.path
        rel = path[len(API_PREFIX) :] if path.startswith(API_PREFIX + "/") else path
        query = {k: v[0] for k, v in request.query.items() if v}
        self.calls.append(
            Call(request.method, rel, query, _body_json(request.body), self.clock.now())
        )
        for latency in self._latencies:
            if latency.method in ("*", request.method) and latency.regex.match(rel):
                await self._sleep(latency.seconds)
        fault = self._take_fault(request.method, rel, query)
        if fault is not None:
            if fault.kind in _PRE_KINDS:
                return self._fault_response(fault)
            if fault.kind == "delay":
                await self._sleep(fault.delay_s)
        denied = None if rel == GRAPHQL_PATH else self._check_auth(request)
        if denied is not None:
            return denied
        try:
            response = await self._api.dispatch(request)
        except _ApiError as exc:
            response = envelope_error(exc.status, exc.code, exc.message)
        if fault is not None and fault.kind == "apply_then_status":
            return self._fault_response(fault)
        if fault is not None and fault.kind == "apply_then_stall":
            await self._sleep(fault.delay_s)
        return response

    def _take_fault(self, method: str, path: str, query: dict[str, str]) -> Fault | None:
        for fault in self.faults:
            if not fault.matches(method, path, query):
                continue
            if fault.passed < fault.after:
                fault.passed += 1
                continue
            fault.hits += 1
            return fault
        return None

    def _check_auth(self, request: Request) -> Response | None:
        header = request.headers.get("authorization")
        if not header:
            return envelope_error(401, AUTH_CODE, "Authentication error")
        if header != f"Bearer {self.token}":
            return envelope_error(403, AUTH_CODE, "Authentication error")
        return None

    def _fault_response(self, fault: Fault) -> Response:
        if fault.kind == "waf":
            return Response.text(
                _WAF_PAGE,
                fault.status,
                content_type="text/html; charset=UTF-8",
                headers={"cf-mitigated": "challenge", "cf-ray": "8f0000000000abcd-LHR"},
            )
        if fault.kind == "rate_limit":
            headers = {"retry-after": fault.retry_after} if fault.retry_after else {}
            message = "Please wait and consider throttling your request speed"
            return envelope_error(429, RATE_LIMITED_CODE, message, headers)
        if fault.kind == "success_false":
            return envelope_error(200, fault.code, fault.message)
        if fault.kind == "refuse":
            return envelope_error(fault.status, fault.code, fault.message)
        return envelope_error(
            fault.status, fault.code or 10013, fault.message or "An unknown error has occurred"
        )

    # --- lookups --------------------------------------------------------------------------

    def _account(self, params: dict[str, str]) -> None:
        if params["account"] != self.account_id:
            raise _ApiError(
                404,
                7003,
                "Could not route to /accounts/..., perhaps your object identifier is invalid?",
            )

    def _script(self, name: str) -> WorkerScript:
        worker = self.scripts.get(name)
        if worker is None:
            raise _ApiError(
                404, SCRIPT_NOT_FOUND_CODE, "This Worker does not exist on your account."
            )
        return worker

    @staticmethod
    def _version(worker: WorkerScript, version_id: str) -> WorkerVersion:
        for version in worker.versions:
            if version.id == version_id:
                return version
        raise _ApiError(404, VALIDATION_CODE, f"Version {version_id} not found")

    def _project(self, name: str) -> PagesProject:
        proj = self.projects.get(name)
        if proj is None:
            raise _ApiError(
                404,
                PAGES_PROJECT_NOT_FOUND_CODE,
                "Project not found. The specified project name does not match any of your "
                "existing projects.",
            )
        return proj

    @staticmethod
    def _pages_deployment(proj: PagesProject, deployment_id: str) -> PagesDeployment:
        for dep in proj.deployments:
            if dep.id == deployment_id:
                return dep
        raise _ApiError(
            404,
            PAGES_DEPLOYMENT_NOT_FOUND_CODE,
            "The deployment ID you have specified does not exist. Update the deployment ID "
            "and try again.",
        )

    # --- wire shapes ----------------------------------------------------------------------

    @staticmethod
    def _deployment_json(dep: WorkerDeployment) -> dict[str, Any]:
        annotations = {"workers/triggered_by": dep.triggered_by}
        if dep.message:
            annotations["workers/message"] = dep.message
        return {
            "id": dep.id,
            "created_on": _iso_us(dep.created_on),
            "source": dep.source,
            "strategy": "percentage",
            "author_email": dep.author_email,
            "versions": [{"version_id": v, "percentage": p} for v, p in dep.versions],
            "annotations": annotations,
        }

    @staticmethod
    def _version_json(version: WorkerVersion) -> dict[str, Any]:
        annotations = {"workers/triggered_by": version.triggered_by}
        if version.message:
            annotations["workers/message"] = version.message
        if version.tag:
            annotations["workers/tag"] = version.tag
        return {
            "id": version.id,
            "number": version.number,
            "metadata": {
                "created_on": _iso_us(version.created_on),
                "modified_on": _iso_us(version.created_on),
                "source": version.source,
                "author_id": "0123456789abcdef",
                "author_email": "deployer@example.com",
                "hasPreview": False,
            },
            "annotations": annotations,
            "resources": {
                "bindings": [],
                "script": {"etag": f"etag-{version.number}", "handlers": ["fetch"]},
                "script_runtime": {
                    "compatibility_date": "2026-01-01",
                    "compatibility_flags": [],
                    "usage_model": "standard",
                },
            },
            "startup_time_ms": 5,
        }

    def _pages_json(self, dep: PagesDeployment) -> dict[str, Any]:
        short = dep.id[:8]
        return {
            "id": dep.id,
            "short_id": short,
            "project_id": f"project-{dep.project}",
            "project_name": dep.project,
            "environment": dep.environment,
            "url": f"https://{short}.{dep.project}.pages.dev",
            "aliases": [f"https://{dep.branch}.{dep.project}.pages.dev"],
            "created_on": _iso_ms(dep.created_on),
            "modified_on": _iso_ms(dep.created_on),
            "is_skipped": dep.is_skipped,
            "latest_stage": {
                "name": dep.stage,
                "status": dep.status,
                "started_on": _iso_ms(dep.created_on),
                "ended_on": _iso_ms(dep.created_on + 30),
            },
            "deployment_trigger": {
                "type": dep.trigger_type,
                "metadata": {
                    "branch": dep.branch,
                    "commit_hash": dep.commit_hash,
                    "commit_message": dep.commit_message,
                    "commit_dirty": False,
                },
            },
            "uses_functions": False,
        }

    # --- routes ---------------------------------------------------------------------------

    def _routes(self) -> None:
        workers = API_PREFIX + "/accounts/{account}/workers/scripts/{script}"
        pages = API_PREFIX + "/accounts/{account}/pages/projects/{project}"
        api = self._api
        api.add("GET", workers + "/deployments", self._list_deployments)
        api.add("POST", workers + "/deployments", self._create_deployment)
        api.add("GET", workers + "/deployments/{deployment}", self._get_deployment)
        api.add("GET", workers + "/versions", self._list_versions)
        api.add("GET", workers + "/versions/{version}", self._get_version)
        api.add("GET", pages, self._get_project)
        api.add("GET", pages + "/deployments", self._list_pages_deployments)
        api.add("GET", pages + "/deployments/{deployment}", self._get_pages_deployment)
        api.add("POST", pages + "/deployments/{deployment}/rollback", self._pages_rollback)
        api.add("POST", API_PREFIX + "/zones/{zone}/purge_cache", self._purge)

    # Workers ------------------------------------------------------------------------------

    async def _list_deployments(self, request: Request, params: dict[str, str]) -> Response:
        self._account(params)
        worker = self._script(params["script"])
        newest_first = sorted(worker.deployments, key=lambda d: d.created_on, reverse=True)
        return envelope({"deployments": [self._deployment_json(d) for d in newest_first]})

    async def _get_deployment(self, request: Request, params: dict[str, str]) -> Response:
        self._account(params)
        worker = self._script(params["script"])
        for dep in worker.deployments:
            if dep.id == params["deployment"]:
                return envelope(self._deployment_json(dep))
        raise _ApiError(404, VALIDATION_CODE, f"Deployment {params['deployment']} not found")

    def _deployable(self, worker: WorkerScript) -> list[WorkerVersion]:
        """The most recent versions, newest first: the only ones a deployment may use."""
        newest = sorted(worker.versions, key=lambda v: v.number, reverse=True)
        return newest[: self.max_deployable_versions]

    async def _create_deployment(self, request: Request, params: dict[str, str]) -> Response:
        self._account(params)
        worker = self._script(params["script"])
        versions, message = self._parse_create(worker, request.json())
        live = self.live_deployment(worker.name)
        newest_live = max(
            (self._version(worker, v).number for v, _ in live.versions) if live else (0,)
        )
        only = self._version(worker, versions[0][0]) if len(versions) == 1 else None
        # guess: the real trigger value of an API-created deployment is unknown (apis.md §11)
        trigger = "rollback" if only is not None and only.number < newest_live else "deployment"
        dep = WorkerDeployment(
            id=self.new_id(),
            created_on=self._stamp(None),
            versions=versions,
            message=message,
            triggered_by=trigger,
            source="api",
            author_email="watchdog@example.com",
        )
        worker.deployments.append(dep)
        return envelope(self._deployment_json(dep))

    def _parse_create(self, worker: WorkerScript, body: Any) -> tuple[list[tuple[str, float]], str]:
        def bad(message: str) -> _ApiError:
            return _ApiError(400, VALIDATION_CODE, message)

        if not isinstance(body, dict):
            raise bad("request body must be a JSON object")
        if body.get("strategy") != "percentage":
            raise bad('strategy must be "percentage"')
        raw = body.get("versions")
        if not isinstance(raw, list) or not 1 <= len(raw) <= 2:
            raise bad("versions must be a list of one or two versions")
        versions: list[tuple[str, float]] = []
        for item in raw:
            if not isinstance(item, dict):
                raise bad("each version must be an object")
            version_id, pct = item.get("version_id"), item.get("percentage")
            if not isinstance(version_id, str):
                raise bad("version_id must be a string")
            if isinstance(pct, bool) or not isinstance(pct, int | float) or not 0 < pct <= 100:
                raise bad("percentage must be a number in (0, 100]")
            versions.append((version_id, float(pct)))
        if len({v for v, _ in versions}) != len(versions):
            raise bad("the same version appears twice")
        if abs(sum(p for _, p in versions) - 100.0) > 1e-9:
            raise bad("version percentages must add up to 100")
        deployable = {v.id for v in self._deployable(worker)}
        for version_id, _ in versions:
            self._version(worker, version_id)
            if version_id not in deployable:
                raise bad(
                    f"version {version_id} is not among the {self.max_deployable_versions} "
                    "most recent versions and cannot be deployed"
                )
        annotations = body.get("annotations", {})
        if not isinstance(annotations, dict):
            raise bad("annotations must be an object")
        unknown = set(annotations) - {"workers/message"}
        if unknown:
            raise bad(f"annotations not writable: {', '.join(sorted(unknown))}")
        message = annotations.get("workers/message", "")
        if not isinstance(message, str):
            raise bad("workers/message must be a string")
        return versions, truncate_utf8(message)

    async def _list_versions(self, request: Request, params: dict[str, str]) -> Response:
        self._account(params)
        worker = self._script(params["script"])
        if request.arg("deployable") == "true":
            # deployable=true ignores pagination (apis.md §2.1)
            items = self._deployable(worker)
            info = {"page": 1, "per_page": len(items), "count": len(items)}
            info["total_count"] = len(items)
        else:
            page, per_page = _int_arg(request, "page", 1), _int_arg(request, "per_page", 10)
            newest = sorted(worker.versions, key=lambda v: v.number, reverse=True)
            items = newest[(page - 1) * per_page : page * per_page]
            info = {"page": page, "per_page": per_page, "count": len(items)}
            info["total_count"] = len(newest)
        return envelope({"items": [self._version_json(v) for v in items]}, info)

    async def _get_version(self, request: Request, params: dict[str, str]) -> Response:
        self._account(params)
        worker = self._script(params["script"])
        return envelope(self._version_json(self._version(worker, params["version"])))

    # Pages --------------------------------------------------------------------------------

    async def _get_project(self, request: Request, params: dict[str, str]) -> Response:
        self._account(params)
        proj = self._project(params["project"])
        by_id = {d.id: d for d in proj.deployments}
        canonical = by_id.get(proj.canonical_id) if proj.canonical_id else None
        latest = max(proj.deployments, key=lambda d: d.created_on) if proj.deployments else None
        return envelope(
            {
                "id": f"project-{proj.name}",
                "name": proj.name,
                "subdomain": f"{proj.name}.pages.dev",
                "production_branch": proj.production_branch,
                "created_on": _iso_ms(proj.created_on),
                "domains": [f"{proj.name}.pages.dev"],
                "canonical_deployment": self._pages_json(canonical) if canonical else None,
                "latest_deployment": self._pages_json(latest) if latest else None,
            }
        )

    async def _list_pages_deployments(self, request: Request, params: dict[str, str]) -> Response:
        self._account(params)
        proj = self._project(params["project"])
        env = request.arg("env")
        if env not in (None, "production", "preview"):
            raise _ApiError(400, PAGES_ERROR_CODE, f"env must be production or preview: {env!r}")
        page = _int_arg(request, "page", 1)
        per_page = min(_int_arg(request, "per_page", 25), self.pages_max_per_page)
        chosen = [d for d in proj.deployments if env is None or d.environment == env]
        chosen.sort(key=lambda d: d.created_on, reverse=self.pages_order == "newest")
        items = chosen[(page - 1) * per_page : page * per_page]
        total_pages = max(1, -(-len(chosen) // per_page))
        info = {
            "page": page,
            "per_page": per_page,
            "count": len(items),
            "total_count": len(chosen),
            "total_pages": total_pages,
        }
        return envelope([self._pages_json(d) for d in items], info)

    async def _get_pages_deployment(self, request: Request, params: dict[str, str]) -> Response:
        self._account(params)
        proj = self._project(params["project"])
        return envelope(self._pages_json(self._pages_deployment(proj, params["deployment"])))

    async def _pages_rollback(self, request: Request, params: dict[str, str]) -> Response:
        self._account(params)
        proj = self._project(params["project"])
        dep = self._pages_deployment(proj, params["deployment"])
        if dep.environment != "production" or not dep.successful:
            raise _ApiError(
                400, PAGES_ERROR_CODE, "You can only rollback to successful builds on production."
            )
        proj.canonical_id = dep.id
        # guess: the response is the target deployment itself (apis.md §11)
        return envelope(self._pages_json(dep))

    # Zone purge ---------------------------------------------------------------------------

    async def _purge(self, request: Request, params: dict[str, str]) -> Response:
        body = request.json()
        if not isinstance(body, dict):
            raise _ApiError(400, PURGE_ERROR_CODE, "request body must be a JSON object")
        kinds = [k for k in ("purge_everything", "files", "tags", "hosts", "prefixes") if k in body]
        if len(kinds) != 1 or set(body) - set(kinds):
            raise _ApiError(
                400,
                PURGE_ERROR_CODE,
                "give exactly one of purge_everything, files, tags, hosts or prefixes",
            )
        kind = kinds[0]
        value = body[kind]
        if kind == "purge_everything":
            if value is not True:
                raise _ApiError(400, PURGE_ERROR_CODE, "purge_everything must be true")
        elif not isinstance(value, list) or not value:
            raise _ApiError(400, PURGE_ERROR_CODE, f"{kind} must be a non-empty list")
        elif len(value) > 100:
            raise _ApiError(400, PURGE_ERROR_CODE, f"at most 100 {kind} per request")
        purge_id = self.new_id().replace("-", "")
        self.purges.append(PurgeRecord(params["zone"], body, purge_id))
        return envelope({"id": purge_id})
