"""An edited rules file read by parsing only what changed, onto its last good parse.

The new text is compared with the text of the file's last good parse. When everything
that changed lies inside one stretch of whole items of the top-level ``rules`` block
list, that stretch is parsed and validated on its own and spliced into the last parse:
the other rules keep their models and their lines (shifted when lines were added or
removed above them). When it lies wholly above the ``rules:`` key's line or below the
list, the file is parsed with the list's lines left blank and the rules kept. A splice
is tried only where it must agree with a full parse, and any problem sends the file to
a full parse (which words it):

- the stretch starts at an item's '-' (at the list's column) that is unchanged with the
  character after it: the reader reaches that entry exactly as before, since a block
  scalar, a plain scalar or a mapping above ends at that column;
- it ends where the next item's line (or the next top-level key's, or the text) starts,
  with the newline before it unchanged; read alone it must give whole items at that
  column, so every scalar, flow collection and mapping in it ends before that line;
- around the list: the ``rules:`` key's line, the list and the first character of the
  key after it are unchanged, and the key is read again at its line in the same block
  mapping: the list is then read as before, and ends where it ended;
- no document marker or directive in a stretch, no alias in the file (an anchor could
  feed one elsewhere), only '\\n' line breaks (offsets and lines must agree).
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from dataclasses import dataclass

import yaml
from pydantic import ValidationError

from watchdog.rules.fields import FILE_CONTEXT
from watchdog.rules.model import RulesFile, RuleSpec
from watchdog.rules.parse import MAX_VALUES, Marks, Parsed, Path_, read_yaml

# Line breaks YAML counts besides '\n', and a byte-order mark: offsets would miss lines.
_ODD = ("\r", "\x85", "\u2028", "\u2029", "\ufeff")
_DIRECTIVE = re.compile(r"^%", re.MULTILINE)  # %TAG changes how a stretch's tags read
_MARKER = re.compile(r"^(?:---|\.\.\.|%)", re.MULTILINE)  # a document ends or starts there
_SPACES = re.compile(" *")
_CHUNK = 4096  # texts are compared a chunk at a time (in C), then a character at a time


@dataclass(frozen=True)
class Layout:
    """Where the items of a good parse's top-level ``rules`` block list sit."""

    column: int  # of every item's '-'
    starts: tuple[int, ...]  # the offset of each item's '-' line
    end: int  # where the last item's stretch ends: the next top-level key's line, or the end
    values: int  # the file's values, held to MAX_VALUES
    key: int  # the offset of the ``rules:`` key's line
    key_line: int  # and that line (0-based)
    root: int  # the column of the top-level mapping


@dataclass(frozen=True)
class Last:
    """A file's last good parse: its text, what it gave, where its rules sit."""

    text: str
    parsed: Parsed
    layout: Layout | None


def layout_of(text: str, root: yaml.Node | None, marks: Marks) -> Layout | None:
    """Where a good parse's rules sit (and ``marks`` split by rule), or ``None`` when no
    splice may stand in for a parse of this text."""
    if not isinstance(root, yaml.MappingNode) or root.flow_style or not _plain(text):
        return None
    if marks.retried:  # a splice is read by libyaml alone, so the rest must have been
        return None
    if _DIRECTIVE.search(text) or ("&" in text and _shares_nodes(root)):
        return None
    keys = [key.value for key, _ in root.value]
    if "rules" not in keys:
        return None
    at = keys.index("rules")
    rules = root.value[at][1]
    if not isinstance(rules, yaml.SequenceNode) or rules.flow_style or not rules.value:
        return None
    lines = _line_starts(text)
    first = lines[rules.start_mark.line]
    column = _SPACES.match(text, first).end() - first  # type: ignore[union-attr]
    bases = _dash_lines(text, lines, rules.value, column)
    if bases is None or bases[0] != rules.start_mark.line:
        return None
    end = len(text) if at == len(keys) - 1 else lines[root.value[at + 1][0].start_mark.line]
    marks.split_items(("rules",), bases)
    key_line = root.value[at][0].start_mark.line
    starts = tuple(lines[base] for base in bases)
    root_column = root.start_mark.column
    return Layout(column, starts, end, marks.values, lines[key_line], key_line, root_column)


def splice(last: Last, text: str) -> Last | None:
    """``text`` read by parsing only what differs from ``last``'s text, or ``None`` when
    that cannot be known to give what a full parse gives."""
    layout = last.layout
    if layout is None or not _plain(text):
        return None
    old = last.text
    same_start = _common_prefix(old, text)
    changed_end = len(old) - _common_suffix(old, text, min(len(old), len(text)) - same_start)
    stretch = _stretch(layout, same_start, changed_end, len(old))
    if stretch is not None:
        return _splice_rules(last, layout, text, *stretch)
    return _splice_around(last, layout, text, same_start, changed_end)


def _stretch(
    layout: Layout, same_start: int, changed_end: int, size: int
) -> tuple[int, int] | None:
    """The old items (first, stop) whose stretch holds every change, if there is one."""
    # The last item whose '-' and the character after it are unchanged, before the change.
    first = bisect_right(layout.starts, same_start - layout.column - 2) - 1
    if first < 0:
        return None
    # The first item boundary at or after the change, with the newline before it unchanged.
    bounds = layout.starts[first + 1 :]
    after = bisect_left(bounds, changed_end + 1)
    if after < len(bounds):
        return first, first + 1 + after
    if layout.end >= changed_end + 1 or layout.end == size:
        return first, len(layout.starts)
    return None


def _splice_rules(last: Last, layout: Layout, text: str, first: int, stop: int) -> Last | None:
    """Old items first..stop-1 replaced by the stretch of ``text`` that holds them now."""
    start = layout.starts[first]
    old_end = layout.starts[stop] if stop < len(layout.starts) else layout.end
    delta = len(text) - len(last.text)
    piece = text[start : old_end + delta]
    if _MARKER.search(piece):
        return None
    read = _read_items(piece, layout.column, last.parsed.file)
    if read is None:
        return None
    rules, offsets, bases, items = read
    old = last.parsed.marks
    values = layout.values + sum(map(len, items)) - sum(map(len, old.items[first:stop]))
    if values > MAX_VALUES:
        return None  # the full parse words it
    shift = piece.count("\n") - last.text.count("\n", start, old_end)
    base = old.bases[first]
    marks = Marks(old.file)
    marks.values = values
    marks.lines = (  # a top-level key below the rules moved with them
        old.lines if not shift else {p: n + shift if n > base else n for p, n in old.lines.items()}
    )
    marks.bases = [*old.bases[:first], *(base + b for b in bases)]
    marks.bases += [b + shift for b in old.bases[stop:]]
    marks.items = [*old.items[:first], *items, *old.items[stop:]]
    model = last.parsed.model
    model = model.model_copy(update={"rules": (*model.rules[:first], *rules, *model.rules[stop:])})
    starts = (
        *layout.starts[:first],
        *(start + offset for offset in offsets),
        *(s + delta for s in layout.starts[stop:]),
    )
    moved = Layout(layout.column, starts, layout.end + delta, values, *_head(layout))
    return Last(text, Parsed(last.parsed.file, model, marks), moved)


def _head(layout: Layout) -> tuple[int, int, int]:
    return layout.key, layout.key_line, layout.root


def _splice_around(
    last: Last, layout: Layout, text: str, same_start: int, changed_end: int
) -> Last | None:
    """``text`` changed only above the ``rules:`` key's line or below the list: parsed
    with the list's lines left blank, and the rules kept."""
    old = last.text
    above = changed_end <= layout.key - 1
    if not above and not (layout.end < len(old) and same_start >= layout.end + 1):
        return None
    if _DIRECTIVE.search(text):
        return None
    delta = len(text) - len(old) if above else 0
    shift = text.count("\n") - old.count("\n") if above else 0
    blank = "\n" * old.count("\n", layout.starts[0], layout.end)
    blank = text[: layout.starts[0] + delta] + blank + text[layout.end + delta :]
    root, data, marks, problems = read_yaml(blank, last.parsed.file, retry=False)
    if problems or not isinstance(root, yaml.MappingNode) or not isinstance(data, dict):
        return None
    key_line = layout.key_line + shift
    if root.flow_style or root.start_mark.column != layout.root or data.get("rules", 0) is not None:
        return None
    if not any(k.value == "rules" and k.start_mark.line == key_line for k, _ in root.value):
        return None  # the list is not where it was, in the same mapping
    if "&" in blank and _shares_nodes(root):
        return None
    try:
        model = RulesFile.model_validate({**data, "rules": []}, context=FILE_CONTEXT)
    except ValidationError:
        return None
    old_marks = last.parsed.marks
    marks.values += sum(map(len, old_marks.items))  # the list's values for the blank's one
    if marks.values > MAX_VALUES:
        return None
    marks.bases = [base + shift for base in old_marks.bases]
    marks.items = old_marks.items
    model = model.model_copy(update={"rules": last.parsed.model.rules})
    starts = tuple(start + delta for start in layout.starts) if delta else layout.starts
    head = (layout.key + delta, key_line, layout.root)
    moved = Layout(layout.column, starts, layout.end + delta, marks.values, *head)
    return Last(text, Parsed(last.parsed.file, model, marks), moved)


def _read_items(
    piece: str, column: int, file: str
) -> tuple[tuple[RuleSpec, ...], list[int], list[int], list[dict[Path_, int]]] | None:
    """A stretch's rules, each item's offset and line (its '-') and lines within it."""
    root, data, marks, problems = read_yaml(piece, file, retry=False)
    if problems or not isinstance(root, yaml.SequenceNode) or not isinstance(data, list):
        return None
    if root.flow_style or root.start_mark.line != 0 or ("&" in piece and _shares_nodes(root)):
        return None
    lines = _line_starts(piece)
    bases = _dash_lines(piece, lines, root.value, column)
    if bases is None or bases[0] != 0:
        return None
    try:
        rules = tuple(RuleSpec.model_validate(item, context=FILE_CONTEXT) for item in data)
    except ValidationError:
        return None  # the full parse words it, with the file's lines
    marks.split_items((), bases)
    return rules, [lines[base] for base in bases], bases, marks.items


def _dash_lines(
    text: str, lines: list[int], items: list[yaml.Node], column: int
) -> list[int] | None:
    """Each item's '-' line: at or above where the item starts (past a comment, an
    anchor or a tag), below the previous item's."""
    dash = " " * column + "-"
    bases: list[int] = []
    floor = -1
    for item in items:
        line = item.start_mark.line
        while line > floor and not _is_dash(text, lines[line], dash):
            line -= 1
        if line <= floor:
            return None
        bases.append(line)
        floor = line
    return bases


def _is_dash(text: str, start: int, dash: str) -> bool:
    after = start + len(dash)
    return text.startswith(dash, start) and text[after : after + 1] in ("", " ", "\t", "\n")


def _plain(text: str) -> bool:
    return not any(odd in text for odd in _ODD)


def _line_starts(text: str) -> list[int]:
    starts = [0]
    starts.extend(match.end() for match in re.finditer("\n", text))
    return starts


def _shares_nodes(root: yaml.Node) -> bool:
    """Whether a node is reached twice (an alias)."""
    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            return True
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                stack += (key, value)
        elif isinstance(node, yaml.SequenceNode):
            stack += node.value
    return False


def _common_prefix(a: str, b: str) -> int:
    size = min(len(a), len(b))
    at = 0
    while at < size and a[at : at + _CHUNK] == b[at : at + _CHUNK]:
        at += _CHUNK
    while at < size and a[at] == b[at]:
        at += 1
    return min(at, size)


def _common_suffix(a: str, b: str, limit: int) -> int:
    """How many characters ``a`` and ``b`` end with in common, at most ``limit``."""
    la, lb = len(a), len(b)
    same = 0
    while (
        same + _CHUNK <= limit
        and a[la - same - _CHUNK : la - same] == b[lb - same - _CHUNK : lb - same]
    ):
        same += _CHUNK
    while same < limit and a[la - same - 1] == b[lb - same - 1]:
        same += 1
    return same
