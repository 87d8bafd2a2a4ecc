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
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from watchdog import logs
from watchdog.api import console
from watchdog.api.app import build_app
from watchdog.clock import AutoClock, Clock, SystemClock
from watchdog.core.engine import Observation
from watchdog.demo.fakes.app import FakeApp, drive
from watchdog.demo.fakes.cloudflare import FakeCloudflare
from watchdog.demo.fakes.cloudflare_telemetry import Row
from watchdog.demo.fakes.receivers import Receivers

# Re-exported: the tests and the demo's callers read these from here.
from watchdog.demo.record import RunRecord, strict_problems
from watchdog.demo.scenarios import (
    ACCOUNT,
    DEMO_ROUTING_KEY,
    GOOD,
    SCENARIOS,
    TOKEN,
    Demo,
    Scenario,
)
from watchdog.demo.transport import busy_transport
from watchdog.demo.view import LiveView, Timeline
from watchdog.http.server import Router, serve
from watchdog.run.runtime import Runtime
from watchdog.settings import Settings, load_settings

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
    # Workers Logs is on, as the canary's telemetry source needs: v2 served an hour ago,
    # so the keys endpoint knows the version key (with no events it knows none).
    cf.telemetry.record(Row(now - 3600, "demo-api", good, "ok", 20.0))
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
            httpx.AsyncClient(timeout=5.0, transport=busy_transport(clock)) as http,
        ):
            rules = work / "demo.yaml"
            rules.write_text(_rules_text(app_srv.url, rx_srv.url), encoding="utf-8")
            settings = _demo_settings(work, rules, cf_srv.url, rx_srv.url, app.admin_token)
            runtime = await Runtime.build(settings, clock, http)
            runtime.manager.on_event = _on_event(demo_ref)
            api = _control_api(runtime, settings)
            page = console.install(api, runtime, "127.0.0.1")
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
                    view.stop()  # the live display ends before anything else prints
                    await page.close()
                    await _stop([*tasks, *demo.notes.values()], runtime)
                    demo.record.failures_counted = _failures_counted(runtime)
            return demo, scenario, outcome, _postmortem_lines(work)


def _demo_settings(work: Path, rules: Path, cf_url: str, rx_url: str, admin_token: str) -> Settings:
    """The watchdog's settings for the loopback stand-ins, state and drafts in ``work``."""
    return load_settings(
        {
            "WATCHDOG_RULES": str(rules),
            "WATCHDOG_STATE": str(work / "state.db"),
            "WATCHDOG_CLOUDFLARE_API_URL": f"{cf_url}/client/v4",
            "CLOUDFLARE_API_TOKEN": TOKEN,
            "CLOUDFLARE_ACCOUNT_ID": ACCOUNT,
            "WATCHDOG_POSTMORTEM_DIR": str(work / "postmortems"),
            "WATCHDOG_SECRETS_DIR": str(work / "no-secrets"),
            "WATCHDOG_SECRETS__SLACK_WEBHOOK": Receivers.slack_webhook_url(rx_url),
            "WATCHDOG_SECRETS__PAGERDUTY_ROUTING_KEY": DEMO_ROUTING_KEY,
            "WATCHDOG_SECRETS__STATUSPAGE_API_KEY": "demo-statuspage-key",
            "WATCHDOG_SECRETS__APP_ADMIN_TOKEN": admin_token,
            # A short story: ramps and splits are read every few seconds, not 5-30 s.
            "WATCHDOG_RAMP_TICK": "1",
            "WATCHDOG_DEPLOY_POLL": "5",
            "WATCHDOG_SPLIT_POLL": "2",
        }
    )


def _control_api(runtime: Runtime, settings: Settings) -> Router:
    """The watchdog's HTTP face, as ``run`` serves it (without a token: loopback)."""
    return build_app(
        runtime.watchdog,
        None,
        reload=runtime.reload,
        extra_status=runtime.status_extra,
        silences=runtime.silences,
        ramps=runtime.ramps,
        dry_run=settings.dry_run,
    )


async def _stop(running: list[Any], runtime: Runtime) -> None:
    """Cancel the tasks among ``running`` (a scenario's notes also hold plain values)."""
    tasks = [task for task in running if isinstance(task, asyncio.Task)]
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task
    await runtime.stop(5.0)


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
            ready, why = demo.runtime.watchdog.ready(demo.now())
            demo.record.not_ready_at_act = None if ready else why
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
    print(f"  console {api}/ (open it in a browser while the demo runs)")
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
