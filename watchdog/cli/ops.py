"""Operator commands: ``targets``, ``rollback``, ``silence add|query|expire``, ``status``,
``postmortem``. Silences and status talk to a running watchdog's API (like amtool);
``targets``, ``rollback`` and ``postmortem`` work without one."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import httpx

from watchdog import strict_json
from watchdog.clock import SystemClock
from watchdog.errors import WatchdogError
from watchdog.settings import Settings, load_settings
from watchdog.termtext import printable
from watchdog.units import format_duration, iso, parse_duration

if TYPE_CHECKING:
    from watchdog.incidents.model import Incident
    from watchdog.run.runtime import Runtime


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    targets = commands.add_parser(
        "targets", help="what is live on each target and what a rollback would go to, and why"
    )
    targets.add_argument("--rules", help="rules file or directory (default WATCHDOG_RULES)")
    targets.set_defaults(func=cmd_targets)

    rollback = commands.add_parser(
        "rollback",
        help="the runbook's manual rollback, through the same code path as the automatic one",
    )
    rollback.add_argument("targets", nargs="+", metavar="TARGET")
    rollback.add_argument(
        "--reason",
        required=True,
        help="why (goes into the deployment annotation, notifications and the post-mortem)",
    )
    rollback.add_argument("--author", default=None, help="who (default: $USER)")
    rollback.add_argument("--dry-run", action="store_true", help="every GET, no mutating call")
    rollback.add_argument("--rules", help="rules file or directory (default WATCHDOG_RULES)")
    rollback.set_defaults(func=cmd_rollback)

    silence = commands.add_parser("silence", help="silence actions on a running watchdog")
    verbs = silence.add_subparsers(dest="verb", metavar="VERB", required=True)
    add = verbs.add_parser(
        "add",
        help="add a silence: MATCHER... like rule=error-rate "
        "target=~worker|frontend severity!=low (none: everything, with --all)",
    )
    add.add_argument("matchers", nargs="*", metavar="MATCHER")
    add.add_argument(
        "--all", action="store_true", help="no matcher on purpose: silence every action"
    )
    add.add_argument(
        "--force",
        action="store_true",
        help="keep a matcher that matches no loaded rule, target or severity",
    )
    add.add_argument("--duration", default="1h", help="how long (default 1h)")
    add.add_argument("--comment", required=True, help="why (required, as in amtool)")
    add.add_argument("--author", default=None, help="who (default: $USER)")
    add.set_defaults(func=cmd_silence_add)
    query = verbs.add_parser("query", help="list silences")
    query.add_argument("--expired", action="store_true", help="include expired ones")
    query.add_argument("-q", "--quiet", action="store_true", help="print ids only")
    query.add_argument("-o", "--output", choices=("simple", "json"), default="simple")
    query.set_defaults(func=cmd_silence_query)
    expire = verbs.add_parser("expire", help="expire silences by id")
    expire.add_argument("ids", nargs="+", metavar="ID")
    expire.set_defaults(func=cmd_silence_expire)
    for sub in (add, query, expire):
        _api_args(sub)

    status = commands.add_parser(
        "status",
        help="rules, values against thresholds, states, silences, open incidents, last decisions",
    )
    status.add_argument("-o", "--output", choices=("simple", "json"), default="simple")
    _api_args(status)
    status.set_defaults(func=cmd_status)

    postmortem = commands.add_parser(
        "postmortem", help="render an incident's post-mortem draft (Markdown) from the journal"
    )
    postmortem.add_argument("incident", help="incident id (a unique prefix is enough)")
    postmortem.add_argument("--out", help="write to this file instead of stdout")
    postmortem.set_defaults(func=cmd_postmortem)


def _api_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url", default=None, help="watchdog base URL (default from WATCHDOG_LISTEN)"
    )
    parser.add_argument("--token", default=None, help="bearer token (default WATCHDOG_API_TOKEN)")


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {}
    if getattr(args, "rules", None):
        overrides["rules"] = args.rules
    if getattr(args, "dry_run", False):
        overrides["dry_run"] = True
    return load_settings(None, **overrides)


# --- targets and rollback --------------------------------------------------------------


def cmd_targets(args: argparse.Namespace) -> int:
    return asyncio.run(_targets(_settings(args)))


async def _targets(settings: Settings) -> int:
    from watchdog.actions.ledger import Ledgers
    from watchdog.model import TargetState
    from watchdog.run.runtime import Runtime

    clock = SystemClock()
    async with httpx.AsyncClient(timeout=10.0) as http:
        runtime = await Runtime.build(settings, clock, http)
        try:
            ledgers = Ledgers(runtime.store, clock, lambda: runtime.playbook.targets)
            states = await ledgers.inspect(list(runtime.playbook.targets))
        finally:
            await runtime.store.close()
    failed = 0
    now = clock.now()
    for name, state in states.items():
        if not isinstance(state, TargetState):
            print(f"{name}: ERROR {state}")
            failed += 1
            continue
        print(f"{name} ({state.kind})")
        if state.live is not None:
            age = format_duration(max(0.0, now - state.live.created_at))
            print(
                f"  live:        {state.live.version}  deployed {iso(state.live.created_at)} "
                f"({age} ago)  {state.live.description}".rstrip()
            )
        else:
            print("  live:        unknown")
        if state.rollback_to is not None:
            print(
                f"  rollback to: {state.rollback_to.version}  "
                f"{state.rollback_to.description}".rstrip()
            )
        else:
            print("  rollback to: none")
        print(f"  why:         {state.why}")
        if state.ledger:
            print("  ledger:")
            for line in state.ledger[:LEDGER_LINES]:
                print(f"    {line.version}  {line.status:9}  {line.reason}")
            if len(state.ledger) > LEDGER_LINES:
                print(f"    ... and {len(state.ledger) - LEDGER_LINES} more")
    return 1 if failed else 0


LEDGER_LINES = 12  # per target in `targets`: the live version and the nearest candidates


def cmd_rollback(args: argparse.Namespace) -> int:
    author = args.author or os.environ.get("USER") or getpass.getuser()
    return asyncio.run(_rollback(_settings(args), args.targets, args.reason, author))


async def _rollback(settings: Settings, targets: list[str], reason: str, author: str) -> int:
    """The manual rollback through the incident manager, then the same verification and
    phases as an automatic one: this process samples the signals and ticks the
    incident until it is resolved (verified, then stable) or escalated."""
    from watchdog.incidents.model import Phase
    from watchdog.run.runtime import Runtime

    clock = SystemClock()
    async with httpx.AsyncClient(timeout=10.0) as http:
        runtime = await Runtime.build(settings, clock, http)
        try:
            unknown = [t for t in targets if t not in runtime.playbook.targets]
            if unknown:
                known = ", ".join(sorted(runtime.playbook.targets)) or "none"
                print(
                    f"error: unknown target(s) {', '.join(unknown)} (expected one of: {known})",
                    file=sys.stderr,
                )
                return 2
            manager = runtime.manager
            incident = await manager.manual_rollback(targets, reason, author)
            await manager.drain()
            shown = await _show_events(runtime, incident.id, 0)
            print(f"incident {incident.id}")
            if incident.phase is Phase.VERIFYING:
                return await _verify(runtime, incident, shown)
            dry = incident.phase is Phase.WATCHING and not incident.data.get("blocked")
            await manager.close(
                incident,
                "dry run: nothing was changed" if dry else "manual rollback did not go through",
            )
            return 0 if dry else 1
        finally:
            await runtime.store.close()


async def _verify(runtime: Runtime, incident: Incident, shown: int) -> int:
    from watchdog.incidents.model import Phase

    manager = runtime.manager
    print(
        f"verifying: sampling the signals until the incident is resolved or escalated "
        f"(stopping now leaves incident {incident.id} open in the store)"
    )
    runtime.watchdog.on_decision = None  # this process opens no incidents of its own
    await runtime.watchdog.start()
    try:
        while incident.phase not in (Phase.RESOLVED, Phase.ESCALATED):
            await runtime.clock.sleep(VERIFY_TICK_S)
            await manager.tick()
            await manager.drain()
            shown = await _show_events(runtime, incident.id, shown)
    finally:
        await runtime.watchdog.stop()
    if incident.phase is Phase.RESOLVED:
        print(f"✅ verified and stable: incident {incident.id} resolved")
        return 0
    print(f"❌ escalated: {incident.data.get('escalation_why', '')}")
    return 1


VERIFY_TICK_S = 1.0


async def _show_events(runtime: Runtime, incident_id: str, shown: int) -> int:
    """Print the incident's events after the first ``shown``; returns how many exist."""
    events = await runtime.store.events(incident_id)
    for event in events[shown:]:
        data = event.data
        if event.kind == "action":
            mark = "🟡" if data.get("would") else ("✅" if data.get("ok") else "❌")
            print(f"{mark} {data['action']} {data['target']}: {data['detail']}")
        elif event.kind == "silence_overridden":
            print(f"⚠️  {data.get('target')}: {data.get('why', '')}")
        elif event.kind == "verification":
            for check, text in data.get("results", {}).items():
                print(f"{'✅' if str(text).startswith('passed') else '❌'} verify {check}: {text}")
        elif event.kind in ("rollback_blocked", "escalated"):
            print(f"❌ {event.kind}: {data.get('why', '')}")
    return len(events)


# --- silences and status (through the API) ---------------------------------------------


def _client(args: argparse.Namespace) -> httpx.Client:
    token = args.token or os.environ.get("WATCHDOG_API_TOKEN")
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=args.url, headers=headers, timeout=10.0)


def _call(args: argparse.Namespace, method: str, path: str, body: Any = None) -> Any:
    try:
        with _client(args) as client:
            response = client.request(
                method, path, content=strict_json.dumpb(body), headers=strict_json.JSON_HEADERS
            )
    except httpx.HTTPError as exc:
        raise WatchdogError(
            f"cannot reach the watchdog at {args.url}: {type(exc).__name__}"
        ) from None
    try:
        data = response.json()
    except json.JSONDecodeError:
        data = {"error": response.text.strip()}
    if response.status_code >= 400:
        error = data.get("error", data) if isinstance(data, dict) else data
        raise WatchdogError(printable(f"HTTP {response.status_code}: {error}"))
    return data


def cmd_silence_add(args: argparse.Namespace) -> int:
    try:
        parse_duration(args.duration)
    except ValueError as exc:
        print(f"error: --duration: {exc}", file=sys.stderr)
        return 2
    if not args.matchers and not args.all:
        print(
            "error: no matchers: this would silence every action of every rule; give "
            "matchers (like rule=error-rate) or say so with --all",
            file=sys.stderr,
        )
        return 2
    author = args.author or os.environ.get("USER") or getpass.getuser()
    created = _call(
        args,
        "POST",
        "/api/v1/silences",
        {
            "matchers": args.matchers,
            "duration": args.duration,
            "created_by": author,
            "comment": args.comment,
            "all": args.all,
            "force": args.force,
        },
    )
    print(created["id"])
    return 0


def cmd_silence_query(args: argparse.Namespace) -> int:
    query = "?expired=true" if args.expired else ""
    silences = _call(args, "GET", f"/api/v1/silences{query}")["silences"]
    if args.output == "json":
        print(strict_json.dumps(silences, indent=2))
        return 0
    for s in silences:
        if args.quiet:
            _say(s["id"])
            continue
        matchers = " ".join(f"{m['name']}{m['op']}{m['value']}" for m in s["matchers"]) or "(all)"
        _say(
            f"{s['id']}  {s['state']:8} until {s['ends_at_iso']}  {matchers}  "
            f"by {s['created_by']}: {s['comment']}"
        )
    return 0


def _say(line: str) -> None:
    """Print one line of text that carries outside input, terminal escapes defused."""
    print(printable(line))


def cmd_silence_expire(args: argparse.Namespace) -> int:
    for silence_id in args.ids:
        _call(args, "DELETE", f"/api/v1/silences/{silence_id}")
        _say(f"expired {silence_id}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    status = _call(args, "GET", "/api/v1/status")
    if args.output == "json":
        print(strict_json.dumps(status, indent=2))
        return 0
    from watchdog.cli.status_view import header_lines

    for line in header_lines(status):
        _say(line)
    print()
    print(f"{'RULE':24} {'STATE':12} {'VALUE':>10}   {'THRESHOLD':12} {'FOR':6} SEVERITY")
    for rule in status["rules"]:
        op = ">" if rule["comparison"] == "above" else "<"
        _say(
            f"{rule['rule']:24} {rule['state']:12} {rule['value_text']:>10}   "
            f"{op} {rule['threshold_text']:10} {rule['for']:6} {rule['severity']}"
            + (f"  ({rule['blind_reason']})" if rule.get("blind_reason") else "")
            + (f"  ({rule['evidence_text']})" if rule.get("evidence_text") else "")
        )
    _section(
        "silences",
        status.get("silences", []),
        lambda s: (
            f"{s['id'][:8]} by {s['created_by']}: {s['comment']} "
            f"({' '.join(m['name'] + m['op'] + m['value'] for m in s['matchers']) or 'all'})"
        ),
    )
    _section(
        "open incidents",
        status.get("incidents", []),
        lambda i: (
            f"{i['id']}  {i['phase']}  {i['severity']}  targets: {', '.join(i['targets']) or '-'}"
        ),
    )
    _section(
        "last decisions",
        status.get("decisions", [])[-10:],
        lambda d: f"{d['decided_at_iso']}  {d['kind']:8} {d['rule']}: {d['why']}",
    )
    return 0


def _section(title: str, items: Sequence[dict[str, Any]], line: Any) -> None:
    print()
    print(f"{title}: {len(items) or 'none'}")
    for item in items:
        _say(f"  {line(item)}")


# --- post-mortem -----------------------------------------------------------------------


def cmd_postmortem(args: argparse.Namespace) -> int:
    settings = load_settings()
    return asyncio.run(_postmortem(settings, args.incident, args.out))


async def _postmortem(settings: Settings, incident_id: str, out: str | None) -> int:
    from watchdog.incidents.postmortem import render_incident
    from watchdog.store import open_store

    store = open_store(settings.state)
    await store.open()
    try:
        text = await render_incident(store, incident_id)
        if text is None:
            recent = await store.recent_incidents(5)
            hint = ", ".join(i.id for i in recent) or "none recorded"
            print(
                f"error: no single incident matches {incident_id!r} (recent: {hint})",
                file=sys.stderr,
            )
            return 1
    finally:
        await store.close()
    if out:
        await asyncio.to_thread(_write, out, text)
        print(f"wrote {out}")
    else:  # on a terminal: silence comments and reasons in it are outside text
        print("\n".join(printable(line) for line in text.split("\n")))
    return 0


def _write(path: str, text: str) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
