"""A fast, selective parser of the Prometheus text exposition format (version 0.0.4).

A ``/metrics`` page can hold 100,000 lines while the rules need three families, and
the pure-Python ``prometheus_client`` parser costs 15-50 µs a line. So we never
look at most lines: one compiled regex, built for the wanted names, runs over the
whole text at C speed and stops only at lines that start with a wanted sample name
(each try begins at a newline, so the regex engine's literal-prefix search skips
between lines). Only those lines are turned into samples; everything else (other
families, comments, ``# HELP`` / ``# TYPE``, blank lines) is skipped unread.

A malformed line of a wanted family raises ``ParseError`` with its line number and
what is wrong; a malformed line of any other family is not our business and is
ignored. Not supported: the UTF-8 quoted-name syntax (``{"my.metric"} 1``) and
OpenMetrics exemplars; ask for ``text/plain; version=0.0.4``.
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Collection
from typing import NamedTuple

from watchdog.errors import ParseError

_COUNTER_SUFFIX = "_total"
# Sample-name suffixes that belong to a family: histogram/summary parts and the
# counter's ``_total`` (``_created`` is metadata, not a value we alert on).
_FAMILY_SUFFIXES = ("_total", "_bucket", "_count", "_sum")

_INT64_MAX = 2**63 - 1


class ExpSample(NamedTuple):
    """One exposition line: full sample name (with any suffix), labels, value, and
    the optional timestamp in Unix seconds (the text gives milliseconds)."""

    name: str
    labels: dict[str, str]
    value: float
    timestamp: float | None = None


# --- the regexes -----------------------------------------------------------------------
#
# Possessive quantifiers (``*+``, ``++``; Python 3.11+) keep every sub-pattern from
# backtracking, so a hostile line costs linear time, not quadratic.

_LNAME = r"[a-zA-Z_][a-zA-Z0-9_]*+"
# A quoted label value: any run of characters except quote, backslash and newline,
# or a backslash and the character it escapes.
_LVALUE = r'"(?:[^"\\\n]++|\\.)*+"'
_LABEL = rf"{_LNAME}[ \t]*+=[ \t]*+{_LVALUE}"
_LABEL_BODY = rf"[ \t]*+(?:{_LABEL}[ \t]*+(?:,[ \t]*+{_LABEL}[ \t]*+)*+(?:,[ \t]*+)?+)?+"

# The part after the metric name of a well-formed line, up to the end of the line.
_REST = (
    rf"(?:[ \t]*+\{{(?P<labels>{_LABEL_BODY})\}}[ \t]*+|[ \t]++)"
    r"(?P<value>[^ \t\r\n{][^ \t\r\n]*+)"
    r"(?:[ \t]++(?P<ts>[-+]?[0-9]++))?"
    r"[ \t]*+\r?$"
)

# Extracting pairs from a label body already checked against _LABEL_BODY: each
# search lands on the next label name, never inside a value.
_LABEL_PAIR = re.compile(rf'({_LNAME})[ \t]*+=[ \t]*+"((?:[^"\\\n]++|\\.)*+)"')
_ESCAPE = re.compile(r'\\[\\n"]')
_UNESCAPED = {"\\\\": "\\", "\\n": "\n", '\\"': '"'}

# For diagnosing a bad line only (slow path).
_LNAME_RE = re.compile(_LNAME)
_LVALUE_RE = re.compile(_LVALUE)
_TIMESTAMP = re.compile(r"[-+]?[0-9]+")


def _unescape(match: re.Match[str]) -> str:
    return _UNESCAPED[match.group(0)]


class _Scanner(NamedTuple):
    first: re.Pattern[str]  # the first line (no newline before it)
    rest: re.Pattern[str]  # every other line, found after its newline
    owners: dict[str, tuple[str, ...]]  # sample name -> the wanted families it feeds


def spellings(family: str) -> tuple[str, ...]:
    """The sample names that belong to a wanted family name.

    ``http_requests_total`` and ``http_requests`` both find a counter however the
    app spells it; any other name also finds its histogram/summary parts.
    """
    if family.endswith(_COUNTER_SUFFIX) and len(family) > len(_COUNTER_SUFFIX):
        return (family, family[: -len(_COUNTER_SUFFIX)])
    return (family, *(family + suffix for suffix in _FAMILY_SUFFIXES))


@functools.lru_cache(maxsize=64)
def _scanner(wanted: frozenset[str]) -> _Scanner:
    owners: dict[str, list[str]] = {}
    for family in sorted(wanted):
        for name in spellings(family):
            owners.setdefault(name, []).append(family)
    # Longest first, so a name is not cut short by its own prefix; the lookahead
    # then insists the whole metric-name token matched.
    names = "|".join(re.escape(n) for n in sorted(owners, key=lambda n: (-len(n), n)))
    line = rf"[ \t]*+(?P<name>{names})(?![a-zA-Z0-9_:])(?:{_REST}|(?P<bad>[^\n]*+))"
    return _Scanner(
        first=re.compile(line, re.MULTILINE),
        rest=re.compile(r"\n" + line, re.MULTILINE),
        owners={name: tuple(families) for name, families in owners.items()},
    )


def parse_families(text: str, wanted: Collection[str]) -> dict[str, list[ExpSample]]:
    """The samples of each wanted family, in text order; an absent family maps to [].

    For a histogram ``X`` the samples are ``X_bucket`` (``le`` stays a string, as
    written), ``X_count`` and ``X_sum``; a counter is found as ``X`` or ``X_total``
    whichever spelling is asked for. Raises ``ParseError`` for a malformed line of a
    wanted family, naming the line number and the problem.
    """
    families = frozenset(wanted)
    result: dict[str, list[ExpSample]] = {family: [] for family in wanted}
    if not families:
        return result
    scanner = _scanner(families)
    # Each sample name appends straight into the list of every family it feeds, so
    # each family's samples stay in text order.
    sinks = {name: [result[f] for f in owners] for name, owners in scanner.owners.items()}
    first = scanner.first.match(text)
    matches = scanner.rest.finditer(text)
    for match in itertools.chain((first,), matches) if first is not None else matches:
        name, body, value, ts, bad = match.group("name", "labels", "value", "ts", "bad")
        if bad is not None:
            raise _bad_line(text, match)
        if body:
            labels = _labels(body)
            if labels is None:
                raise _line_error(text, match, "duplicate label name")
        else:
            labels = {}
        try:
            number = float(value)
        except ValueError:
            raise _line_error(text, match, f"value {value!r} is not a number") from None
        if "_" in value:  # float() takes 1_000; Go's ParseFloat and Prometheus do not
            raise _line_error(text, match, f"value {value!r} is not a number")
        stamp = None
        if ts is not None:
            stamp = _timestamp(ts)
            if stamp is None:
                raise _line_error(text, match, f"timestamp {ts} is outside int64 milliseconds")
        sample = ExpSample(name, labels, number, stamp)
        for sink in sinks[name]:
            sink.append(sample)
    return result


def _labels(body: str) -> dict[str, str] | None:
    pairs = _LABEL_PAIR.findall(body)
    labels = dict(pairs)
    if len(labels) != len(pairs):
        return None
    if "\\" in body:
        for key, raw in pairs:
            if "\\" in raw:
                labels[key] = _ESCAPE.sub(_unescape, raw)
    return labels


def _timestamp(ts: str) -> float | None:
    if len(ts.lstrip("+-")) > 19:
        return None
    millis = int(ts)
    if not -_INT64_MAX - 1 <= millis <= _INT64_MAX:
        return None
    return millis / 1000.0


def _line_error(
    text: str, match: re.Match[str], problem: str, offset: int | None = None
) -> ParseError:
    """``offset``, if given, is where the problem sits within the ``bad`` group."""
    start = match.start() + (text[match.start()] == "\n")  # the rest-regex eats the newline
    end = text.find("\n", start)
    line = text[start : len(text) if end < 0 else end].rstrip("\r")
    number = text.count("\n", 0, start) + 1
    where = f"line {number}"
    if offset is not None:
        where += f", column {match.start('bad') - start + offset + 1}"
    shown = line if len(line) <= 120 else line[:117] + "..."
    return ParseError(f"{where}: {problem}: {shown!r}")


def _bad_line(text: str, match: re.Match[str]) -> ParseError:
    problem, offset = _diagnose(match.group("bad"))
    return _line_error(text, match, problem, offset)


def _diagnose(rest: str) -> tuple[str, int | None]:
    """What is wrong with the text after a wanted metric name, and where (slow path:
    only run for a line the fast regex rejected)."""
    rest = rest.removesuffix("\r")
    pos = _skip_blanks(rest, 0)
    if pos < len(rest) and rest[pos] == "{":
        problem, pos = _diagnose_labels(rest, pos + 1)
        if problem:
            return problem, pos
        tokens = rest[pos:].split()
    else:
        if rest and rest[0] not in " \t":
            return f"metric name followed by {rest[0]!r} (expected a blank or '{{')", 0
        tokens = rest.split()
    if not tokens:
        return "no value after the metric name and labels", None
    if len(tokens) > 2:
        return f"unexpected text after the timestamp: {tokens[2]!r}", None
    if len(tokens) == 2 and _TIMESTAMP.fullmatch(tokens[1]) is None:
        return f"timestamp {tokens[1]!r} is not an integer (milliseconds)", None
    return f"bad blank around value {tokens[0]!r}", None


def _diagnose_labels(rest: str, pos: int) -> tuple[str, int]:
    """Walk a label set label by label; return ("", position after '}') if it is fine."""
    expect_label = True
    while True:
        pos = _skip_blanks(rest, pos)
        if pos >= len(rest):
            return "label set not closed with '}'", pos
        if rest[pos] == "}":
            return "", pos + 1
        if not expect_label:
            if rest[pos] != ",":
                return f"expected ',' or '}}' between labels, found {rest[pos]!r}", pos
            pos = _skip_blanks(rest, pos + 1)
            if pos < len(rest) and rest[pos] == "}":
                return "", pos + 1
        name = _LNAME_RE.match(rest, pos)
        if name is None:
            found = rest[pos] if pos < len(rest) else "end of line"
            return f"expected a label name, found {found!r}", pos
        pos = _skip_blanks(rest, name.end())
        if pos >= len(rest) or rest[pos] != "=":
            return f"expected '=' after label name {name.group(0)!r}", pos
        pos = _skip_blanks(rest, pos + 1)
        if pos >= len(rest) or rest[pos] != '"':
            return f"label {name.group(0)!r}: value must be in double quotes", pos
        value = _LVALUE_RE.match(rest, pos)
        if value is None:
            return f"label {name.group(0)!r}: unterminated value (missing closing '\"')", pos
        pos = value.end()
        expect_label = False


def _skip_blanks(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t":
        pos += 1
    return pos
