"""Read rules files for a load or a reload: a file unchanged since its last good parse is
not parsed again, and a file edited inside its ``rules:`` list has only the edited rules
parsed (a reload of one edited 10,000-rule file was mostly the parse of 9,999 others).

The new text is compared with the text of the file's last good parse. When everything
that changed lies inside one stretch of whole items of the top-level ``rules`` block
list, that stretch is parsed and validated on its own and spliced into the last parse:
the other rules keep their models and their lines (shifted when lines were added or
removed above them). A splice is tried only where it must agree with a full parse, and
any problem in the stretch sends the file to a full parse (which words it):

- the stretch starts at an item's '-' (at the list's column) that is unchanged with the
  character after it: the reader reaches that entry exactly as before, since a block
  scalar, a plain scalar or a mapping above ends at that column;
- it ends where the next item's line (or the next top-level key's, or the text) starts,
  with the newline before it unchanged; read alone it must give whole items at that
  column, so every scalar, flow collection and mapping in it ends before that line;
- no document marker or directive in it, no alias in the file (an anchor in the stretch
  could feed one elsewhere), only '\\n' line breaks (offsets and lines must agree).
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import ValidationError

from watchdog.rules.fields import FILE_CONTEXT
from watchdog.rules.model import RuleSpec
from watchdog.rules.parse import MAX_VALUES, Marks, Parsed, Path_, parse_tree, read_yaml

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


@dataclass(frozen=True)
class Last:
    """A file's last good parse: its text, what it gave, where its rules sit."""

    text: str
    parsed: Parsed
    layout: Layout | None


# Per file, its last good parse (immutable): a reload that finds a file unchanged (a
# SIGHUP, the watch, one file edited among many) does not parse it again.
_LAST_PARSED: dict[str, Last] = {}


def rule_files(paths: Iterable[str | Path]) -> list[Path]:
    """Expand directories into their YAML files, sorted; keep files as given. In a
    directory only regular files count (a FIFO would hang the read, a dangling
    ``.#prod.yaml`` lock would stop the start); hidden and editor files are skipped."""
    out: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            out.extend(sorted(p for p in path.iterdir() if _is_rules_file(p)))
        else:
            out.append(path)
    return out


def _is_rules_file(path: Path) -> bool:
    name = path.name
    if name.startswith((".", "#")) or name.endswith(("~", ".swp")):
        return False
    return path.suffix in (".yaml", ".yml") and path.is_file()  # follows a ConfigMap link


def parse_file(path: Path) -> tuple[Parsed | None, list[str]]:
    file = str(path)
    if path.exists() and not path.is_file():  # a FIFO or a device: reading could hang
        return None, [f"{file}:0 (top level): not a regular file"]
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None, [f"{file}:0 (top level): no such file"]
    except (OSError, UnicodeDecodeError) as exc:
        return None, [f"{file}:0 (top level): cannot read: {exc}"]
    last = _LAST_PARSED.get(file)
    if last is not None and last.text == text:
        return last.parsed, []  # unchanged since the last reload: a parse is most of one
    spliced = splice(last, text) if last is not None else None
    if spliced is None:
        parsed, problems, root = parse_tree(text, file)
        if parsed is None:
            return None, problems
        spliced = Last(text, parsed, layout_of(text, root, parsed.marks))
    _LAST_PARSED[file] = spliced
    return spliced.parsed, []


def layout_of(text: str, root: yaml.Node | None, marks: Marks) -> Layout | None:
    """Where a good parse's rules sit (and ``marks`` split by rule), or ``None`` when no
    splice may stand in for a parse of this text."""
    if not isinstance(root, yaml.MappingNode) or root.flow_style or not _plain(text):
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
    return Layout(column, tuple(lines[base] for base in bases), end, marks.values)


def splice(last: Last, text: str) -> Last | None:
    """``text`` read by parsing only the rules items that differ from ``last``'s, or
    ``None`` when that cannot be known to give what a full parse gives."""
    layout = last.layout
    if layout is None or not _plain(text):
        return None
    stretch = _stretch(layout, last.text, text)
    if stretch is None:
        return None
    first, stop = stretch  # old items first..stop-1 are replaced
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
    moved = Layout(layout.column, starts, layout.end + delta, values)
    return Last(text, Parsed(last.parsed.file, model, marks), moved)


def _stretch(layout: Layout, old: str, new: str) -> tuple[int, int] | None:
    """The old items (first, stop) whose stretch holds every change, if there is one."""
    same_start = _common_prefix(old, new)
    same_end = _common_suffix(old, new, min(len(old), len(new)) - same_start)
    changed_end = len(old) - same_end
    # The last item whose '-' and the character after it are unchanged, before the change.
    first = bisect_right(layout.starts, same_start - layout.column - 2) - 1
    if first < 0:
        return None
    # The first item boundary at or after the change, with the newline before it unchanged.
    bounds = layout.starts[first + 1 :]
    after = bisect_left(bounds, changed_end + 1)
    if after < len(bounds):
        return first, first + 1 + after
    if layout.end >= changed_end + 1 or layout.end == len(old):
        return first, len(layout.starts)
    return None


def _read_items(
    piece: str, column: int, file: str
) -> tuple[tuple[RuleSpec, ...], list[int], list[int], list[dict[Path_, int]]] | None:
    """A stretch's rules, each item's offset and line (its '-') and lines within it."""
    root, data, marks, problems = read_yaml(piece, file)
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
