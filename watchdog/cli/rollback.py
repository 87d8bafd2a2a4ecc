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
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from watchdog.cli.args import settings_from_args as _settings
from watchdog.cli.output import add_output, emit, wants_json
from watchdog.clock import SystemClock
from watchdog.termtext import printable
from watchdog.units import format_duration, iso

if TYPE_CHECKING:
    from watchdog.incidents.model import Incident
    from watchdog.model import Deploy, TargetState
    from watchdog.run.runtime import Runtime
    from watchdog.settings import Settings


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    targets = commands.add_parser(
        "targets", help="what is live on each target and what a rollback would go to, and why"
    )
    targets.add_argument("--rules", help="rules file or directory (default WATCHDOG_RULES)")
    add_output(targets)
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
    add_output(rollback)
    rollback.set_defaults(func=cmd_rollback)


def _say(line: str) -> None:
    """Print one line of text that carries outside input, terminal escapes defused."""
    print(printable(line))


def cmd_targets(args: argparse.Namespace) -> int:
    return asyncio.run(_targets(_settings(args), wants_json(args)))


async def _targets(settings: Settings, as_json: bool) -> int:
    import httpx  # here: the other commands (the backtest) start without it

    from watchdog.actions.ledger import Ledgers
    from watchdog.run.runtime import Runtime

    clock = SystemClock()
    async with httpx.AsyncClient(timeout=10.0) as http:
        runtime = await Runtime.build(settings, clock, http)
        try:
            ledgers = Ledgers(runtime.store, clock, lambda: runtime.playbook.targets)
            states = await ledgers.inspect(list(runtime.playbook.targets))
        finally:
            await runtime.store.close()
    if as_json:
        shown = [_target_json(name, state) for name, state in states.items()]
        failed = sum(1 for target in shown if target["error"] is not None)
        emit({"ok": not failed, "targets": shown})
        return 1 if failed else 0
    return _targets_text(states, clock.now())


def _targets_text(states: Mapping[str, TargetState | Exception], now: float) -> int:
    from watchdog.model import TargetState

    failed = 0
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


def _target_json(name: str, state: TargetState | Exception) -> dict[str, Any]:
    """One target for ``targets -o json``: the same keys whether or not it answered."""
    from watchdog.model import TargetState

    if not isinstance(state, TargetState):
        return {
            "target": name,
            "kind": None,
            "live": None,
            "rollback_to": None,
            "why": None,
            "ledger": [],
            "error": printable(str(state)),
        }
    return {
        "target": name,
        "kind": state.kind,
        "live": _deploy_json(state.live),
        "rollback_to": _deploy_json(state.rollback_to),
        "why": state.why,
        "ledger": [
            {"version": line.version, "status": line.status, "reason": line.reason}
            for line in state.ledger
        ],
        "error": None,
    }


def _deploy_json(deploy: Deploy | None) -> dict[str, Any] | None:
    if deploy is None:
        return None
    return {
        "id": deploy.id,
        "version": deploy.version,
        "created_at": iso(deploy.created_at),
        "description": deploy.description,
        "author": deploy.author,
    }


LEDGER_LINES = 12  # per target in `targets`: the live version and the nearest candidates


@dataclass
class Progress:
    """What ``rollback`` tells as it goes: printed line by line, or with ``-o json``
    kept for the one document at the end."""

    as_json: bool
    incident: str | None = None
    outcome: str = "not started"  # resolved, escalated, dry run, not done, refused
    steps: list[dict[str, str]] = field(default_factory=list)

    def say(self, line: str, kind: str = "note") -> None:
        if self.as_json:
            self.steps.append({"kind": kind, "text": printable(line)})
        else:
            _say(line)


def cmd_rollback(args: argparse.Namespace) -> int:
    author = args.author or os.environ.get("USER") or getpass.getuser()
    progress = Progress(wants_json(args))
    code = asyncio.run(_rollback(_settings(args), args.targets, args.reason, author, progress))
    if progress.as_json:
        emit(
            {
                "ok": code == 0,
                "incident": progress.incident,
                "outcome": progress.outcome,
                "steps": progress.steps,
            }
        )
    return code


async def _rollback(
    settings: Settings, targets: list[str], reason: str, author: str, progress: Progress
) -> int:
    """The manual rollback through the incident manager, then the same verification and
    phases as an automatic one: this process samples the signals and ticks the
    incident until it is resolved (verified, then stable) or escalated."""
    import httpx

    from watchdog.incidents.model import Phase
    from watchdog.run.runtime import Runtime

    clock = SystemClock()
    async with httpx.AsyncClient(timeout=10.0) as http:
        runtime = await Runtime.build(settings, clock, http)
        try:
            unknown = [t for t in targets if t not in runtime.playbook.targets]
            if unknown:
                known = ", ".join(sorted(runtime.playbook.targets)) or "none"
                message = f"unknown target(s) {', '.join(unknown)} (expected one of: {known})"
                progress.outcome = "refused"
                progress.say(f"error: {message}", "error")
                print(printable(f"error: {message}"), file=sys.stderr)
                return 2
            manager = runtime.manager
            incident = await manager.manual_rollback(targets, reason, author)
            await manager.drain()
            progress.incident = incident.id
            shown = await _show_events(runtime, incident.id, 0, progress)
            progress.say(f"incident {incident.id}", "incident")
            if incident.phase is Phase.VERIFYING:
                return await _verify(runtime, incident, shown, progress)
            dry = incident.phase is Phase.WATCHING and incident.state.blocked is None
            progress.outcome = "dry run" if dry else "not done"
            await manager.close(
                incident,
                "dry run: nothing was changed" if dry else "manual rollback did not go through",
            )
            return 0 if dry else 1
        finally:
            await runtime.store.close()


async def _verify(runtime: Runtime, incident: Incident, shown: int, progress: Progress) -> int:
    from watchdog.incidents.model import Phase

    manager = runtime.manager
    progress.say(
        f"verifying: sampling the signals until the incident is resolved or escalated "
        f"(stopping now leaves incident {incident.id} open in the store)",
        "verifying",
    )
    runtime.watchdog.on_decision = None  # this process opens no incidents of its own
    await runtime.watchdog.start()
    try:
        while incident.phase not in (Phase.RESOLVED, Phase.ESCALATED):
            await runtime.clock.sleep(VERIFY_TICK_S)
            await manager.tick()
            await manager.drain()
            shown = await _show_events(runtime, incident.id, shown, progress)
    finally:
        await runtime.watchdog.stop()
    if incident.phase is Phase.RESOLVED:
        progress.outcome = "resolved"
        progress.say(f"✅ verified and stable: incident {incident.id} resolved", "resolved")
        return 0
    progress.outcome = "escalated"
    progress.say(f"❌ escalated: {incident.state.escalation_why}", "escalated")
    return 1


VERIFY_TICK_S = 1.0


async def _show_events(runtime: Runtime, incident_id: str, shown: int, progress: Progress) -> int:
    """Tell the incident's events after the first ``shown``; returns how many exist."""
    _say = progress.say
    events = await runtime.store.events(incident_id)
    for event in events[shown:]:
        data = event.data
        if event.kind == "action":
            mark = "🟡" if data.get("would") else ("✅" if data.get("ok") else "❌")
            _say(f"{mark} {data['action']} {data['target']}: {data['detail']}", "action")
        elif event.kind == "silence_overridden":
            _say(f"⚠️  {data.get('target')}: {data.get('why', '')}", event.kind)
        elif event.kind == "verification":
            for check, text in data.get("results", {}).items():
                mark = "✅" if str(text).startswith("passed") else "❌"
                _say(f"{mark} verify {check}: {text}", "verification")
        elif event.kind in ("rollback_blocked", "escalated"):
            _say(f"❌ {event.kind}: {data.get('why', '')}", event.kind)
    return len(events)
