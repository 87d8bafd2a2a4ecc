"""Local stand-ins for Slack, a JSON webhook, PagerDuty, Statuspage and GitHub.

Each records what it got and answers the way the real service does (status codes,
body shapes, the checks that matter), so notifiers are tested over real sockets and
the demo runs without the internet. ``Receivers`` mounts them all on one
``Router`` under path prefixes:

    /slack/services/{team}/{channel}/{token}      Slack incoming webhook
    /webhook[/{name}]                             generic JSON webhook
    /pagerduty/v2/enqueue                         PagerDuty Events API v2
    /statuspage/v1/pages/{page_id}/...            Statuspage REST API
    /github/repos/{owner}/{repo}/actions/...      GitHub workflow_dispatch

Each receiver's ``fail_next(...)`` queues canned failures (500, 429 with
Retry-After, 420, ...) that pre-empt the next requests.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from watchdog.actions.notify.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify_signature
from watchdog.http.server import Handler, Receive, Request, Response, Router, Scope, Send

Now = Callable[[], float]


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


@dataclass
class Recorded:
    """One request as received."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    status: int = 0  # what the receiver answered

    def json(self) -> Any:
        return json.loads(self.body)


class Faults:
    """Canned answers for the next requests, in order."""

    def __init__(self) -> None:
        self._queue: deque[Response] = deque()

    def add(self, response: Response, times: int = 1) -> None:
        for _ in range(times):
            self._queue.append(response)

    def take(self) -> Response | None:
        return self._queue.popleft() if self._queue else None

    def __len__(self) -> int:
        return len(self._queue)


def _headers(retry_after: float | None, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    headers = dict(extra or {})
    if retry_after is not None:
        headers["retry-after"] = f"{retry_after:g}"
    return headers


def _record(request: Request) -> Recorded:
    return Recorded(request.method, request.path, dict(request.headers), request.body)


def _parse_json(body: bytes) -> Any:
    """The body as JSON, or None when it is not JSON."""
    try:
        return json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None


# --- Slack ---------------------------------------------------------------------------

_BLOCK_TYPES = frozenset(
    {"section", "header", "context", "divider", "actions", "image", "rich_text", "input"}
)


def _slack_blocks_problem(blocks: Any) -> str | None:
    """The Block Kit rules that make Slack answer ``invalid_blocks``."""
    if not isinstance(blocks, list) or len(blocks) > 50:
        return "invalid_blocks"
    for block in blocks:
        if not isinstance(block, dict) or block.get("type") not in _BLOCK_TYPES:
            return "invalid_blocks"
        text = block.get("text")
        if block["type"] == "header":
            if not isinstance(text, dict) or text.get("type") != "plain_text":
                return "invalid_blocks"
            if len(str(text.get("text", ""))) > 150:
                return "invalid_blocks"
        if block["type"] == "section":
            fields = block.get("fields")
            if text is None and not fields:
                return "invalid_blocks"
            if isinstance(text, dict) and len(str(text.get("text", ""))) > 3000:
                return "invalid_blocks"
            if fields is not None and (
                not isinstance(fields, list)
                or len(fields) > 10
                or any(len(str(f.get("text", ""))) > 2000 for f in fields)
            ):
                return "invalid_blocks"
    return None


class SlackReceiver:
    """Slack incoming webhooks: 200 ``ok``, plain-text error strings."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.messages: list[dict[str, Any]] = []  # accepted bodies
        self.disabled: set[str] = set()  # tokens that answer 404 no_service
        self.faults = Faults()

    def fail_next(
        self,
        status: int = 500,
        body: str = "rollup_error",
        *,
        times: int = 1,
        retry_after: float | None = None,
    ) -> None:
        """Answer the next ``times`` posts with ``status`` and ``body`` (429: set
        ``retry_after``; 404 ``no_service`` for a removed webhook)."""
        self.faults.add(Response.text(body, status, headers=_headers(retry_after)), times)

    def mount(self, router: Router, prefix: str = "/slack") -> None:
        router.add("POST", f"{prefix}/services/{{team}}/{{channel}}/{{token}}", self._post)

    async def _post(self, request: Request, params: dict[str, str]) -> Response:
        recorded = _record(request)
        self.requests.append(recorded)
        response = self._answer(request, params)
        recorded.status = response.status
        return response

    def _answer(self, request: Request, params: dict[str, str]) -> Response:
        fault = self.faults.take()
        if fault is not None:
            return fault
        if params["token"] in self.disabled:
            return Response.text("no_service", 404)
        body = _parse_json(request.body)
        if not isinstance(body, dict):
            return Response.text("invalid_payload", 400)
        if not body.get("text") and not body.get("blocks"):
            return Response.text("no_text", 400)
        if "blocks" in body:
            problem = _slack_blocks_problem(body["blocks"])
            if problem is not None:
                return Response.text(problem, 400)
        self.messages.append(body)
        return Response.text("ok", 200)


# --- generic webhook -----------------------------------------------------------------


@dataclass
class WebhookDelivery:
    body: bytes
    headers: dict[str, str]
    signature_ok: bool | None  # None: the receiver has no key to check with

    def json(self) -> Any:
        return json.loads(self.body)


class WebhookReceiver:
    """Records each delivery; with ``hmac_key`` it rejects a bad or stale signature
    (a replay: the signed timestamp too far from ``now``) with 401."""

    def __init__(self, hmac_key: str | None = None, now: Now = time.time) -> None:
        self.hmac_key = hmac_key
        self.now = now
        self.deliveries: list[WebhookDelivery] = []
        self.faults = Faults()

    def fail_next(
        self, status: int = 500, *, times: int = 1, retry_after: float | None = None
    ) -> None:
        self.faults.add(
            Response.json({"error": "injected"}, status, headers=_headers(retry_after)), times
        )

    def mount(self, router: Router, prefix: str = "/webhook") -> None:
        router.add("POST", prefix, self._post)
        router.add("POST", f"{prefix}/{{name}}", self._post)

    async def _post(self, request: Request, params: dict[str, str]) -> Response:
        ok = None
        if self.hmac_key is not None:
            ok = verify_signature(
                request.body,
                request.headers.get(SIGNATURE_HEADER.lower()),
                request.headers.get(TIMESTAMP_HEADER.lower()),
                self.hmac_key,
                now=self.now(),
            )
        self.deliveries.append(WebhookDelivery(request.body, dict(request.headers), ok))
        fault = self.faults.take()
        if fault is not None:
            return fault
        if ok is False:
            return Response.json({"error": "bad or stale signature"}, 401)
        if not isinstance(_parse_json(request.body), dict):
            return Response.json({"error": "body is not a JSON object"}, 400)
        return Response.json({"received": True}, 200)


# --- PagerDuty -----------------------------------------------------------------------

_PD_SEVERITIES = frozenset({"critical", "error", "warning", "info"})
_PD_ACTIONS = frozenset({"trigger", "acknowledge", "resolve"})


def _pagerduty_problems(body: Any) -> list[str]:
    if not isinstance(body, dict):
        return ["Event object is not a JSON object"]
    problems = []
    key = body.get("routing_key")
    if not isinstance(key, str) or len(key) != 32:
        problems.append("'routing_key' must be a 32 character integration key")
    action = body.get("event_action")
    if action not in _PD_ACTIONS:
        problems.append("'event_action' must be one of trigger, acknowledge, resolve")
    dedup = body.get("dedup_key")
    if dedup is not None and (not isinstance(dedup, str) or len(dedup) > 255):
        problems.append("'dedup_key' must be a string of at most 255 characters")
    if action in ("acknowledge", "resolve") and not dedup:
        problems.append("'dedup_key' is required for acknowledge and resolve")
    if action == "trigger":
        payload = body.get("payload")
        if not isinstance(payload, dict):
            problems.append("'payload' is missing or not an object")
        else:
            summary = payload.get("summary")
            if not isinstance(summary, str) or not summary or len(summary) > 1024:
                problems.append("'payload.summary' is required (at most 1024 characters)")
            if not payload.get("source"):
                problems.append("'payload.source' is required")
            if payload.get("severity") not in _PD_SEVERITIES:
                problems.append("'payload.severity' must be critical, error, warning or info")
    return problems


class PagerDutyReceiver:
    """Events API v2: 202 with the dedup_key, 400 "invalid event" with errors."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.events: list[dict[str, Any]] = []  # accepted events
        self.alerts: dict[str, str] = {}  # dedup_key -> triggered | acknowledged | resolved
        self.faults = Faults()

    def fail_next(
        self, status: int = 429, *, times: int = 1, retry_after: float | None = None
    ) -> None:
        body = {
            "status": "throttle event",
            "message": "Requests for this service are arriving too quickly.",
        }
        if status >= 500:
            body = {"status": "error", "message": "internal error"}
        self.faults.add(Response.json(body, status, headers=_headers(retry_after)), times)

    def mount(self, router: Router, prefix: str = "/pagerduty") -> None:
        router.add("POST", f"{prefix}/v2/enqueue", self._enqueue)

    async def _enqueue(self, request: Request, params: dict[str, str]) -> Response:
        recorded = _record(request)
        self.requests.append(recorded)
        response = self._answer(request)
        recorded.status = response.status
        return response

    def _answer(self, request: Request) -> Response:
        fault = self.faults.take()
        if fault is not None:
            return fault
        body = _parse_json(request.body)
        problems = _pagerduty_problems(body)
        if problems:
            return Response.json(
                {
                    "status": "invalid event",
                    "message": "Event object is invalid",
                    "errors": problems,
                },
                400,
            )
        dedup = body.get("dedup_key") or uuid.uuid4().hex
        action = body["event_action"]
        current = self.alerts.get(dedup)
        if action == "trigger":
            self.alerts[dedup] = "triggered"
        elif current is not None and current != "resolved":
            # acknowledge/resolve apply only to an open alert; otherwise dropped
            self.alerts[dedup] = "acknowledged" if action == "acknowledge" else "resolved"
        self.events.append(body)
        return Response.json(
            {"status": "success", "message": "Event processed", "dedup_key": dedup}, 202
        )


# --- Statuspage ----------------------------------------------------------------------

INCIDENT_STATUSES = frozenset({"investigating", "identified", "monitoring", "resolved"})
COMPONENT_STATUSES = frozenset(
    {"operational", "degraded_performance", "partial_outage", "major_outage", "under_maintenance"}
)


class StatuspageReceiver:
    """A stateful Statuspage page: incidents with ``incident_updates`` and component
    statuses. Needs ``Authorization: OAuth <api_key>``; errors are ``{"error": ...}``."""

    def __init__(self, api_key: str, now: Now = time.time) -> None:
        self.api_key = api_key
        self.now = now
        self.requests: list[Recorded] = []
        self.incidents: dict[str, dict[str, Any]] = {}
        self.components: dict[str, str] = {}
        self.component_history: list[tuple[str, str]] = []  # (component id, status)
        self.faults = Faults()
        self._seq = 0

    def add_component(self, component_id: str, status: str = "operational") -> None:
        self.components[component_id] = status

    def fail_next(
        self, status: int = 420, *, times: int = 1, retry_after: float | None = None
    ) -> None:
        self.faults.add(
            Response.json({"error": "Rate limit exceeded"}, status, headers=_headers(retry_after)),
            times,
        )

    def mount(self, router: Router, prefix: str = "/statuspage") -> None:
        base = f"{prefix}/v1/pages/{{page_id}}"
        router.add("POST", f"{base}/incidents", self._guard(self._create))
        router.add("GET", f"{base}/incidents", self._guard(self._list))
        router.add("GET", f"{base}/incidents/unresolved", self._guard(self._unresolved))
        router.add("GET", f"{base}/incidents/{{incident_id}}", self._guard(self._get))
        router.add("PATCH", f"{base}/incidents/{{incident_id}}", self._guard(self._update))
        router.add("GET", f"{base}/components", self._guard(self._list_components))
        router.add("PATCH", f"{base}/components/{{component_id}}", self._guard(self._component))

    def _guard(self, handler: Callable[[Request, dict[str, str]], Response]) -> Handler:
        async def wrapped(request: Request, params: dict[str, str]) -> Response:
            recorded = _record(request)
            self.requests.append(recorded)
            response = self._check(request) or handler(request, params)
            recorded.status = response.status
            return response

        return wrapped

    def _check(self, request: Request) -> Response | None:
        fault = self.faults.take()
        if fault is not None:
            return fault
        auth = request.headers.get("authorization", "")
        if auth != f"OAuth {self.api_key}" and request.arg("api_key") != self.api_key:
            return Response.json({"error": "Could not authenticate"}, 401)
        return None

    def _error(self, status: int, message: str) -> Response:
        return Response.json({"error": message}, status)

    def _body(self, request: Request, key: str) -> dict[str, Any] | Response:
        body = _parse_json(request.body)
        if not isinstance(body, dict) or not isinstance(body.get(key), dict):
            return self._error(400, f"body must be a JSON object with an {key!r} object")
        value: dict[str, Any] = body[key]
        return value

    def _apply_components(self, data: dict[str, Any]) -> dict[str, str] | Response:
        changes = data.get("components") or {}
        if not isinstance(changes, dict):
            return self._error(422, "components must be an object of id -> status")
        for component_id, status in changes.items():
            if component_id not in self.components:
                return self._error(422, f"component {component_id} not found")
            if status not in COMPONENT_STATUSES:
                return self._error(422, f"component status {status!r} is not valid")
        for component_id, status in changes.items():
            self.components[component_id] = status
            self.component_history.append((component_id, status))
        return changes

    def _add_update(self, incident: dict[str, Any], status: str, body: str) -> None:
        self._seq += 1
        incident["incident_updates"].insert(
            0,
            {
                "id": f"upd{self._seq:05d}",
                "incident_id": incident["id"],
                "status": status,
                "body": body,
                "created_at": _iso(self.now()),
                "affected_components": [
                    {"code": cid, "new_status": st} for cid, st in self.components.items()
                ],
            },
        )

    def _create(self, request: Request, params: dict[str, str]) -> Response:
        data = self._body(request, "incident")
        if isinstance(data, Response):
            return data
        name = data.get("name")
        if not isinstance(name, str) or not name:
            return self._error(422, "name can't be blank")
        status = data.get("status", "investigating")
        if status not in INCIDENT_STATUSES:
            return self._error(422, f"status {status!r} is not a realtime incident status")
        changes = self._apply_components(data)
        if isinstance(changes, Response):
            return changes
        self._seq += 1
        incident_id = f"inc{self._seq:09d}"
        created = _iso(self.now())
        incident: dict[str, Any] = {
            "id": incident_id,
            "page_id": params["page_id"],
            "name": name,
            "status": status,
            "impact": data.get("impact_override", "none"),
            "created_at": created,
            "updated_at": created,
            "resolved_at": created if status == "resolved" else None,
            "metadata": data.get("metadata", {}),
            "incident_updates": [],
            "components": [{"id": cid} for cid in data.get("component_ids") or changes],
        }
        self._add_update(incident, status, str(data.get("body", "")))
        self.incidents[incident_id] = incident
        return Response.json(incident, 201)

    def _list(self, request: Request, params: dict[str, str]) -> Response:
        return Response.json(list(self.incidents.values()))

    def _unresolved(self, request: Request, params: dict[str, str]) -> Response:
        open_ = [i for i in self.incidents.values() if i["status"] != "resolved"]
        return Response.json(open_)

    def _get(self, request: Request, params: dict[str, str]) -> Response:
        incident = self.incidents.get(params["incident_id"])
        if incident is None:
            return self._error(404, "The requested resource could not be found.")
        return Response.json(incident)

    def _update(self, request: Request, params: dict[str, str]) -> Response:
        incident = self.incidents.get(params["incident_id"])
        if incident is None:
            return self._error(404, "The requested resource could not be found.")
        data = self._body(request, "incident")
        if isinstance(data, Response):
            return data
        status = data.get("status", incident["status"])
        if status not in INCIDENT_STATUSES:
            return self._error(422, f"status {status!r} is not a realtime incident status")
        changes = self._apply_components(data)
        if isinstance(changes, Response):
            return changes
        if "status" in data or "body" in data:
            self._add_update(incident, status, str(data.get("body", "")))
        incident["status"] = status
        incident["updated_at"] = _iso(self.now())
        if status == "resolved":
            incident["resolved_at"] = incident["updated_at"]
        return Response.json(incident)

    def _list_components(self, request: Request, params: dict[str, str]) -> Response:
        return Response.json([{"id": cid, "status": st} for cid, st in self.components.items()])

    def _component(self, request: Request, params: dict[str, str]) -> Response:
        data = self._body(request, "component")
        if isinstance(data, Response):
            return data
        changes = self._apply_components(
            {"components": {params["component_id"]: data.get("status")}}
        )
        if isinstance(changes, Response):
            return changes
        return Response.json({"id": params["component_id"], "status": data.get("status")})


# --- GitHub --------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkflowInput:
    required: bool = False
    options: tuple[str, ...] = ()  # a `type: choice` input


# The runbook's .github/workflows/rollback.yml
RUNBOOK_INPUTS: dict[str, WorkflowInput] = {
    "component": WorkflowInput(required=True, options=("worker", "frontend", "both")),
    "reason": WorkflowInput(required=True),
}


@dataclass
class Dispatch:
    repo: str
    workflow: str
    ref: str
    inputs: dict[str, str]
    headers: dict[str, str] = field(default_factory=dict)


class GithubReceiver:
    """``workflow_dispatch``: 204 on success, 404 for an unknown workflow, 422 for bad
    inputs or a missing ref, 401 without the right bearer token."""

    def __init__(self, token: str | None = None) -> None:
        self.token = token
        self.workflows: dict[tuple[str, str], dict[str, WorkflowInput]] = {}
        self.requests: list[Recorded] = []
        self.dispatches: list[Dispatch] = []
        self.faults = Faults()
        self._run = 1000

    def add_workflow(
        self,
        repo: str,
        workflow: str = "rollback.yml",
        inputs: Mapping[str, WorkflowInput] | None = None,
    ) -> None:
        self.workflows[(repo, workflow)] = dict(RUNBOOK_INPUTS if inputs is None else inputs)

    def fail_next(
        self, status: int = 500, *, times: int = 1, retry_after: float | None = None
    ) -> None:
        body = {"message": "Server Error"} if status >= 500 else {"message": "rate limited"}
        self.faults.add(Response.json(body, status, headers=_headers(retry_after)), times)

    def mount(self, router: Router, prefix: str = "/github") -> None:
        path = f"{prefix}/repos/{{owner}}/{{repo}}/actions/workflows/{{workflow}}/dispatches"
        router.add("POST", path, self._dispatch)

    async def _dispatch(self, request: Request, params: dict[str, str]) -> Response:
        recorded = _record(request)
        self.requests.append(recorded)
        response = self._answer(request, params)
        recorded.status = response.status
        return response

    def _error(self, status: int, message: str) -> Response:
        return Response.json(
            {
                "message": message,
                "documentation_url": "https://docs.github.com/rest",
                "status": str(status),
            },
            status,
        )

    def _answer(self, request: Request, params: dict[str, str]) -> Response:
        fault = self.faults.take()
        if fault is not None:
            return fault
        if (
            self.token is not None
            and request.headers.get("authorization") != f"Bearer {self.token}"
        ):
            return self._error(401, "Bad credentials")
        repo = f"{params['owner']}/{params['repo']}"
        declared = self.workflows.get((repo, params["workflow"]))
        if declared is None:
            return self._error(404, "Not Found")
        body = _parse_json(request.body)
        if not isinstance(body, dict):
            return self._error(400, "Problems parsing JSON")
        ref = body.get("ref")
        if not isinstance(ref, str) or not ref:
            return self._error(422, 'Invalid request.\n\n"ref" wasn\'t supplied.')
        inputs = body.get("inputs") or {}
        problem = _input_problem(inputs, declared)
        if problem is not None:
            return self._error(422, problem)
        self.dispatches.append(
            Dispatch(repo, params["workflow"], ref, dict(inputs), dict(request.headers))
        )
        if body.get("return_run_details"):
            self._run += 1
            return Response.json(
                {
                    "workflow_run_id": self._run,
                    "run_url": f"https://api.github.com/repos/{repo}/actions/runs/{self._run}",
                    "html_url": f"https://github.com/{repo}/actions/runs/{self._run}",
                },
                200,
            )
        return Response(204)


def _input_problem(inputs: Any, declared: Mapping[str, WorkflowInput]) -> str | None:
    if not isinstance(inputs, dict):
        return "Invalid request.\n\nFor 'properties/inputs', it is not an object."
    unexpected = sorted(set(inputs) - set(declared))
    if unexpected:
        return f"Unexpected inputs provided: {json.dumps(unexpected)}"
    for name, spec in declared.items():
        value = inputs.get(name)
        if value is None:
            if spec.required:
                return f"Required input '{name}' not provided"
            continue
        if not isinstance(value, str):
            return f"Input '{name}' must be a string"
        if spec.options and value not in spec.options:
            return f"Provided value '{value}' for input '{name}' not in the list of allowed values"
    return None


# --- all of them on one server -------------------------------------------------------


class Receivers:
    """Every receiver on one ASGI app (a ``Router``), for tests and the demo.

    ``async with serve(receivers) as srv:`` then point notifiers at
    ``receivers.slack_webhook_url(srv.url)`` and friends."""

    def __init__(
        self,
        *,
        statuspage_api_key: str = "statuspage-test-key",
        github_token: str | None = None,
        webhook_hmac_key: str | None = None,
        now: Now = time.time,
    ) -> None:
        self.router = Router()
        self.slack = SlackReceiver()
        self.webhook = WebhookReceiver(webhook_hmac_key, now)
        self.pagerduty = PagerDutyReceiver()
        self.statuspage = StatuspageReceiver(statuspage_api_key, now)
        self.github = GithubReceiver(github_token)
        self.slack.mount(self.router, "/slack")
        self.webhook.mount(self.router, "/webhook")
        self.pagerduty.mount(self.router, "/pagerduty")
        self.statuspage.mount(self.router, "/statuspage")
        self.github.mount(self.router, "/github")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.router(scope, receive, send)

    @staticmethod
    def slack_webhook_url(base: str, token: str = "XXXXXXXXXXXXXXXXXXXXXXXX") -> str:  # noqa: S107
        return f"{base}/slack/services/T00000000/B00000000/{token}"

    @staticmethod
    def webhook_url(base: str, name: str = "") -> str:
        return f"{base}/webhook/{name}" if name else f"{base}/webhook"

    @staticmethod
    def pagerduty_url(base: str) -> str:
        return f"{base}/pagerduty/v2/enqueue"

    @staticmethod
    def statuspage_url(base: str) -> str:
        return f"{base}/statuspage/v1"

    @staticmethod
    def github_api_url(base: str) -> str:
        return f"{base}/github"
