"""``rollback-watchdog demo``: the whole story in one process on loopback.

A simulated production app (real HTTP traffic, /metrics, /health), the local
Cloudflare API with a Worker and a Pages project and a short deploy history, the
Slack/PagerDuty/Statuspage receivers, and the real watchdog (``Runtime``, the same
wiring as ``rollback-watchdog run``) with rules/demo.yaml. A scenario ships a bad
deploy (or breaks something else) and the demo shows what the watchdog does about
it; it exits 0 when the expected outcome happened.

``--virtual-time`` runs the same thing on a self-driving virtual clock (minutes in
seconds); the tests use it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import tempfile
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from watchdog import logs, strict_json
from watchdog.api.app import build_app
from watchdog.clock import AutoClock, Clock, SystemClock
from watchdog.core.engine import Observation
from watchdog.demo.fakes.app import AppState, FakeApp, LatencyModel, drive
from watchdog.demo.fakes.cloudflare import FakeCloudflare
from watchdog.demo.fakes.receivers import Receivers
from watchdog.demo.view import LiveView, Timeline
from watchdog.http.server import serve
from watchdog.run.runtime import Runtime
from watchdog.settings import load_settings

# rules/demo.yaml: in a wheel it is packaged as watchdog/_rules/ (see pyproject.toml).
_PACKAGE = Path(__file__).resolve().parents[1]  # watchdog/
RULES = next(
    (
        p
        for p in (_PACKAGE / "_rules" / "demo.yaml", _PACKAGE.parent / "rules" / "demo.yaml")
        if p.exists()
    ),
    _PACKAGE.parent / "rules" / "demo.yaml",
)
TOKEN = "demo-cloudflare-token"  # noqa: S105 (the local fake's own token)
# PagerDuty's integration keys are 32 characters; the local receiver checks it.
DEMO_ROUTING_KEY = "demo-routing-key-0123456789abcde"
ACCOUNT = "demo-account"
WORKER = "/accounts/{account}/workers/scripts/{script}/deployments"
PAGES_ROLLBACK = "/accounts/{account}/pages/projects/{project}/deployments/{id}/rollback"

GOOD = AppState("v2", error_ratio=0.002, latency=LatencyModel(0.08, 0.4))
BAD_ERRORS = AppState("v3", error_ratio=0.25, latency=LatencyModel(0.1, 0.6))
BAD_LATENCY = AppState("v3", error_ratio=0.002, latency=LatencyModel(2.5, 7.5))
DB_DOWN = AppState("v2", error_ratio=0.4, latency=LatencyModel(0.08, 0.4), healthy=False)


class BusyTransport(httpx.AsyncBaseTransport):
    """Marks the virtual clock busy for each HTTP exchange, so virtual time does not
    run ahead of loopback I/O."""

    def __init__(self, clock: AutoClock) -> None:
        self.clock = clock
        self.inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        with self.clock.busy():
            response = await self.inner.handle_async_request(request)
            try:
                raw = b"".join([chunk async for chunk in response.aiter_raw()])
            finally:
                await response.aclose()
        # A fresh, unread response over the raw bytes: the client reads and closes it
        # as it would the network's (decoding, ``elapsed``); one already read never
        # gets its ``elapsed`` set, which broke the probe under virtual time.
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            stream=httpx.ByteStream(raw),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self.inner.aclose()


def _transport(clock: Clock) -> httpx.AsyncBaseTransport | None:
    return BusyTransport(clock) if isinstance(clock, AutoClock) else None


@dataclass
class RunRecord:
    """What a demo run did that the strict verdict judges, apart from its scenario's
    outcome: failed actions, logged errors and tracebacks, and blindness. Saved with
    ``demo --record FILE`` (JSON), so a recorded run can be judged again."""

    scenario: str
    virtual_time: bool
    acted_at: float | None = None  # seconds after the start, when the scenario acted
    failed_actions: list[str] = field(default_factory=list)
    failures_counted: int = 0  # watchdog_actions_total{outcome="failure"}
    logged: list[str] = field(default_factory=list)  # error lines and tracebacks
    blind_at_act: list[str] = field(default_factory=list)  # rules without evidence then
    went_blind: list[tuple[float, str]] = field(default_factory=list)  # (at, rule)
    blind_alarms: list[tuple[float, str]] = field(default_factory=list)  # (at, why)

    def to_json(self) -> str:
        return strict_json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> RunRecord:
        data = json.loads(text)
        data["went_blind"] = [(float(at), str(rule)) for at, rule in data["went_blind"]]
        data["blind_alarms"] = [(float(at), str(why)) for at, why in data["blind_alarms"]]
        return cls(**data)


def strict_problems(record: RunRecord, may_blind: frozenset[str] = frozenset()) -> list[str]:
    """Everything that makes a run fail whatever its outcome: a failed action, a logged
    error or traceback, a rule with no evidence after the warm-up, a blind alarm."""
    problems = [f"action failed: {text}" for text in record.failed_actions]
    if record.failures_counted > len(record.failed_actions):
        problems.append(
            f"watchdog_actions_total counts {record.failures_counted} failed action(s), "
            f"{len(record.failed_actions)} of them reported"
        )
    for line, times in Counter(record.logged).items():
        problems.append(f"logged {line}" + (f" ({times} times)" if times > 1 else ""))
    problems += [
        f"rule {rule} was blind when the scenario began (no evidence in the warm-up)"
        for rule in record.blind_at_act
        if rule not in may_blind
    ]
    problems += [
        f"rule {rule} went blind at +{at:.1f}s"
        for at, rule in record.went_blind
        if rule not in may_blind and (record.acted_at is None or at >= record.acted_at)
    ]
    problems += [f"blind alarm at +{at:.1f}s: {why}" for at, why in record.blind_alarms]
    return problems


@dataclass
class Demo:
    clock: Clock
    app: FakeApp
    cf: FakeCloudflare
    receivers: Receivers
    runtime: Runtime
    timeline: Timeline
    api_url: str
    http: httpx.AsyncClient
    bad_version: str | None = None
    good_version: str = ""
    follow_worker: bool = False
    bad_state: AppState = BAD_ERRORS
    notes: dict[str, Any] = field(default_factory=dict)
    record: RunRecord = field(default_factory=lambda: RunRecord("", False))

    def now(self) -> float:
        return self.clock.now()

    def worker_rollbacks(self) -> int:
        # Create-deployment POSTs through the API: the bad deploy is arranged directly.
        return self.cf.count("POST", WORKER)

    def pages_rollbacks(self) -> int:
        return self.cf.count("POST", PAGES_ROLLBACK)

    def events(self, kind: str) -> list[float]:
        return [t for t, text in self.timeline.entries if text.startswith(kind)]

    def ship_bad_deploy(self, state: AppState) -> None:
        version = self.cf.upload_version("demo-api", "v3: new checkout flow")
        self.cf.deploy("demo-api", [(version, 100.0)], "deploy v3")
        self.cf.add_pages_deployment("demo-site", commit_message="v3: new checkout flow")
        self.bad_version = version
        self.bad_state = state
        self.follow_worker = True
        self.app.deploy(
            state.version,
            error_ratio=state.error_ratio,
            latency=state.latency,
            healthy=state.healthy,
        )
        self.timeline.add(self.now(), "deploy: shipped v3 to the Worker and Pages (the bad one)")


@dataclass
class Scenario:
    name: str
    description: str
    expected: str
    act: Callable[[Demo], Awaitable[None]]
    done: Callable[[Demo], bool]
    judge: Callable[[Demo], tuple[bool, str]]
    may_blind: frozenset[str] = frozenset()  # rules this scenario expects to go blind


async def _bad_deploy(demo: Demo) -> None:
    demo.ship_bad_deploy(BAD_ERRORS)


async def _slow_deploy(demo: Demo) -> None:
    demo.ship_bad_deploy(BAD_LATENCY)


async def _outage(demo: Demo) -> None:
    demo.app.deploy(DB_DOWN.version, error_ratio=DB_DOWN.error_ratio, healthy=False)
    demo.timeline.add(demo.now(), "outage: the database went away (no deploy involved)")


async def _flapping(demo: Demo) -> None:
    demo.ship_bad_deploy(AppState("v3", error_ratio=0.002))
    demo.follow_worker = False

    async def flap() -> None:
        high = False
        while True:
            high = not high
            demo.app.deploy("v3", error_ratio=0.09 if high else 0.0)
            await demo.clock.sleep(2.0)

    demo.notes["flapper"] = asyncio.create_task(flap())
    demo.timeline.add(demo.now(), "flapping: v3's error rate swings above and below 5% every 2s")


async def _silenced(demo: Demo) -> None:
    response = await demo.http.post(
        f"{demo.api_url}/api/v1/silences",
        content=strict_json.dumpb(
            {
                # Matchers that name what is loaded: a silence of everything needs an
                # explicit "all", and a matcher that meets nothing is refused.
                "matchers": ["target=~worker|frontend"],
                "duration": "1h",
                "created_by": "alice",
                "comment": "migrating the database by hand",
            }
        ),
        headers=strict_json.JSON_HEADERS,
    )
    response.raise_for_status()
    demo.timeline.add(
        demo.now(),
        "silence: alice silenced the Worker's and Pages' rollbacks for 1h "
        "(migrating the database by hand)",
    )
    demo.ship_bad_deploy(BAD_ERRORS)


def _resolved(demo: Demo) -> bool:
    return bool(demo.events("incident: resolved"))


def _judge_rollback(workers: int, pages: int) -> Callable[[Demo], tuple[bool, str]]:
    def judge(demo: Demo) -> tuple[bool, str]:
        rolled_workers = demo.worker_rollbacks()
        rolled_pages = demo.pages_rollbacks()
        verified = bool(demo.events("incident: verification"))
        ok = (rolled_workers, rolled_pages) == (workers, pages) and verified and _resolved(demo)
        return ok, (
            f"Worker rollbacks {rolled_workers} (expected {workers}), Pages rollbacks "
            f"{rolled_pages} (expected {pages}), verified {verified}, "
            f"resolved {_resolved(demo)}"
        )

    return judge


def _judge_no_rollback(reason: str) -> Callable[[Demo], tuple[bool, str]]:
    def judge(demo: Demo) -> tuple[bool, str]:
        rollbacks = demo.worker_rollbacks() + demo.pages_rollbacks()
        matched = any(reason in text for _, text in demo.timeline.entries)
        ok = rollbacks == 0 and matched
        return ok, f"rollbacks {rollbacks} (expected 0); saw '{reason}': {matched}"

    return judge


def _judge_never_fired(rule: str) -> Callable[[Demo], tuple[bool, str]]:
    def judge(demo: Demo) -> tuple[bool, str]:
        rollbacks = demo.worker_rollbacks() + demo.pages_rollbacks()
        fired = any(
            text.startswith(f"rule: {rule}") and text.endswith("firing")
            for _, text in demo.timeline.entries
        )
        pending = sum(
            1
            for _, text in demo.timeline.entries
            if text.startswith(f"rule: {rule}") and text.endswith("pending")
        )
        incidents = len(demo.events("incident: detected"))
        ok = rollbacks == 0 and not fired and incidents == 0 and pending > 0
        return ok, (
            f"rollbacks {rollbacks} (expected 0); {rule} went pending {pending} times "
            f"and fired {'yes' if fired else 'never'}; incidents {incidents}"
        )

    return judge


def _settled_after(kind: str, seconds: float) -> Callable[[Demo], bool]:
    def done(demo: Demo) -> bool:
        times = demo.events(kind)
        return bool(times) and demo.now() - demo.timeline.started - times[0] >= seconds

    return done


def _quiet_for(seconds: float) -> Callable[[Demo], bool]:
    def done(demo: Demo) -> bool:
        start = demo.timeline.first("flapping")
        return start is not None and demo.now() - demo.timeline.started - start >= seconds

    return done


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            "bad-deploy",
            "a deploy that makes 25% of requests fail",
            "the Worker and Pages rolled back once, caches purged, verified, all-clear",
            _bad_deploy,
            _resolved,
            _judge_rollback(1, 1),
        ),
        Scenario(
            "slow-p95",
            "a deploy that makes p95 latency 7.5s",
            "the Worker rolled back once (slow-p95 names only the Worker), verified",
            _slow_deploy,
            _resolved,
            _judge_rollback(1, 0),
        ),
        Scenario(
            "outage-without-deploy",
            "the database goes down; nothing was deployed",
            "no rollback (no recent deploy explains it); escalated to humans",
            _outage,
            _settled_after("incident: escalated", 5.0),
            _judge_no_rollback("no recent deploy explains the breach"),
        ),
        Scenario(
            "flapping",
            "the error rate swings around 5% every 2 seconds",
            "no rollback: the breach never holds for the rule's 10s",
            _flapping,
            _quiet_for(45.0),
            _judge_never_fired("error-rate"),
        ),
        Scenario(
            "silenced",
            "a bad deploy while someone works on production by hand",
            "no rollback; 'would have rolled back (silenced by alice ...)' recorded",
            _silenced,
            _settled_after("incident: would_rollback", 3.0),
            _judge_no_rollback("silenced by alice"),
        ),
    )
}


def _rules_text(app_url: str, receivers_url: str) -> str:
    text = RULES.read_text(encoding="utf-8")
    return text.replace("http://127.0.0.1:18180", app_url).replace(
        "http://127.0.0.1:18182", receivers_url
    )


def _seed(cf: FakeCloudflare, now: float) -> str:
    good = ""
    for name, age in (("v1", 2 * 86400), ("v2", 86400)):
        good = cf.upload_version("demo-api", f"{name}", created_on=now - age - 60)
        cf.deploy("demo-api", [(good, 100.0)], f"deploy {name}", created_on=now - age)
    cf.add_project("demo-site")
    for name, age in (("v1", 2 * 86400), ("v2", 86400)):
        cf.add_pages_deployment("demo-site", created_on=now - age, commit_message=name)
    return good


async def _traffic(demo: Demo, app_url: str, rps: float) -> None:
    while True:
        await drive(app_url, rps, 1.0, client=demo.http, clock=demo.clock)


async def _follow_worker(demo: Demo) -> None:
    """The app behaves as whatever Worker version serves: a rollback heals it."""
    serving_bad = False
    while True:
        live = demo.cf.live_versions("demo-api")
        now_bad = demo.follow_worker and bool(live) and live[0][0] == demo.bad_version
        if serving_bad and not now_bad:
            demo.app.deploy(GOOD.version, error_ratio=GOOD.error_ratio, latency=GOOD.latency)
            demo.timeline.add(demo.now(), "app: the Worker serves v2 again; the app recovers")
        serving_bad = now_bad
        await demo.clock.sleep(0.5)


def _observer(demo: Demo) -> Callable[[Observation], None]:
    def hook(observation: Observation) -> None:
        for moved in observation.transitions:
            demo.timeline.add(
                moved.at, f"rule: {moved.rule} {moved.before.value} → {moved.after.value}"
            )
            if moved.after.value == "blind":
                demo.record.went_blind.append((moved.at - demo.timeline.started, moved.rule))

    return hook


def _on_event(demo_ref: list[Demo]) -> Callable[[str, str, dict[str, Any]], None]:
    def on_event(incident: str, kind: str, data: dict[str, Any]) -> None:
        if not demo_ref or kind in ("phase", "joined", "rule_resolved"):
            return
        demo = demo_ref[0]
        detail = data.get("why") or data.get("target") or ""
        if kind == "action":
            mark = "would " if data.get("would") else ("✅ " if data.get("ok") else "❌ ")
            detail = f"{mark}{data['action']} {data['target']}: {data['detail']}"
            if not data.get("would") and not data.get("ok"):
                demo.record.failed_actions.append(
                    f"{data['action']} {data['target']}: {data['detail']}"
                )
        elif kind == "blind":
            why = str(data.get("why") or data.get("decision", {}).get("why") or incident)
            demo.record.blind_alarms.append((demo.clock.now() - demo.timeline.started, why))
        elif kind == "verification":
            detail = "; ".join(str(v) for v in data.get("results", {}).values())
        elif kind == "rollback_finished":
            detail = ", ".join(f"{t} {a[:8]} → {b[:8]}" for t, a, b in data["rolled_back"])
        elif kind == "detected":
            detail = str(data.get("decision", {}).get("why", ""))
        demo.timeline.add(demo.clock.now(), f"incident: {kind}" + (f": {detail}" if detail else ""))

    return on_event


async def run_demo(
    scenario_name: str,
    virtual_time: bool = False,
    rps: float = 20.0,
    warmup_s: float = 12.0,
    deadline_s: float = 110.0,
    record_to: Path | None = None,
) -> int:
    """Run one scenario; 0 when its expected outcome happened and the strict verdict
    found nothing wrong (see ``strict_problems``). ``record_to`` saves the ``RunRecord``."""
    with logs.tap_problems() as tap:
        demo, scenario, finished, work_summary = await _run(
            scenario_name, virtual_time, rps, warmup_s, deadline_s
        )
    demo.record.logged = list(tap.lines)
    if record_to is not None:
        await asyncio.to_thread(record_to.write_text, demo.record.to_json(), encoding="utf-8")
    return _summary(demo, scenario, finished, work_summary)


async def _run(
    scenario_name: str, virtual_time: bool, rps: float, warmup_s: float, deadline_s: float
) -> tuple[Demo, Scenario, bool, list[str]]:
    scenario = SCENARIOS[scenario_name]
    clock: Clock = AutoClock() if virtual_time else SystemClock()
    tasks: list[asyncio.Task[Any]] = []
    if isinstance(clock, AutoClock):
        tasks.append(asyncio.create_task(clock.run(), name="virtual-time"))
    app = FakeApp(state=GOOD, seed=7)
    cf = FakeCloudflare(token=TOKEN, account_id=ACCOUNT, clock=clock)
    good = _seed(cf, clock.now())
    receivers = Receivers(statuspage_api_key="demo-statuspage-key", now=clock.now)
    receivers.statuspage.add_component("api")
    timeline = Timeline(clock.now())
    view = LiveView(f"{scenario.name}: {scenario.description}", timeline)
    demo_ref: list[Demo] = []
    with tempfile.TemporaryDirectory(prefix="rollback-watchdog-demo-") as tmp:
        work = Path(tmp)
        async with (
            serve(app.router) as app_srv,
            serve(cf.router) as cf_srv,
            serve(receivers) as rx_srv,
            httpx.AsyncClient(timeout=5.0, transport=_transport(clock)) as http,
        ):
            rules = work / "demo.yaml"
            rules.write_text(_rules_text(app_srv.url, rx_srv.url), encoding="utf-8")
            settings = load_settings(
                {
                    "WATCHDOG_RULES": str(rules),
                    "WATCHDOG_STATE": str(work / "state.db"),
                    "WATCHDOG_CLOUDFLARE_API_URL": f"{cf_srv.url}/client/v4",
                    "CLOUDFLARE_API_TOKEN": TOKEN,
                    "CLOUDFLARE_ACCOUNT_ID": ACCOUNT,
                    "WATCHDOG_POSTMORTEM_DIR": str(work / "postmortems"),
                    "WATCHDOG_SECRETS_DIR": str(work / "no-secrets"),
                    "WATCHDOG_SECRETS__SLACK_WEBHOOK": Receivers.slack_webhook_url(rx_srv.url),
                    "WATCHDOG_SECRETS__PAGERDUTY_ROUTING_KEY": DEMO_ROUTING_KEY,
                    "WATCHDOG_SECRETS__STATUSPAGE_API_KEY": "demo-statuspage-key",
                    "WATCHDOG_SECRETS__APP_ADMIN_TOKEN": app.admin_token,
                }
            )
            runtime = await Runtime.build(settings, clock, http)
            runtime.manager.on_event = _on_event(demo_ref)
            api = build_app(
                runtime.watchdog,
                None,
                reload=runtime.reload,
                extra_status=runtime.status_extra,
                silences=runtime.silences,
                dry_run=settings.dry_run,
            )
            async with serve(api) as api_srv:
                demo = Demo(
                    clock,
                    app,
                    cf,
                    receivers,
                    runtime,
                    timeline,
                    api_srv.url,
                    http,
                    good_version=good,
                    record=RunRecord(scenario.name, virtual_time),
                )
                demo_ref.append(demo)
                runtime.watchdog.observers.append(_observer(demo))
                _intro(scenario, app_srv.url, cf_srv.url, api_srv.url, virtual_time)
                await runtime.start()
                tasks += [
                    asyncio.create_task(_traffic(demo, app_srv.url, rps)),
                    asyncio.create_task(_follow_worker(demo)),
                ]
                try:
                    outcome = await _play(demo, scenario, view, warmup_s, deadline_s)
                finally:
                    for task in [*tasks, *demo.notes.values()]:
                        task.cancel()
                    for task in [*tasks, *demo.notes.values()]:
                        with contextlib.suppress(asyncio.CancelledError):
                            await task
                    await runtime.stop(5.0)
                    demo.record.failures_counted = _failures_counted(runtime)
            return demo, scenario, outcome, _postmortem_lines(work)


def _failures_counted(runtime: Runtime) -> int:
    registry = runtime.watchdog.metrics.registry
    return int(
        sum(
            sample.value
            for metric in registry.collect()
            if metric.name == "watchdog_actions"
            for sample in metric.samples
            if sample.name == "watchdog_actions_total" and sample.labels.get("outcome") == "failure"
        )
    )


def _postmortem_lines(work: Path) -> list[str]:
    drafts = sorted((work / "postmortems").glob("*.md"))
    if not drafts:
        return []
    lines = drafts[0].read_text(encoding="utf-8").splitlines()[:16]
    return [f"post-mortem draft ({drafts[0].name}):", *(f"  | {line}" for line in lines)]


async def _play(
    demo: Demo, scenario: Scenario, view: LiveView, warmup_s: float, deadline_s: float
) -> bool:
    start = demo.timeline.started
    acted = False
    while demo.now() - start < deadline_s:
        if not acted and demo.now() - start >= warmup_s:
            demo.record.acted_at = demo.now() - start
            demo.record.blind_at_act = [
                rule
                for rule, state in demo.runtime.watchdog.engine.states.items()
                if state.state.value == "blind"
            ]
            await scenario.act(demo)
            acted = True
        view.frame(
            demo.now(),
            demo.runtime.watchdog,
            [f"{i.id} ({i.record.phase})" for i in demo.runtime.manager.open.values()],
        )
        if acted and scenario.done(demo):
            return True
        await demo.clock.sleep(1.0)
    return False


def _intro(scenario: Scenario, app: str, cf: str, api: str, virtual: bool) -> None:
    print(f"rollback-watchdog demo: {scenario.name}")
    print(f"  scenario: {scenario.description}")
    print(f"  expected: {scenario.expected}")
    print(
        f"  app {app}  ·  Cloudflare API {cf}/client/v4  ·  watchdog API {api}"
        + ("  ·  virtual time" if virtual else "")
    )
    print()


def _summary(demo: Demo, scenario: Scenario, finished: bool, postmortem: list[str]) -> int:
    ok, why = scenario.judge(demo)
    timeline = demo.timeline
    print()
    print("timeline:")
    for at, text in timeline.entries:
        print(f"  +{at:6.1f}s  {text}")
    marks = [
        ("bad deploy / outage", timeline.first("deploy") or timeline.first("outage")),
        ("rule firing", next((t for t, x in timeline.entries if "→ firing" in x), None)),
        ("rollback started", timeline.first("incident: rollback_started")),
        ("rollback finished", timeline.first("incident: rollback_finished")),
        ("verified", timeline.first("incident: verification")),
        ("all-clear", timeline.first("incident: resolved")),
    ]
    start = marks[0][1]
    print()
    print("timings (seconds after the bad deploy):")
    for label, mark in marks:
        if mark is not None and start is not None:
            print(f"  {label:22} +{mark - start:6.1f}s")
    if postmortem:
        print()
        print("\n".join(postmortem))
    slack = [str(m.get("text", "")) for m in demo.receivers.slack.messages]
    print()
    print(
        f"notifications: {len(slack)} Slack messages, "
        f"{len(demo.receivers.pagerduty.events)} PagerDuty events, "
        f"{len(demo.receivers.statuspage.incidents)} status page incident(s)"
    )
    if not finished:
        why += " (the scenario did not finish before its deadline)"
    problems = strict_problems(demo.record, scenario.may_blind)
    if problems:
        print()
        print(f"what went wrong besides the outcome ({len(problems)}):")
        for problem in problems[:20]:
            print(f"  - {problem}")
    passed = ok and finished and not problems
    if problems:
        why += f"; {len(problems)} problem(s) listed above"
    print()
    print(f"{'PASS' if passed else 'FAIL'}: {scenario.name}: {why}")
    return 0 if passed else 1
