"""The syntax of a silence matcher's regular expression (see ``safe_regex``): a parser
into a small tree, refusing what RE2 and Python do not share, with bounded sizes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

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
