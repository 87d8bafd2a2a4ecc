"""Read one rules file: YAML with line numbers for every key, pydantic validation, and
each problem as ``FILE:LINE key.path: message`` (the way ``promtool check rules`` reports)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml
from pydantic import ValidationError

from watchdog.rules.fields import FILE_CONTEXT
from watchdog.rules.model import SOURCE_TYPES, RulesFile
from watchdog.rules.response import NOTIFIER_TYPES, PURGE_TYPES, TARGET_TYPES

Path_ = tuple[str | int, ...]

# Values a file may hold once its aliases are expanded: a large rules file has a few
# tens of thousands; an alias bomb ("billion laughs") has billions.
MAX_VALUES = 200_000
# What PyYAML's safe constructor raises for a tag it refuses or a tagged scalar it
# cannot read (``!!bool maybe`` is a KeyError, ``!!timestamp nope`` an AttributeError).
_SCALAR_ERRORS = (yaml.YAMLError, ValueError, TypeError, KeyError, AttributeError, OverflowError)


# --- YAML with locations ---------------------------------------------------------------


class _TooManyValuesError(Exception):
    """Raised out of ``_construct`` when a file expands past ``MAX_VALUES``."""


class Marks:
    def __init__(self, file: str) -> None:
        self.file = file
        self.lines: dict[Path_, int] = {}
        self.values = 0
        self.open: set[int] = set()  # collections being built (an alias to one is a loop)
        # One constructor for the file's scalars (one each cost more than the parse).
        self.scalars = yaml.SafeLoader("")

        # After ``split_items``: the lines inside each rules item, relative to the line
        # of its '-' (``bases``, 0-based), so that a reload that parses one edited rule
        # shifts the items after it by their base alone.
        self.bases: list[int] = []
        self.items: list[dict[Path_, int]] = []
        self.retried = False  # read by the pure-Python reader: libyaml refused the text

    def line_of(self, path: Path_) -> int:
        """The line of the deepest known prefix of ``path``."""
        if len(path) >= 2 and path[0] == "rules" and self.items:
            index = path[1]
            if isinstance(index, int) and 0 <= index < len(self.items):
                inside = self.items[index]
                for end in range(len(path), 1, -1):
                    line = inside.get(path[2:end])
                    if line is not None:
                        return self.bases[index] + line
        for end in range(len(path), -1, -1):
            line = self.lines.get(path[:end])
            if line is not None:
                return line
        return 1

    def split_items(self, prefix: Path_, bases: list[int]) -> None:
        """Move the lines under ``prefix + (index,)`` to per-item maps (see ``items``)."""
        depth = len(prefix)
        items: list[dict[Path_, int]] = [{} for _ in bases]
        top: dict[Path_, int] = {}
        for path, line in self.lines.items():
            if len(path) > depth and path[:depth] == prefix:
                index = path[depth]
                if isinstance(index, int):
                    items[index][path[depth + 1 :]] = line - bases[index]
                    continue
            top[path] = line
        self.lines, self.bases, self.items = top, bases, items

    def all_lines(self) -> dict[Path_, int]:
        """Every path's line, items included (what a test compares)."""
        out = dict(self.lines)
        for index, (base, inside) in enumerate(zip(self.bases, self.items, strict=True)):
            out.update({("rules", index, *path): base + line for path, line in inside.items()})
        return out


def _construct(node: yaml.Node, path: Path_, marks: Marks, problems: list[str]) -> Any:
    marks.lines.setdefault(path, node.start_mark.line + 1)
    marks.values += 1
    if marks.values > MAX_VALUES:
        raise _TooManyValuesError
    if isinstance(node, yaml.MappingNode | yaml.SequenceNode):
        if id(node) in marks.open:
            problems.append(
                f"{marks.file}:{node.start_mark.line + 1} {_dotted(path)}: "
                "an alias to a collection that contains it (a loop)"
            )
            return None
        marks.open.add(id(node))
        try:
            return _construct_collection(node, path, marks, problems)
        finally:
            marks.open.discard(id(node))
    try:
        return marks.scalars.construct_object(node, deep=True)
    except _SCALAR_ERRORS as exc:
        marks.scalars.recursive_objects.pop(node, None)  # left there by the failure
        why = exc.problem if isinstance(exc, yaml.MarkedYAMLError) else "not a valid value"
        tag = str(node.tag).replace("tag:yaml.org,2002:", "!!")
        problems.append(
            f"{marks.file}:{node.start_mark.line + 1} {_dotted(path)}: cannot read "
            f"{node.value!r:.40} tagged {tag}: {why}"
        )
        return None


def _construct_collection(
    node: yaml.MappingNode | yaml.SequenceNode, path: Path_, marks: Marks, problems: list[str]
) -> Any:
    if isinstance(node, yaml.MappingNode):
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                problems.append(
                    f"{marks.file}:{key_node.start_mark.line + 1} {_dotted(path)}: "
                    "keys must be plain strings"
                )
                continue
            key = str(key_node.value)
            child = (*path, key)
            if key in result:
                problems.append(
                    f"{marks.file}:{key_node.start_mark.line + 1} {_dotted(child)}: "
                    f"duplicate key (first at line {marks.lines[child]})"
                )
                continue
            marks.lines[child] = key_node.start_mark.line + 1
            result[key] = _construct(value_node, child, marks, problems)
        return result
    return [
        _construct(item, (*path, index), marks, problems) for index, item in enumerate(node.value)
    ]


def _dotted(path: Path_) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def _compose(text: str, marks: Marks, retry: bool) -> yaml.Node | None:
    """The node tree, read by libyaml when PyYAML has it (ten times faster: a reload of
    10,000 rules is mostly this). A file libyaml refuses is read again by the pure-Python
    reader (unless not to ``retry``), so that the problem is worded the same either way."""
    fast = getattr(yaml, "CSafeLoader", None)
    if fast is not None:
        try:
            node: yaml.Node | None = yaml.compose(text, Loader=fast)
        except yaml.YAMLError:
            if not retry:
                raise
        else:
            return node
        marks.retried = True
    return yaml.compose(text, Loader=yaml.SafeLoader)


def _parse_yaml(text: str, file: str) -> tuple[Any, Marks, list[str]]:
    _, data, marks, problems = read_yaml(text, file)
    return data, marks, problems


def read_yaml(
    text: str, file: str, retry: bool = True
) -> tuple[yaml.Node | None, Any, Marks, list[str]]:
    """The node tree (``None`` on a problem), its value, the lines and the problems."""
    marks = Marks(file)
    problems: list[str] = []
    try:
        node = _compose(text, marks, retry)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        return None, None, marks, [f"{file}:{line} (top level): invalid YAML: {exc.problem}"]
    except yaml.YAMLError as exc:
        return None, None, marks, [f"{file}:1 (top level): invalid YAML: {exc}"]
    except RecursionError:
        return None, None, marks, [f"{file}:1 (top level): invalid YAML: nested too deeply"]
    if node is None:
        empty = f"{file}:1 (top level): the file is empty (expected version: 1)"
        return None, None, marks, [empty]
    try:
        return node, _construct(node, (), marks, problems), marks, problems
    except RecursionError:
        return None, None, marks, [f"{file}:1 (top level): invalid YAML: nested too deeply"]
    except _TooManyValuesError:
        bomb = f"over {MAX_VALUES} values once aliases are expanded (an alias bomb?)"
        return None, None, marks, [f"{file}:1 (top level): {bomb}"]
    finally:  # the constructor remembers every node it built: let them go
        marks.scalars.constructed_objects.clear()
        marks.scalars.recursive_objects.clear()
        marks.scalars.dispose()


# --- pydantic errors to our messages ---------------------------------------------------

_EXPECTED_BY_SECTION = {
    "sources": SOURCE_TYPES,
    "targets": TARGET_TYPES,
    "purges": PURGE_TYPES,
    "notifiers": NOTIFIER_TYPES,
}


def _choices(text: str) -> str:
    parts = re.split(r",| or ", text)
    return ", ".join(part.strip().strip("'\"") for part in parts if part.strip())


def _data_path(loc: Sequence[str | int], data: Any) -> Path_:
    """Drop the parts pydantic adds (union tags, validator names) that are not in the data."""
    out: list[str | int] = []
    current = data
    for part in loc:
        if isinstance(current, dict) and part in current:
            out.append(part)
            current = current[part]
        elif isinstance(current, list) and isinstance(part, int) and part < len(current):
            out.append(part)
            current = current[part]
        elif isinstance(current, dict) and part == "for_" and "for" in current:
            out.append("for")
            current = current["for"]
        elif isinstance(part, str) and (
            "[" in part or (isinstance(current, dict) and current.get("type") == part)
        ):
            continue
        else:
            out.append(part)
            current = None
    return tuple(out)


def _message(error: Mapping[str, Any], path: Path_) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind == "union_tag_invalid":
        return f"unknown '{ctx.get('tag')}' (expected one of: {_choices(ctx['expected_tags'])})"
    if kind == "union_tag_not_found":
        expected = _EXPECTED_BY_SECTION.get(str(path[0]) if path else "", ())
        return "missing required key 'type'" + (
            f" (expected one of: {', '.join(expected)})" if expected else ""
        )
    if kind == "literal_error":
        return f"unknown {error['input']!r} (expected one of: {_choices(ctx['expected'])})"
    if kind == "missing":
        return "missing required key"
    if kind == "extra_forbidden":
        return "unknown key"
    if kind in ("value_error", "assertion_error"):
        return str(ctx.get("error", error["msg"]))
    if kind == "string_pattern_mismatch":
        return f"invalid name {error['input']!r} (letters, digits, '_', '.', '-')"
    return f"{error['msg'][0].lower()}{error['msg'][1:]}"


def _validation_problems(exc: ValidationError, data: Any, marks: Marks) -> list[str]:
    problems = []
    for error in exc.errors():
        path = _data_path(error["loc"], data)
        if error["type"] in ("union_tag_invalid", "union_tag_not_found"):
            path = (*path, "type")
        if error["type"] in ("missing", "union_tag_not_found") and path:
            line = marks.line_of(path[:-1])
        else:
            line = marks.line_of(path)
        problems.append(f"{marks.file}:{line} {_dotted(path)}: {_message(error, path)}")
    return problems


# --- one file ---------------------------------------------------------------------


@dataclass(frozen=True)
class Parsed:
    file: str
    model: RulesFile
    marks: Marks


def parse_text(text: str, file: str) -> tuple[Parsed | None, list[str]]:
    parsed, problems, _ = parse_tree(text, file)
    return parsed, problems


def parse_tree(text: str, file: str) -> tuple[Parsed | None, list[str], yaml.Node | None]:
    """``parse_text`` and the node tree it was read from (where each rule sits)."""
    node, data, marks, problems = read_yaml(text, file)
    if problems:
        return None, problems, None
    if not isinstance(data, dict):
        top = f"{file}:{marks.line_of(())} (top level): expected a mapping with version: 1"
        return None, [top], None
    try:
        model = RulesFile.model_validate(data, context=FILE_CONTEXT)
    except ValidationError as exc:
        return None, _validation_problems(exc, data, marks), None
    return Parsed(file, model, marks), [], node


def where(parsed: Parsed, path: Path_) -> str:
    return f"{parsed.file}:{parsed.marks.line_of(path)} {_dotted(path)}"
