"""Load rules files: YAML with line numbers, pydantic validation, cross-references.

Every problem found is reported, each as ``FILE:LINE key.path: message``, the way
``promtool check rules`` reports. A directory's ``*.yaml``/``*.yml`` files merge into
one ``RuleSet``; a name defined twice is an error that names both places.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from watchdog.errors import RuleError
from watchdog.gcpause import paused_gc
from watchdog.rules.merge import merge
from watchdog.rules.parse import Parsed
from watchdog.rules.reread import parse_file, rule_files
from watchdog.rules.ruleset import Located, ResolvedSignal, RuleSet

__all__ = ["Located", "ResolvedSignal", "RuleSet", "check_files", "load_rules", "rule_files"]


def load_rules(paths: Iterable[str | Path]) -> RuleSet:
    """Load and merge rules files; raise ``RuleError`` listing every problem."""
    # A 10,000-rule file makes hundreds of thousands of objects (nodes, marks, models).
    with paused_gc():
        return _load_rules(paths)


def _load_rules(paths: Iterable[str | Path]) -> RuleSet:
    files = rule_files(paths)
    if not files:
        raise RuleError(["(no files): no rules files found (expected *.yaml or *.yml)"])
    parsed: list[Parsed] = []
    problems: list[str] = []
    for path in files:
        result, found = parse_file(path)
        problems.extend(found)
        if result is not None:
            parsed.append(result)
    if problems:
        raise RuleError(problems)
    ruleset, problems = merge(parsed)
    if problems:
        raise RuleError(problems)
    return ruleset


def check_files(paths: Iterable[str | Path]) -> tuple[list[str], list[str]]:
    """For ``check rules``: (summary lines, problems). Each argument is one rule set,
    checked on its own: a file, or a directory whose files merge."""
    # A 10,000-rule file makes hundreds of thousands of objects (nodes, marks, models).
    with paused_gc():
        return _check_files(paths)


def _check_files(paths: Iterable[str | Path]) -> tuple[list[str], list[str]]:
    summaries: list[str] = []
    problems: list[str] = []
    for argument in paths:
        parsed: list[Parsed] = []
        for path in rule_files([argument]):
            result, found = parse_file(path)
            problems.extend(found)
            if result is not None:
                parsed.append(result)
        if not parsed:
            continue
        ruleset, found = merge(parsed)
        problems.extend(found)
        for file in ruleset.files:
            if not any(p.startswith(f"{file}:") for p in found):
                summaries.append(f"{file}: SUCCESS: {ruleset.summaries[file]}")
    return summaries, problems
