"""The format of a rule test file (``rule_files``, ``tests`` with ``input_series`` and
``rule_test`` expectations), its outcomes, and its loading with clear errors."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BeforeValidator, ValidationError

from watchdog.errors import WatchdogError
from watchdog.rules.fields import Duration, Model
from watchdog.units import format_duration

Outcome = Literal[
    "rollback", "silenced", "blocked", "grace", "notify", "blind", "resolved", "escalated", "none"
]
OUTCOMES: tuple[str, ...] = (
    "rollback",
    "silenced",
    "blocked",
    "grace",
    "notify",
    "blind",
    "resolved",
    "escalated",
    "none",
)
# What "nothing may fire" rules out.
ACTING: frozenset[str] = frozenset({"rollback", "silenced", "blocked", "grace", "notify"})


class VersionSeries(Model):
    """One version's counts per window (a canary rule's signal), expanding notation."""

    errors: str
    requests: str


class InputSeries(Model):
    series: str
    values: str | None = None
    errors: str | None = None
    requests: str | None = None
    versions: dict[str, VersionSeries] | None = None  # per version: a canary's signal


class Expectation(Model):
    eval_time: Duration
    rule: str | None = None
    exp_state: Literal["inactive", "pending", "firing", "blind", "inconclusive"] | None = None
    exp_decision: Outcome | tuple[Outcome, ...] | None = None

    @property
    def empty(self) -> bool:
        return self.exp_state is None and self.exp_decision is None

    def decisions(self) -> frozenset[str]:
        wanted = self.exp_decision
        items = (wanted,) if isinstance(wanted, str) else tuple(wanted or ())
        return frozenset(i for i in items if i != "none")


def _yaml_time(value: Any) -> Any:
    """YAML reads an unquoted ``2026-11-28T10:00:00Z`` as a datetime: take it as the
    RFC 3339 text it was (a time without a zone is still refused, by ``parse_time``)."""
    return value.isoformat() if isinstance(value, datetime) else value


class RuleTestGroup(Model):
    name: str = ""
    interval: Duration | None = None
    start_time: Annotated[str | float | None, BeforeValidator(_yaml_time)] = None
    input_series: tuple[InputSeries, ...]
    deployments: dict[str, Any] | None = None
    silences: tuple[tuple[str, ...], ...] = ()
    rule_test: tuple[Expectation, ...] = ()


class RuleTestFile(Model):
    rule_files: tuple[str, ...]
    tests: tuple[RuleTestGroup, ...]


@dataclass(frozen=True)
class Failure:
    group: str
    rule: str | None
    eval_time: float
    expected: str
    got: str

    def render(self) -> str:
        rule = f"rule: {self.rule}, " if self.rule else ""
        return (
            f"    name: {self.group}, {rule}time: {format_duration(self.eval_time)},\n"
            f"        exp: {self.expected}\n"
            f"        got: {self.got}"
        )


class RuleTestError(WatchdogError):
    """A test file that cannot be run (unreadable, invalid, bad series, bad times)."""


def load_test_file(path: Path) -> RuleTestFile:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RuleTestError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RuleTestError(f"{path}: cannot read: {exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RuleTestError(f"{path}: invalid YAML: {exc}") from None
    try:
        return RuleTestFile.model_validate(data)
    except ValidationError as exc:
        problems = [
            f"{'.'.join(str(p) for p in e['loc']) or '(top level)'}: {e['msg']}"
            for e in exc.errors()
        ]
        raise RuleTestError(f"{path}: " + "; ".join(problems)) from None
