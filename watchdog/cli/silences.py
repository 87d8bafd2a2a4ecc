"""The verbs that talk to a running watchdog's control API: ``silence add|query|expire``
and ``status`` (``--watch``: redrawn every N seconds, ``cli/watch.py``)."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from watchdog import strict_json
from watchdog.cli.output import add_output, emit, wants_json
from watchdog.errors import WatchdogError
from watchdog.termtext import printable
from watchdog.units import parse_duration

if TYPE_CHECKING:
    import httpx


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
    query.set_defaults(func=cmd_silence_query)
    expire = verbs.add_parser("expire", help="expire silences by id")
    expire.add_argument("ids", nargs="+", metavar="ID")
    expire.set_defaults(func=cmd_silence_expire)
    for sub in (add, query, expire):
        _api_args(sub)
        add_output(sub, aliases=("simple",))

    status = commands.add_parser(
        "status",
        help="rules, values against thresholds, states, silences, open incidents, last decisions",
    )
    add_output(status, aliases=("simple",))
    status.add_argument(
        "-w", "--watch", action="store_true", help="redraw every --interval seconds until Ctrl-C"
    )
    status.add_argument(
        "-n",
        "--interval",
        type=_interval,
        default=2.0,
        metavar="SECONDS",
        help="seconds between refreshes with --watch (default 2)",
    )
    status.add_argument(
        "--count", type=int, default=None, metavar="N", help="with --watch: stop after N refreshes"
    )
    _api_args(status)
    status.set_defaults(func=cmd_status)


def _interval(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, like 2 or 0.5, got {text!r}") from None
    if not 0.1 <= seconds <= 86400:
        raise argparse.ArgumentTypeError(f"must be between 0.1 and 86400 seconds, got {text}")
    return seconds


def _api_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url", default=None, help="watchdog base URL (default from WATCHDOG_LISTEN)"
    )
    parser.add_argument("--token", default=None, help="bearer token (default WATCHDOG_API_TOKEN)")


# --- silences and status (through the API) ---------------------------------------------


def _client(args: argparse.Namespace) -> httpx.Client:
    import httpx  # here: the other commands (the backtest) start without it

    token = args.token or os.environ.get("WATCHDOG_API_TOKEN")
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=args.url, headers=headers, timeout=10.0)


def _call(args: argparse.Namespace, method: str, path: str, body: Any = None) -> Any:
    import httpx

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
    if wants_json(args):
        emit({"id": created["id"]})
    else:
        print(created["id"])
    return 0


def cmd_silence_query(args: argparse.Namespace) -> int:
    query = "?expired=true" if args.expired else ""
    silences = _call(args, "GET", f"/api/v1/silences{query}")["silences"]
    if wants_json(args):
        emit({"silences": silences})
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
        if not wants_json(args):
            _say(f"expired {silence_id}")
    if wants_json(args):
        emit({"expired": args.ids})
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    if args.watch:
        if wants_json(args):
            print("error: --watch redraws text; for JSON run status -o json", file=sys.stderr)
            return 2
        from watchdog.cli.watch import watch

        return watch(
            lambda: status_text(_call(args, "GET", "/api/v1/status")),
            title=f"rollback-watchdog status --url {args.url}",
            interval=args.interval,
            out=sys.stdout,
            count=args.count,
        )
    status = _call(args, "GET", "/api/v1/status")
    if wants_json(args):
        emit(status)
        return 0
    for line in status_text(status):
        print(line)
    return 0


def status_text(status: dict[str, Any]) -> list[str]:
    """``status`` as a person reads it; outside text with its escapes defused."""
    from watchdog.cli.status_view import header_lines

    lines = [printable(line) for line in header_lines(status)]
    lines += ["", f"{'RULE':24} {'STATE':12} {'VALUE':>10}   {'THRESHOLD':12} {'FOR':6} SEVERITY"]
    for rule in status["rules"]:
        op = ">" if rule["comparison"] == "above" else "<"
        lines.append(
            printable(
                f"{rule['rule']:24} {rule['state']:12} {rule['value_text']:>10}   "
                f"{op} {rule['threshold_text']:10} {rule['for']:6} {rule['severity']}"
                + (f"  ({rule['blind_reason']})" if rule.get("blind_reason") else "")
                + (f"  ({rule['evidence_text']})" if rule.get("evidence_text") else "")
            )
        )
    lines += _section(
        "silences",
        status.get("silences", []),
        lambda s: (
            f"{s['id'][:8]} by {s['created_by']}: {s['comment']} "
            f"({' '.join(m['name'] + m['op'] + m['value'] for m in s['matchers']) or 'all'})"
        ),
    )
    lines += _section(
        "open incidents",
        status.get("incidents", []),
        lambda i: (
            f"{i['id']}  {i['phase']}  {i['severity']}  targets: {', '.join(i['targets']) or '-'}"
        ),
    )
    lines += _section(
        "last decisions",
        status.get("decisions", [])[-10:],
        lambda d: f"{d['decided_at_iso']}  {d['kind']:8} {d['rule']}: {d['why']}",
    )
    return lines


def _section(
    title: str, items: Sequence[dict[str, Any]], line: Callable[[dict[str, Any]], str]
) -> list[str]:
    return ["", f"{title}: {len(items) or 'none'}", *(printable(f"  {line(i)}") for i in items)]
