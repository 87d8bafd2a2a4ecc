"""``ramp start|hold|promote|abort|list``: the daemon's ramps through its control API
(the daemon moves the split, so a ramp outlives this command)."""

from __future__ import annotations

import argparse
import getpass
import os
from typing import Any

from watchdog.cli.output import add_output, emit, wants_json
from watchdog.cli.silences import _api_args, _call, _say
from watchdog.units import format_duration


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    ramp = commands.add_parser(
        "ramp", help="move a new Worker version through a gradual deployment, step by step"
    )
    verbs = ramp.add_subparsers(dest="verb", metavar="VERB", required=True)
    start = verbs.add_parser(
        "start", help="start a ramp: the daemon moves the split while the canary rules pass"
    )
    start.add_argument("--version", required=True, help="the Worker version id to ramp up")
    start.add_argument(
        "--steps",
        default="10%,50%,100%",
        help="percentages ending at 100%% (default 10%%,50%%,100%%)",
    )
    start.add_argument("--soak", default="10m", help="how long each step holds (default 10m)")
    start.add_argument("--target", default=None, help="the Worker target (default: the only one)")
    start.set_defaults(func=cmd_start)
    subs = [start]
    for verb, text in (
        ("hold", "stop moving the split (the soak's count stops too)"),
        ("promote", "the next step now, the rest of the soak skipped (resumes a held ramp)"),
        ("abort", "back to 100%% of the old version now; the ramp ends"),
    ):
        sub = verbs.add_parser(verb, help=text)
        sub.add_argument("ramp_id", metavar="RAMP", help="a ramp id (or a unique prefix)")
        sub.set_defaults(func=cmd_verb)
        subs.append(sub)
    listing = verbs.add_parser("list", help="every ramp, active and ended")
    listing.set_defaults(func=cmd_list)
    for sub in (*subs, listing):
        sub.add_argument("--author", default=None, help="who (default: $USER)")
        _api_args(sub)
        add_output(sub)


def _author(args: argparse.Namespace) -> str:
    return str(args.author or os.environ.get("USER") or getpass.getuser())


def cmd_start(args: argparse.Namespace) -> int:
    body = {
        "target": args.target,
        "version": args.version,
        "steps": args.steps,
        "soak": args.soak,
        "created_by": _author(args),
    }
    return _show(_call(args, "POST", "/api/v1/ramps", body), args)


def cmd_verb(args: argparse.Namespace) -> int:
    path = f"/api/v1/ramps/{args.ramp_id}/{args.verb}"
    return _show(_call(args, "POST", path, {"by": _author(args)}), args)


def cmd_list(args: argparse.Namespace) -> int:
    ramps = _call(args, "GET", "/api/v1/ramps")["ramps"]
    if wants_json(args):
        emit({"ramps": ramps})
        return 0
    for ramp in ramps:
        _say(ramp_line(ramp))
    return 0


def _show(ramp: dict[str, Any], args: argparse.Namespace) -> int:
    if wants_json(args):
        emit(ramp)
    else:
        _say(ramp_line(ramp))
    return 0


def ramp_line(ramp: dict[str, Any]) -> str:
    """One ramp as a person reads it: id, phase, where it stands, why."""
    steps = ",".join(f"{s:g}%" for s in ramp["steps"])
    at = f"at {ramp['percentage']:g}%" if ramp["step"] >= 0 else "not moved yet"
    soak = format_duration(ramp["soak_s"])
    soaked = f", soaked {format_duration(ramp['soaked'])}" if ramp.get("soaked") is not None else ""
    return (
        f"ramp {ramp['id']} {ramp['phase']}: {ramp['target']} {ramp['old']} -> {ramp['new']} "
        f"{at} (steps {steps}, soak {soak}{soaked}): {ramp['why']}"
    )
