"""Commands for tuning rules: ``backtest``, ``record`` and ``test rules``.

Exit codes as the rest of the CLI: 0 ok, 1 bad input or failed tests (with a message
on stderr), 2 usage.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from watchdog.cli.output import add_output, emit, error_document, wants_json
from watchdog.errors import BacktestError, RuleError, WatchdogError
from watchdog.gcpause import paused_gc

# The backtest machinery (the rules' models, the engine, the incident manager, numpy)
# is imported by the verbs that use it, so the CLI's other verbs do not pay for it.
if TYPE_CHECKING:
    from watchdog.backtest.recordings import Recording
    from watchdog.backtest.timeline import BacktestResult
    from watchdog.incidents.matchers import Matcher
    from watchdog.model import Deploy
    from watchdog.rules.load import RuleSet


def register(commands: Any) -> None:
    """Add ``backtest``, ``record`` and ``test rules`` to the CLI's subcommands."""
    backtest = commands.add_parser(
        "backtest",
        help="replay recorded signals through the rules: timeline and summary",
        description="Replay recorded signals through the live engine and incident "
        "manager on a virtual clock. Nothing is rolled back or sent.",
    )
    _rules_arg(backtest)
    where = backtest.add_mutually_exclusive_group(required=True)
    where.add_argument(
        "--series",
        metavar="DIR",
        help="recordings: DIR/SIGNAL.json (a query_range body), optional DIR/deployments.json",
    )
    _prometheus_args(backtest, where)
    backtest.add_argument(
        "--deployments", metavar="FILE", help="deploy history (default DIR/deployments.json)"
    )
    backtest.add_argument(
        "--ignore-deploys",
        action="store_true",
        help="no deploy correlation: act as if a deploy explained every breach",
    )
    backtest.add_argument(
        "--silence",
        nargs="+",
        action="append",
        default=[],
        metavar="MATCHER",
        help="a silence over the whole replay, e.g. --silence rule=error-rate target=frontend "
        "(repeat for several silences)",
    )
    backtest.add_argument(
        "--format",
        choices=("text", "json"),
        default="text",
        help="json: one object per line (a stream for jq -c); -o json: one document",
    )
    add_output(backtest)
    backtest.add_argument("--plot", metavar="FILE", help="also draw the replay (.png or .svg)")
    _sweep_args(backtest)
    backtest.set_defaults(func=cmd_backtest)
    _register_record_and_test(commands)


def _register_record_and_test(commands: Any) -> None:
    """``record`` and ``test rules``."""
    record = commands.add_parser(
        "record",
        help="save each prometheus signal's history as DIR/SIGNAL.json for backtests",
    )
    _rules_arg(record)
    _prometheus_args(record, None)
    record.add_argument("--out", metavar="DIR", required=True, help="directory to write")
    add_output(record)
    record.set_defaults(func=cmd_record)

    test = commands.add_parser("test", help="unit-test rules files (like promtool test rules)")
    what = test.add_subparsers(dest="what", metavar="WHAT", required=True)
    rules = what.add_parser("rules", help="run rule test files")
    rules.add_argument("files", nargs="+", metavar="FILE", help="test files")
    rules.add_argument("--run", metavar="REGEX", help="only test groups whose name matches")
    add_output(rules)
    rules.set_defaults(func=cmd_test_rules)


def _sweep_args(backtest: argparse.ArgumentParser) -> None:
    backtest.add_argument(
        "--sweep",
        action="append",
        default=[],
        metavar="RULE.FIELD=LO..HI/STEP",
        help="replay every combination of one rule's settings (repeat for more fields): "
        "a table of episodes, rollbacks, caught and missed incidents",
    )
    backtest.add_argument(
        "--labels",
        metavar="FILE",
        help="known incidents for --sweep (default DIR/labels.json when there is one)",
    )
    backtest.add_argument(
        "--labels-from-store",
        metavar="LOCATION",
        help="for --sweep: the incidents a state store recorded (a SQLite file or a "
        "postgresql:// URL, as WATCHDOG_STATE), each a label for its own rule",
    )


def _rules_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--rules", required=True, action="append", metavar="PATH", help="rules file or directory"
    )


def _prometheus_args(parser: argparse.ArgumentParser, group: Any) -> None:
    target = group if group is not None else parser
    target.add_argument(
        "--prometheus",
        metavar="URL",
        nargs="?",
        const="",
        required=group is None,
        help="fetch each prometheus signal with query_range from URL "
        "(without URL: each source's own url)",
    )
    parser.add_argument("--from", dest="start", metavar="T", help="RFC 3339, Unix s, now-7d")
    parser.add_argument("--to", dest="end", metavar="T", help="RFC 3339, Unix s, now")
    parser.add_argument("--step", default="15s", help="query_range step (default 15s)")


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Errors only while a command runs: the incident manager logs every step at info,
    and the timeline already says it. The previous set-up comes back afterwards (and
    nothing is cached), so a caller that runs commands in-process keeps its logging."""
    import structlog

    from watchdog import logs

    saved = structlog.get_config()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    logs.configure("console", "error", cache=False)
    try:
        yield
    finally:
        structlog.configure(**saved)
        root.handlers = handlers
        root.setLevel(level)


def _fail(args: argparse.Namespace, message: str, problems: list[str] | None = None) -> int:
    if wants_json(args):
        emit(error_document(message, problems))
    print(f"error: {message}", file=sys.stderr)
    for problem in problems or []:
        print(f"  {problem}", file=sys.stderr)
    return 1


def _load(paths: list[str]) -> RuleSet:
    from watchdog.rules.load import load_rules

    return load_rules(paths)


def _window(args: argparse.Namespace) -> tuple[float, float, float]:
    from watchdog.backtest.times import parse_time
    from watchdog.units import parse_duration

    if not args.start or not args.end:
        raise BacktestError("--prometheus needs --from and --to")
    start, end = parse_time(args.start), parse_time(args.end)
    try:
        step = parse_duration(args.step)
    except ValueError as exc:
        raise BacktestError(f"--step: {exc}") from None
    if not step > 0:
        raise BacktestError("--step must be longer than 0s")
    if end <= start:
        raise BacktestError("--to must be after --from")
    return start, end, step


async def _fetch(
    ruleset: RuleSet, args: argparse.Namespace
) -> tuple[dict[str, Recording], list[str], float, float]:
    import httpx

    from watchdog.backtest.recordings import fetch_recordings

    start, end, step = _window(args)
    async with httpx.AsyncClient() as http:
        recordings, notes = await fetch_recordings(
            ruleset, http, start, end, step, url=args.prometheus or None
        )
    return recordings, notes, start, end


def cmd_backtest(args: argparse.Namespace) -> int:
    with paused_gc(), _quiet():  # while the machinery is imported and a month replayed
        code = _backtest(args)
        if getattr(args, "exiting", False):
            # The process ends after this: the collection that resuming would start
            # (everything the replay made is young) would free nothing the exit does not.
            gc.freeze()
        return code


def _backtest(args: argparse.Namespace) -> int:
    from watchdog.backtest.recordings import load_recordings
    from watchdog.backtest.render import render_json, render_text
    from watchdog.backtest.run import point_reader, run_backtest, run_sync
    from watchdog.backtest.times import load_deployments

    try:
        ruleset = _load(args.rules)
        silences = [_matchers(items) for items in args.silence]
        deployments: dict[str, list[Deploy]] | None = None
        start = end = None
        if args.series is not None:
            directory = Path(args.series)
            recordings, notes = load_recordings(directory, ruleset, point_reader())
            default = directory / "deployments.json"
            if args.deployments is None and default.exists():
                deployments = load_deployments(default)
        else:
            recordings, notes, start, end = run_sync(_fetch(ruleset, args))
        if args.deployments is not None:
            deployments = load_deployments(Path(args.deployments))
        for note in notes:
            print(f"note: {note}", file=sys.stderr)
        if args.sweep:
            return _sweep(args, ruleset, recordings, deployments, silences, start, end)
        result = run_backtest(
            ruleset,
            recordings,
            deployments=deployments,
            silences=silences,
            ignore_deploys=args.ignore_deploys,
            notes=notes,
            start=start,
            end=end,
        )
        if args.plot:
            from watchdog.backtest.plot import write_plot

            write_plot(result, ruleset, Path(args.plot))
    except RuleError as exc:
        return _fail(args, "the rules are not valid:", exc.problems)
    except WatchdogError as exc:
        return _fail(args, str(exc))
    if wants_json(args):
        emit(_backtest_document(result))
        return 0
    lines = render_json(result) if args.format == "json" else render_text(result, ruleset)
    try:
        for line in lines:
            print(line)
    except BrokenPipeError:  # `| head`: the reader has what it wanted
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    return 0


def _backtest_document(result: BacktestResult) -> dict[str, Any]:
    """``backtest -o json``: the ``--format json`` lines as one document."""
    return {
        "timeline": [event.to_json() for event in result.timeline],
        "rules": {name: rule.to_json() for name, rule in result.summary.rules.items()},
        "summary": result.summary.to_json(),
    }


def _sweep(args: argparse.Namespace, ruleset: RuleSet, recordings: Any, *given: Any) -> int:
    """``backtest --sweep``: its table (or JSON) instead of the timeline."""
    try:
        from watchdog.backtest import sweep, sweep_render
        from watchdog.backtest.labels import labels_from_store, load_labels
    except ImportError:
        return _fail(args, "--sweep needs the fast extra: pip install 'rollback-watchdog[fast]'")
    deployments, silences, start, end = given
    axes = [sweep.parse_axis(text) for text in args.sweep]
    names = [rule.name for rule in ruleset.rules]
    origin = args.labels
    default = Path(args.series or ".") / "labels.json"
    if origin is None and args.series and not args.labels_from_store and default.exists():
        origin = str(default)
    labels = load_labels(Path(origin), names) if origin else []
    if args.labels_from_store:
        if origin:
            raise BacktestError("give --labels or --labels-from-store, not both")
        origin = f"the incidents in {args.labels_from_store}"
        spans = [s[1] for r in recordings.values() if (s := r.span()) is not None]
        until = end if end is not None else max(spans, default=0.0)
        labels = labels_from_store(args.labels_from_store, until)
    result = sweep.run_sweep(
        ruleset,
        recordings,
        axes,
        labels,
        origin or "",
        deployments=deployments,
        silences=silences,
        ignore_deploys=args.ignore_deploys,
        start=start,
        end=end,
    )
    if args.plot:
        sweep_render.write_heatmap(result, Path(args.plot))
    if args.format == "json" or wants_json(args):
        print(sweep_render.render_json(result))
    else:
        for line in sweep_render.render_text(result):
            print(line)
    return 0


def _matchers(items: list[str]) -> list[Matcher]:
    from watchdog.incidents.matchers import SilenceError, parse_matcher

    try:
        return [parse_matcher(item) for item in items]
    except SilenceError as exc:
        raise BacktestError(f"--silence: {exc}") from None


def cmd_record(args: argparse.Namespace) -> int:
    with _quiet():
        return _record(args)


def _record(args: argparse.Namespace) -> int:
    from watchdog.backtest.recordings import record_report, write_recordings
    from watchdog.backtest.run import run_sync
    from watchdog.units import parse_duration

    try:
        ruleset = _load(args.rules)
        recordings, notes, start, end = run_sync(_fetch(ruleset, args))
        write_recordings(Path(args.out), recordings)
        step = parse_duration(args.step)
        report = record_report(Path(args.out), recordings, ruleset, start, end, step)
    except RuleError as exc:
        return _fail(args, "the rules are not valid:", exc.problems)
    except WatchdogError as exc:
        return _fail(args, str(exc))
    except OSError as exc:
        return _fail(args, f"cannot write {args.out}: {exc}")
    if wants_json(args):
        emit({"ok": True, "out": args.out, "files": report, "notes": notes})
        return 0
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    for line in report:
        print(line)
    return 0


def cmd_test_rules(args: argparse.Namespace) -> int:
    from watchdog.backtest.ruletest import run_rule_tests

    with _quiet():
        code, lines = run_rule_tests(args.files, args.run)
    if wants_json(args):  # promtool's report, line by line, and its verdict
        emit({"ok": code == 0, "exit_code": code, "lines": lines})
        return code
    for line in lines:
        print(line)
    return code
