"""Regular expressions for silence matchers, matched without backtracking.

Python's ``re`` backtracks: ``(.*.*.*.*.*)*[^\\s\\S]`` against a 30-character name
runs for hours, on the event loop. A silence regex is written by whoever can reach
the API, so it is compiled here instead, to a Thompson NFA that is simulated one
character at a time (all states at once, as RE2 and Alertmanager's Go regexp do):
time is linear in the text times the pattern's size, whatever the pattern.

The syntax is the common subset of Python's and RE2's: literals, ``.``, classes
(``[a-z_]``, ``[^...]``, ``\\d \\w \\s`` and their negations), groups ``(...)``,
``(?:...)`` and ``(?P<name>...)``, alternation ``|``, ``* + ? {m} {m,} {m,n}`` (lazy
forms too; laziness does not change a full match), ``^`` and ``$``. Backreferences,
lookarounds and inline flags are refused with a message. Patterns are bounded in
length, repeat counts and compiled size, so compiling is bounded too. The syntax is
read by ``regex_syntax``; this module builds and runs the NFA.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

from watchdog.incidents.regex_syntax import (
    MAX_PATTERN_CHARS,
    MAX_STATES,
    MAX_TEXT_CHARS,
    CharTest,
    PatternError,
    _Alt,
    _Anchor,
    _Char,
    _Node,
    _Parser,
    _Repeat,
    _Seq,
)

# --- the NFA ---------------------------------------------------------------------------

_SPLIT, _CHAR, _START, _END, _MATCH = range(5)


@dataclass
class _State:
    kind: int
    test: CharTest | None = None
    out: list[int] = field(default_factory=list)


class _Builder:
    def __init__(self) -> None:
        self.states: list[_State] = []

    def new(self, kind: int, test: CharTest | None = None) -> int:
        if len(self.states) >= MAX_STATES:
            raise PatternError(
                f"the pattern is too large once its repeats are expanded (over {MAX_STATES} "
                "states); shorten it or lower its repeat counts"
            )
        self.states.append(_State(kind, test))
        return len(self.states) - 1

    def build(self, node: _Node, nxt: int) -> int:
        """States for ``node`` that continue to ``nxt``; returns the entry state."""
        if isinstance(node, _Char):
            entry = self.new(_CHAR, node.test)
            self.states[entry].out.append(nxt)
            return entry
        if isinstance(node, _Anchor):
            entry = self.new(_START if node.at_start else _END)
            self.states[entry].out.append(nxt)
            return entry
        if isinstance(node, _Seq):
            for item in reversed(node.items):
                nxt = self.build(item, nxt)
            return nxt
        if isinstance(node, _Alt):
            entry = self.new(_SPLIT)
            self.states[entry].out.extend(self.build(o, nxt) for o in node.options)
            return entry
        return self.repeat(node, nxt)

    def repeat(self, node: _Repeat, nxt: int) -> int:
        if node.high is None:
            loop = self.new(_SPLIT)  # either one more item (back to the loop) or on
            body = self.build(node.item, loop)
            self.states[loop].out.extend([body, nxt])
            tail = loop
        else:
            tail = nxt
            for _ in range(node.high - node.low):
                optional = self.new(_SPLIT)
                self.states[optional].out.extend([self.build(node.item, tail), nxt])
                tail = optional
        for _ in range(node.low):
            tail = self.build(node.item, tail)
        return tail


_CACHE_LIMIT = 4_096  # memoised steps per pattern (a lazily built DFA, bounded)


@dataclass(frozen=True)
class SafePattern:
    """A compiled pattern; ``fullmatch`` takes linear time in the text."""

    pattern: str
    states: tuple[_State, ...]
    start: int
    _steps: dict[tuple[frozenset[int], str], frozenset[int]] = field(
        default_factory=dict, compare=False, repr=False
    )

    def fullmatch(self, text: str) -> bool:
        if len(text) > MAX_TEXT_CHARS:
            return False
        current = self._closure({self.start}, at_start=True, at_end=not text)
        for index, char in enumerate(text):
            current = self._step(current, char, at_end=index == len(text) - 1)
            if not current:
                return False
        return _MATCH in {self.states[n].kind for n in current}

    def _step(self, current: frozenset[int], char: str, at_end: bool) -> frozenset[int]:
        key = (current, char)
        found = None if at_end else self._steps.get(key)
        if found is not None:
            return found
        moved = set()
        for number in current:
            state = self.states[number]
            if state.kind == _CHAR and state.test is not None and state.test(char):
                moved.add(state.out[0])
        found = self._closure(moved, at_start=False, at_end=at_end)
        if not at_end and len(self._steps) < _CACHE_LIMIT:
            self._steps[key] = found
        return found

    def _closure(self, seeds: set[int], at_start: bool, at_end: bool) -> frozenset[int]:
        """Every state reachable without reading a character; ``^`` passes only before
        the first character, ``$`` only after the last."""
        seen: set[int] = set()
        stack = list(seeds)
        while stack:
            number = stack.pop()
            if number in seen:
                continue
            seen.add(number)
            state = self.states[number]
            if (
                state.kind == _SPLIT
                or (state.kind == _START and at_start)
                or (state.kind == _END and at_end)
            ):
                stack.extend(state.out)
        return frozenset(n for n in seen if self.states[n].kind in (_CHAR, _MATCH))


@functools.lru_cache(maxsize=512)
def compile_pattern(pattern: str) -> SafePattern:
    """Compile ``pattern`` (anchored: it must match a whole name) or raise
    ``PatternError`` saying what is wrong and where."""
    if len(pattern) > MAX_PATTERN_CHARS:
        raise PatternError(
            f"the pattern is {len(pattern)} characters long (at most {MAX_PATTERN_CHARS})"
        )
    tree = _Parser(pattern).parse()
    builder = _Builder()
    final = builder.new(_MATCH)
    start = builder.build(tree, final)
    return SafePattern(pattern, tuple(builder.states), start)
