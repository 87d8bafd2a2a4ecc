"""The ``targets`` and ``rollback`` verbs: what each target would roll back to (the
version ledger's reasons), and a person's rollback through the incident manager, then
the same verification and phases as an automatic one. Both work without a running
watchdog (on its settings and state file). Outside text (deploy messages, Cloudflare
errors, reasons) is printed through ``termtext.printable``."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
from typing import TYPE_CHECKING

import httpx

from watchdog.cli.args import settings_from_args as _settings
from watchdog.clock import SystemClock
from watchdog.settings import Settings
from watchdog.termtext import printable
from watchdog.units import format_duration, iso

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


def _say(line: str) -> None:
    """Print one line of text that carries outside input, terminal escapes defused."""
    print(printable(line))


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
            _say(f"{name}: ERROR {state}")
            failed += 1
            continue
        _say(f"{name} ({state.kind})")
        if state.live is not None:
            age = format_duration(max(0.0, now - state.live.created_at))
            _say(
                f"  live:        {state.live.version}  deployed {iso(state.live.created_at)} "
                f"({age} ago)  {state.live.description}".rstrip()
            )
        else:
            _say("  live:        unknown")
        if state.rollback_to is not None:
            _say(
                f"  rollback to: {state.rollback_to.version}  "
                f"{state.rollback_to.description}".rstrip()
            )
        else:
            _say("  rollback to: none")
        _say(f"  why:         {state.why}")
        if state.ledger:
            _say("  ledger:")
            for line in state.ledger[:LEDGER_LINES]:
                _say(f"    {line.version}  {line.status:9}  {line.reason}")
            if len(state.ledger) > LEDGER_LINES:
                _say(f"    ... and {len(state.ledger) - LEDGER_LINES} more")
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
                    printable(
                        f"error: unknown target(s) {', '.join(unknown)} (expected one of: {known})"
                    ),
                    file=sys.stderr,
                )
                return 2
            manager = runtime.manager
            incident = await manager.manual_rollback(targets, reason, author)
            await manager.drain()
            shown = await _show_events(runtime, incident.id, 0)
            _say(f"incident {incident.id}")
            if incident.phase is Phase.VERIFYING:
                return await _verify(runtime, incident, shown)
            dry = incident.phase is Phase.WATCHING and incident.state.blocked is None
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
    _say(
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
        _say(f"✅ verified and stable: incident {incident.id} resolved")
        return 0
    _say(f"❌ escalated: {incident.state.escalation_why}")
    return 1


VERIFY_TICK_S = 1.0


async def _show_events(runtime: Runtime, incident_id: str, shown: int) -> int:
    """Print the incident's events after the first ``shown``; returns how many exist."""
    events = await runtime.store.events(incident_id)
    for event in events[shown:]:
        data = event.data
        if event.kind == "action":
            mark = "🟡" if data.get("would") else ("✅" if data.get("ok") else "❌")
            _say(f"{mark} {data['action']} {data['target']}: {data['detail']}")
        elif event.kind == "silence_overridden":
            _say(f"⚠️  {data.get('target')}: {data.get('why', '')}")
        elif event.kind == "verification":
            for check, text in data.get("results", {}).items():
                _say(f"{'✅' if str(text).startswith('passed') else '❌'} verify {check}: {text}")
        elif event.kind in ("rollback_blocked", "escalated"):
            _say(f"❌ {event.kind}: {data.get('why', '')}")
    return len(events)
