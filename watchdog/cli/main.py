"""The ``rollback-watchdog`` command line, in the promtool/amtool style.

Exit codes: 0 ok, 1 failure (bad rules, failed action, unhealthy), 2 usage.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeAlias

from watchdog import __version__, strict_json
from watchdog.cli import completion, ops, ramps, rollback, silences, tune
from watchdog.cli.args import overrides, settings_from_args
from watchdog.cli.output import add_output, emit, error_document, wants_json
from watchdog.errors import ConfigError, RuleError, WatchdogError
from watchdog.termtext import printable

Command = Callable[[argparse.Namespace], int]


def cmd_run(args: argparse.Namespace) -> int:
    from watchdog import logs
    from watchdog.service import run_service

    settings = settings_from_args(args)
    logs.configure(settings.log_format, settings.log_level)
    return asyncio.run(run_service(settings))


def cmd_check_rules(args: argparse.Namespace) -> int:
    from watchdog.rules.load import check_files
    from watchdog.settings import load_settings

    paths = args.paths or load_settings().rules_paths
    summaries, problems = check_files(paths)
    if wants_json(args):
        emit({"ok": not problems, "files": summaries, "problems": problems})
        return 1 if problems else 0
    for line in summaries:
        print(line)
    if problems:
        print(f"FAILED: {len(problems)} problem(s)", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    return 0


def cmd_check_config(args: argparse.Namespace) -> int:
    """The preflight: the settings (secrets by name only, URLs without passwords), then
    every problem at once; exit 1 on any."""
    from watchdog.redact import redact_urls
    from watchdog.run.preflight import preflight

    report = preflight(None, **overrides(args))
    shown: dict[str, object] | None = None
    if report.settings is not None:
        shown = report.settings.model_dump(mode="json", exclude={"secrets"})
        shown["secrets"] = sorted(report.settings.secrets)
        shown = {k: redact_urls(v) if isinstance(v, str) else v for k, v in shown.items()}
    rules = len(report.ruleset.rules) if report.ruleset is not None else 0
    if wants_json(args):
        problems = [redact_urls(problem) for problem in report.problems]
        emit({"ok": not problems, "settings": shown, "rules": rules, "problems": problems})
        return 1 if problems else 0
    if shown is not None:
        print(strict_json.dumps(shown, indent=2, default=str))
    if report.problems:
        print(f"FAILED: {len(report.problems)} problem(s)", file=sys.stderr)
        for problem in report.problems:
            print(f"  {redact_urls(problem)}", file=sys.stderr)
        return 1
    print(f"config OK: {rules} rule(s), every secret they need is set")
    return 0


def cmd_check_healthy(args: argparse.Namespace) -> int:
    import httpx  # here: the backtest and the other commands start without it

    url = f"{args.url.rstrip('/')}/{args.endpoint}"
    try:
        response = httpx.get(url, timeout=args.timeout)
    except httpx.HTTPError as exc:
        if wants_json(args):
            emit(
                {"ok": False, "url": url, "status": None, "body": None, "error": type(exc).__name__}
            )
        else:
            print(f"unhealthy: {type(exc).__name__}", file=sys.stderr)
        return 1
    ok = response.status_code == 200
    if wants_json(args):
        body = printable(response.text.strip())
        emit({"ok": ok, "url": url, "status": response.status_code, "body": body, "error": None})
    else:
        print(f"{response.status_code} {response.text.strip()}")
    return 0 if ok else 1


def _default_url() -> str:
    from watchdog.settings import load_settings

    try:
        listen = load_settings().listen
    except ConfigError:
        listen = "127.0.0.1:9464"
    host, _, port = listen.rpartition(":")
    if host in ("0.0.0.0", "", "[::]", "::"):
        host = "127.0.0.1"
    return f"http://{host}:{port}"


def cmd_demo(args: argparse.Namespace) -> int:
    from watchdog import logs
    from watchdog.demo.main import run_demo

    # The demo speaks through its live view; the daemon's own logs only when they matter.
    logs.configure("console", os.environ.get("WATCHDOG_LOG_LEVEL", "error"), cache=False)
    record = Path(args.record) if args.record else None
    if not wants_json(args):
        return asyncio.run(
            run_demo(args.scenario, virtual_time=args.virtual_time, record_to=record)
        )
    # One document on stdout: the live view and the verdict go to stderr, the record
    # (what the strict verdict judged) into the document.
    with tempfile.TemporaryDirectory(prefix="rollback-watchdog-demo-json-") as tmp:
        saved = record or Path(tmp) / "record.json"
        with contextlib.redirect_stdout(sys.stderr):
            code = asyncio.run(
                run_demo(args.scenario, virtual_time=args.virtual_time, record_to=saved)
            )
        # No record when the run stopped before its end: the document says null.
        recorded = json.loads(saved.read_text(encoding="utf-8")) if saved.exists() else None
    emit({"ok": code == 0, "scenario": args.scenario, "exit_code": code, "record": recorded})
    return code


def cmd_version(args: argparse.Namespace) -> int:
    python = platform.python_version()
    if wants_json(args):
        emit({"version": __version__, "python": python})
    else:
        print(f"rollback-watchdog {__version__} (Python {python})")
    return 0


Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def _register_run(commands: Commands) -> None:
    run = commands.add_parser("run", help="run the watchdog daemon")
    run.add_argument("--rules", help="rules file or directory (default WATCHDOG_RULES)")
    run.add_argument("--dry-run", action="store_true", help="never make a mutating call")
    run.add_argument("--silenced", action="store_true", help="start with all actions silenced")
    run.add_argument("--listen", help="host:port of the HTTP server (default WATCHDOG_LISTEN)")
    run.set_defaults(func=cmd_run)


def _register_check(commands: Commands) -> None:
    check = commands.add_parser("check", help="validate rules, config, or a running watchdog")
    check_what = check.add_subparsers(dest="what", metavar="WHAT", required=True)
    check_rules = check_what.add_parser("rules", help="validate rules files")
    check_rules.add_argument(
        "paths", nargs="*", help="files or directories (default WATCHDOG_RULES)"
    )
    check_rules.set_defaults(func=cmd_check_rules)
    add_output(check_rules)
    check_config = check_what.add_parser(
        "config", help="the preflight: settings, every missing secret and rules problem"
    )
    check_config.set_defaults(func=cmd_check_config)
    add_output(check_config)
    for name, endpoint in (("healthy", "healthz"), ("ready", "readyz")):
        sub = check_what.add_parser(name, help=f"GET /{endpoint} of a running watchdog")
        sub.add_argument(
            "--url", default=None, help="watchdog base URL (default from WATCHDOG_LISTEN)"
        )
        sub.add_argument("--timeout", type=float, default=3.0)
        add_output(sub)
        sub.set_defaults(func=cmd_check_healthy, endpoint=endpoint)


def _register_demo(commands: Commands) -> None:
    demo = commands.add_parser(
        "demo",
        help="the whole story on loopback: a bad deploy, "
        "detected, rolled back, verified (nothing to set up)",
    )
    demo.add_argument(
        "--scenario",
        default="bad-deploy",
        choices=(
            "bad-deploy",
            "slow-p95",
            "outage-without-deploy",
            "flapping",
            "silenced",
            "canary",
            "ramp",
        ),
    )
    demo.add_argument(
        "--virtual-time",
        action="store_true",
        help="run on a self-driving virtual clock (minutes in seconds)",
    )
    demo.add_argument(
        "--record",
        metavar="FILE",
        help="write what the strict verdict judged (failed actions, logged errors, "
        "blindness) to FILE as JSON",
    )
    add_output(demo)
    demo.set_defaults(func=cmd_demo)


def _register_version(commands: Commands) -> None:
    version = commands.add_parser("version", help="the version of rollback-watchdog and Python")
    add_output(version)
    version.set_defaults(func=cmd_version)


# Each adds its verbs to the parser (``register(commands)``), in the order ``--help`` lists
# them, so this file stays the dispatcher.
REGISTER: tuple[Callable[[Commands], None], ...] = (
    _register_run,
    _register_check,
    _register_demo,
    rollback.register,
    ops.register,
    silences.register,
    ramps.register,
    tune.register,
    _register_version,
    completion.register,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rollback-watchdog",
        description="Watches error rate, p95 latency and health; rolls back a bad "
        "Cloudflare deploy, verifies, escalates.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for register in REGISTER:
        register(commands)
    parser.set_defaults(root_parser=parser)  # for `completion`, which walks it
    return parser


def main(argv: Sequence[str] | None = None, *, exiting: bool = False) -> int:
    """The command ``argv`` names; ``exiting``: the process ends when it returns."""
    parser = build_parser()
    args = parser.parse_args(argv)
    args.exiting = exiting
    if getattr(args, "url", "unset") is None:
        args.url = _default_url()
    func: Command = args.func
    if args.command not in ("run", "demo"):
        # Commands print their own results; logs go to stderr and only when they matter.
        from watchdog import logs

        logs.configure("console", os.environ.get("WATCHDOG_LOG_LEVEL", "warning"), cache=False)
    try:
        return func(args)
    except RuleError as exc:
        if wants_json(args):
            emit(error_document("the rules are invalid", exc.problems))
        print("error: the rules are invalid:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    except WatchdogError as exc:
        if wants_json(args):
            emit(error_document(str(exc)))
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
