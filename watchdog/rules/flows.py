"""Flow files (``version: 1``): a synthetic user journey of HTTP steps, with captures
(a login token) and assertions (status, body, latency), that the ``flow`` source runs
against a Worker's old and new version through the version-override header.

Read like a rules file: YAML with line numbers, pydantic validation, each problem as
``FILE:LINE key.path: message``. A rules file names its flow file relative to itself.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator

from watchdog.rules.fields import FILE_CONTEXT, Model, PositiveDuration
from watchdog.rules.parse import Parsed, Path_, _parse_yaml, _validation_problems, where

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
CAPTURE = re.compile(r"^(\$(\.[A-Za-z0-9_-]+)+|header:[A-Za-z0-9-]+)$")


class FlowRequest(Model):
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "GET"
    path: str = Field(pattern=r"^/")
    headers: dict[str, str] = Field(default_factory=dict)
    json_body: Any = Field(default=None, alias="json")


class FlowExpect(Model):
    status: tuple[int, ...] = (200,)
    body_contains: str | None = None
    max_latency: PositiveDuration | None = None


class FlowStep(Model):
    name: str = Field(min_length=1, max_length=100)
    request: FlowRequest
    expect: FlowExpect = FlowExpect()
    # name -> "$.a.b" (a JSON field of the answer) or "header:X-Name"
    capture: dict[str, str] = Field(default_factory=dict)

    @field_validator("capture")
    @classmethod
    def _captures(cls, capture: dict[str, str]) -> dict[str, str]:
        for name, spec in capture.items():
            if not CAPTURE.match(spec):
                raise ValueError(
                    f"capture {name!r}: expected '$.field.path' or 'header:Name', got {spec!r}"
                )
        return capture


class FlowFile(Model):
    version: Literal[1]
    # The response header the Worker sets from its version metadata binding: how a run
    # knows which version answered (an override that cannot apply is silently ignored).
    version_header: str = Field(min_length=1)
    steps: tuple[FlowStep, ...] = Field(min_length=1)


def load_flow(path: Path) -> tuple[FlowFile | None, list[str]]:
    """The flow file, or every problem as ``FILE:LINE key.path: message``."""
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None, [f"{file}:0 (top level): no such flow file"]
    except (OSError, UnicodeDecodeError) as exc:
        return None, [f"{file}:0 (top level): cannot read: {exc}"]
    data, marks, problems = _parse_yaml(text, file)
    if problems:
        return None, problems
    if not isinstance(data, dict):
        return None, [f"{file}:1 (top level): expected a mapping with version: 1"]
    try:
        flow = FlowFile.model_validate(data, context=FILE_CONTEXT)
    except ValidationError as exc:
        return None, _validation_problems(exc, data, marks)
    problems = [
        f"{file}:{marks.line_of(('steps', index, 'request'))} steps[{index}].request: "
        f"{{{{{name}}}}} is not captured by an earlier step"
        for index, name in _unknown_placeholders(flow)
    ]
    return (None, problems) if problems else (flow, [])


def _unknown_placeholders(flow: FlowFile) -> list[tuple[int, str]]:
    """``(step index, name)`` of each ``{{name}}`` no earlier step captures."""
    known: set[str] = set()
    found = []
    for index, step in enumerate(flow.steps):
        req = step.request
        text = " ".join([req.path, *req.headers.values(), repr(req.json_body)])
        found += [(index, name) for name in PLACEHOLDER.findall(text) if name not in known]
        known |= set(step.capture)
    return found


def resolve_flow_sources(
    sources: dict[str, Any], origin: Mapping[tuple[str, str], tuple[Parsed, Path_]]
) -> list[str]:
    """Each ``flow`` source's file made absolute (relative to its rules file) and
    checked; the problems found, each naming where."""
    problems: list[str] = []
    for name, spec in list(sources.items()):
        if getattr(spec, "type", None) != "flow":
            continue
        item, path = origin[("sources", name)]
        file = Path(spec.file)
        if not file.is_absolute():
            file = Path(item.file).parent / file
        _, found = load_flow(file)
        if found:
            problems.append(f"{where(item, (*path, 'file'))}: the flow file has problems:")
            problems.extend(f"  {p}" for p in found)
        sources[name] = spec.model_copy(update={"file": str(file)})
    return problems
