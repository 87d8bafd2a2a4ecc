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
length, repeat counts and compiled size, so compiling is bounded too.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field

from watchdog.errors import WatchdogError

MAX_PATTERN_CHARS = 256
MAX_REPEAT = 100
MAX_STATES = 1_000
MAX_TEXT_CHARS = 1_000  # a rule, target or severity name is far shorter

CharTest = Callable[[str], bool]


class PatternError(WatchdogError):
    """A pattern is malformed, unsupported or too large (the message says which)."""


# --- syntax tree -----------------------------------------------------------------------


@dataclass(frozen=True)
class _Char:
    test: CharTest


@dataclass(frozen=True)
class _Seq:
    items: tuple[_Node, ...]


@dataclass(frozen=True)
class _Alt:
    options: tuple[_Node, ...]


@dataclass(frozen=True)
class _Repeat:
    item: _Node
    low: int
    high: int | None  # None: unbounded


@dataclass(frozen=True)
class _Anchor:
    at_start: bool  # ^ (True) or $ (False)


_Node = _Char | _Seq | _Alt | _Repeat | _Anchor


def _is_word(c: str) -> bool:
    return c.isalnum() or c == "_"


def _is_space(c: str) -> bool:
    return c.isspace()


def _is_digit(c: str) -> bool:
    return c.isdecimal()


_CLASS_ESCAPES: dict[str, CharTest] = {
    "d": _is_digit,
    "D": lambda c: not _is_digit(c),
    "w": _is_word,
    "W": lambda c: not _is_word(c),
    "s": _is_space,
    "S": lambda c: not _is_space(c),
}
_CHAR_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "f": "\f", "v": "\v"}
_SPECIAL = set("\\.^$|?*+()[]{}")


class _Parser:
    def __init__(self, pattern: str) -> None:
        self.text = pattern
        self.pos = 0

    def fail(self, why: str) -> PatternError:
        return PatternError(f"{why} at position {self.pos}")

    def peek(self) -> str | None:
        return self.text[self.pos] if self.pos < len(self.text) else None

    def take(self) -> str:
        char = self.text[self.pos]
        self.pos += 1
        return char

    def parse(self) -> _Node:
        node = self.alternation()
        if self.pos < len(self.text):
            raise self.fail("unbalanced parenthesis")
        return node

    def alternation(self) -> _Node:
        options = [self.sequence()]
        while self.peek() == "|":
            self.take()
            options.append(self.sequence())
        return options[0] if len(options) == 1 else _Alt(tuple(options))

    def sequence(self) -> _Node:
        items: list[_Node] = []
        while (char := self.peek()) is not None and char not in "|)":
            items.append(self.quantified())
        return items[0] if len(items) == 1 else _Seq(tuple(items))

    def quantified(self) -> _Node:
        atom = self.atom()
        char = self.peek()
        if char is None or char not in "*+?{":
            return atom
        if char == "{" and not self._is_counted():
            return atom
        if isinstance(atom, _Anchor):
            raise self.fail("nothing to repeat")
        low, high = self.quantifier()
        if self.peek() == "?":
            self.take()  # lazy: the same set of full matches
        if ((char := self.peek()) is not None and char in "*+?") or self._is_counted():
            raise self.fail("multiple repeat")
        return _Repeat(atom, low, high)

    def _is_counted(self) -> bool:
        if self.peek() != "{":
            return False
        end = self.text.find("}", self.pos)
        inner = self.text[self.pos + 1 : end] if end > 0 else ""
        low, comma, high = inner.partition(",")
        # Python's reading: {m}, {m,}, {m,n}, {,n} and {,} repeat; anything else is literal.
        return (low.isdigit() or (comma != "" and low == "")) and (high == "" or high.isdigit())

    def quantifier(self) -> tuple[int, int | None]:
        char = self.take()
        if char == "*":
            return 0, None
        if char == "+":
            return 1, None
        if char == "?":
            return 0, 1
        end = self.text.index("}", self.pos)
        inner = self.text[self.pos : end]
        self.pos = end + 1
        low_text, comma, high_text = inner.partition(",")
        if len(low_text) > 4 or len(high_text) > 4:
            raise self.fail(f"repeat count {{{inner[:20]}}} is over the limit of {MAX_REPEAT}")
        low = int(low_text or "0")
        high = int(high_text) if high_text else (None if comma else low)
        if max(low, high or 0) > MAX_REPEAT:
            raise self.fail(f"repeat count {{{inner}}} is over the limit of {MAX_REPEAT}")
        if high is not None and high < low:
            raise self.fail(f"repeat count {{{inner}}}: min is over max")
        return low, high

    def atom(self) -> _Node:
        char = self.take()
        if char == "(":
            return self.group()
        if char == "[":
            return _Char(self.char_class())
        if char == ".":
            return _Char(lambda c: c != "\n")
        if char == "^":
            return _Anchor(at_start=True)
        if char == "$":
            return _Anchor(at_start=False)
        if char == "\\":
            return _Char(self.escape(in_class=False))
        if char in "*+?":
            self.pos -= 1
            raise self.fail("nothing to repeat")
        if char == ")":
            self.pos -= 1
            raise self.fail("unbalanced parenthesis")
        return _Char(_literal(char))

    def group(self) -> _Node:
        if self.text.startswith("?:", self.pos):
            self.pos += 2
        elif self.text.startswith("?P<", self.pos):
            end = self.text.find(">", self.pos)
            name = self.text[self.pos + 3 : end] if end > 0 else ""
            if not name.isidentifier():
                raise self.fail("bad group name")
            self.pos = end + 1
        elif self.peek() == "?":
            raise self.fail(
                "lookarounds, inline flags and other (?...) groups are not supported "
                "(use (...) or (?:...))"
            )
        node = self.alternation()
        if self.peek() != ")":
            raise self.fail("missing ), unterminated subpattern")
        self.take()
        return node

    def escape(self, in_class: bool) -> CharTest:
        if self.peek() is None:
            raise self.fail("bad escape (end of pattern)")
        char = self.take()
        if char in _CLASS_ESCAPES:
            return _CLASS_ESCAPES[char]
        if char in _CHAR_ESCAPES:
            return _literal(_CHAR_ESCAPES[char])
        if char in _SPECIAL or char in "-/ #&~\"'<>=!,:@%`;_" or (in_class and char == "^"):
            return _literal(char)
        raise self.fail(
            f"escape \\{char} is not supported (backreferences, \\b and the like); "
            "escape only punctuation"
        )

    def char_class(self) -> CharTest:
        negate = self.peek() == "^"
        if negate:
            self.take()
        tests: list[CharTest] = []
        first = True
        while True:
            char = self.peek()
            if char is None:
                raise self.fail("unterminated character set")
            if char == "]" and not first:
                self.take()
                break
            first = False
            start = self.class_item()
            if self.peek() == "-" and self.text[self.pos + 1 : self.pos + 2] not in ("]", ""):
                self.take()
                end = self.class_item()
                if not (isinstance(start, str) and isinstance(end, str)) or end < start:
                    raise self.fail("bad character range")
                tests.append(_between(start, end))
            else:
                tests.append(_literal(start) if isinstance(start, str) else start)
        found = tuple(tests)
        if negate:
            return lambda c: not any(t(c) for t in found)
        return lambda c: any(t(c) for t in found)

    def class_item(self) -> str | CharTest:
        """A single character (may start a range) or a class escape like ``\\d``."""
        char = self.take()
        if char != "\\":
            return char
        if self.peek() is None:
            raise self.fail("bad escape (end of pattern)")
        nxt = self.peek()
        if nxt in _CLASS_ESCAPES:
            self.take()
            return _CLASS_ESCAPES[nxt]
        if nxt in _CHAR_ESCAPES:
            self.take()
            return _CHAR_ESCAPES[nxt]
        self.escape(in_class=True)  # validates; the escaped character stands for itself
        return self.text[self.pos - 1]


def _literal(expected: str) -> CharTest:
    return lambda c: c == expected


def _between(low: str, high: str) -> CharTest:
    return lambda c: low <= c <= high


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
