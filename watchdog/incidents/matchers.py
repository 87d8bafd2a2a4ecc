"""A silence's matchers on ``rule``, ``target`` and ``severity`` (``=``, ``!=``, ``=~``,
``!~``; regexes anchored and linear-time), the guards on a new silence's matchers, and
each regex judged once against the known names."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from watchdog.errors import WatchdogError
from watchdog.incidents.regex_syntax import PatternError
from watchdog.incidents.safe_regex import compile_pattern
from watchdog.rules.fields import SEVERITIES
from watchdog.store.base import SilenceRecord

MatcherName = Literal["rule", "target", "severity"]
MATCHER_NAMES: tuple[MatcherName, ...] = ("rule", "target", "severity")
_OPS = ("=~", "!~", "!=", "=")


class SilenceError(WatchdogError):
    """A silence request is malformed (bad matcher, end before start, ...)."""


@dataclass(frozen=True)
class Matcher:
    name: str
    op: str
    value: str

    def matches(self, labels: dict[str, str]) -> bool:
        return self.matches_value(labels.get(self.name, ""))

    def matches_value(self, actual: str) -> bool:
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        # Linear time whatever the pattern (safe_regex); a stored pattern this version
        # refuses (made before it) matches no name.
        try:
            hit = compile_pattern(self.value).fullmatch(actual)
        except PatternError:
            hit = False
        return hit if self.op == "=~" else not hit

    def text(self) -> str:
        return f"{self.name}{self.op}{self.value}"

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "op": self.op, "value": self.value}


def parse_matcher(text: str) -> Matcher:
    """``rule=error-rate``, ``target=~worker|frontend``, ``severity!=low``."""
    for op in _OPS:
        name, sep, value = text.partition(op)
        if sep and name.strip():
            return make_matcher(name.strip(), op, value.strip().strip('"'))
    raise SilenceError(
        f"matcher {text!r}: expected NAME=VALUE, NAME!=VALUE, NAME=~REGEX or NAME!~REGEX "
        f"with NAME one of: {', '.join(MATCHER_NAMES)}"
    )


def make_matcher(name: str, op: str, value: str) -> Matcher:
    if name not in MATCHER_NAMES:
        raise SilenceError(
            f"matcher name {name!r} unknown (expected one of: {', '.join(MATCHER_NAMES)})"
        )
    if op not in _OPS:
        raise SilenceError(f"matcher operator {op!r} unknown (expected one of: {', '.join(_OPS)})")
    if op in ("=~", "!~"):
        try:
            compile_pattern(value)
        except PatternError as exc:
            raise SilenceError(
                f"matcher {name}{op}{value[:80]}: bad regular expression: {exc}"
            ) from None
    return Matcher(name, op, value)


@dataclass(frozen=True)
class KnownNames:
    """The names a matcher can meet: the loaded rules, targets and severities."""

    rules: tuple[str, ...] = ()
    targets: tuple[str, ...] = ()
    severities: tuple[str, ...] = ()

    def of(self, label: str) -> tuple[str, ...]:
        if label == "rule":
            return self.rules
        if label == "target":
            return self.targets
        return self.severities


def known_names(rules: Iterable[str], targets: Iterable[str]) -> KnownNames:
    """The loaded rule and target names; severities are the four the rules language has."""
    return KnownNames(tuple(rules), tuple(targets), SEVERITIES)


def check_matchers(
    matchers: list[Matcher], known: KnownNames | None, *, everything: bool, force: bool
) -> None:
    """amtool's and our guards on a new silence: no matcher silences every action, so
    it needs ``everything`` (``--all``); a matcher that meets no loaded name silences
    nothing (a typo, most likely), so it needs ``force`` (``--force``)."""
    if not matchers and not everything:
        raise SilenceError(
            "no matchers: this would silence every action of every rule; give matchers "
            '(like rule=error-rate) or say so with --all ("all": true in the API)'
        )
    if force or known is None:  # None: no rules were ever given to judge against
        return
    for matcher in matchers:
        names = known.of(matcher.name)
        if any(matcher.matches_value(n) for n in names):
            continue
        hint = ""
        if matcher.op == "=":
            close = difflib.get_close_matches(matcher.value, names, n=3, cutoff=0.6)
            hint = f"; did you mean {' or '.join(close)}?" if close else ""
        shown = ", ".join(names[:20]) + (", ..." if len(names) > 20 else "") or "none loaded"
        raise SilenceError(
            f"matcher {matcher.text()[:100]} matches no loaded {matcher.name} "
            f"(known: {shown}){hint}; it would silence nothing. Fix it, or keep it with "
            '--force ("force": true in the API)'
        )


def matchers_of(record: SilenceRecord) -> list[Matcher]:
    return [Matcher(m["name"], m["op"], m["value"]) for m in record.matchers]


@dataclass
class _Verdicts:
    """Each regex matcher judged once against every known name of its label (when the
    silence is made or loaded, and when rules reload), so matching an action is a set
    lookup. A name not known at that time (rare: a rule renamed since) is judged on
    demand, still in linear time."""

    hits: dict[tuple[str, str, str], frozenset[str]] = field(default_factory=dict)
    judged: dict[tuple[str, str, str], frozenset[str]] = field(default_factory=dict)

    @classmethod
    def of(cls, known: KnownNames, records: Iterable[SilenceRecord]) -> _Verdicts:
        """A fresh judgement (pure: safe to run in a worker thread)."""
        out = cls()
        for record in records:
            for m in matchers_of(record):
                key = (m.name, m.op, m.value)
                if m.op in ("=", "!=") or key in out.hits:
                    continue
                names = frozenset(known.of(m.name))
                out.judged[key] = names
                out.hits[key] = frozenset(n for n in names if m.matches_value(n))
        return out

    def merge(self, other: _Verdicts) -> None:
        self.judged.update(other.judged)
        self.hits.update(other.hits)

    def matches(self, matcher: Matcher, labels: dict[str, str]) -> bool:
        actual = labels.get(matcher.name, "")
        key = (matcher.name, matcher.op, matcher.value)
        judged = self.judged.get(key)
        if judged is not None and actual in judged:
            return actual in self.hits[key]
        return matcher.matches_value(actual)
