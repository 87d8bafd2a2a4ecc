"""Load rules files: YAML with line numbers, pydantic validation, cross-references.

Every problem found is reported, each as ``FILE:LINE key.path: message``, the way
``promtool check rules`` reports. A directory's ``*.yaml``/``*.yml`` files merge into
one ``RuleSet``; a name defined twice is an error that names both places.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from watchdog.errors import RuleError
from watchdog.rules.model import (
    FILE_CONTEXT,
    IMPLICIT_FIELDS,
    NAMED_SECTIONS,
    NOTIFIER_TYPES,
    PURGE_TYPES,
    SINGLETON_SECTIONS,
    SOURCE_TYPES,
    TARGET_TYPES,
    AfterRollback,
    Correlation,
    Defaults,
    EscalationLevel,
    Guards,
    NotifierSpec,
    PurgeSpec,
    RulesFile,
    RuleSpec,
    Severity,
    SeverityPolicy,
    SignalSpec,
    SilencePolicy,
    SourceSpec,
    TargetSpec,
    Threshold,
    runbook_severities,
)
from watchdog.units import Unit, threshold_problem

Path_ = tuple[str | int, ...]

# Values a file may hold once its aliases are expanded: a large rules file has a few
# tens of thousands; an alias bomb ("billion laughs") has billions.
MAX_VALUES = 200_000
# What PyYAML's safe constructor raises for a tag it refuses or a tagged scalar it
# cannot read (``!!bool maybe`` is a KeyError, ``!!timestamp nope`` an AttributeError).
_SCALAR_ERRORS = (yaml.YAMLError, ValueError, TypeError, KeyError, AttributeError, OverflowError)


@dataclass(frozen=True, slots=True)
class Located:
    """Where a key path sits: file and 1-based line."""

    file: str
    line: int


@dataclass(frozen=True)
class ResolvedSignal:
    """A signal with its source and unit settled: what samplers and the evaluator use."""

    name: str
    source_name: str
    source: SourceSpec
    spec: SignalSpec
    unit: Unit
    interval: float


@dataclass(frozen=True)
class RuleSet:
    """All rules files merged and checked. Immutable: a reload builds a new one."""

    sources: Mapping[str, SourceSpec]
    signals: Mapping[str, ResolvedSignal]
    targets: Mapping[str, TargetSpec]
    purges: Mapping[str, PurgeSpec]
    notifiers: Mapping[str, NotifierSpec]
    rules: tuple[RuleSpec, ...]
    severities: Mapping[Severity, SeverityPolicy]
    notify: tuple[str, ...]
    after_rollback: AfterRollback
    escalation: tuple[EscalationLevel, ...]
    correlation: Correlation
    guards: Guards
    defaults: Defaults
    silence: SilencePolicy
    files: tuple[str, ...] = ()
    summaries: Mapping[str, str] = field(default_factory=dict)

    def rule(self, name: str) -> RuleSpec:
        for rule in self.rules:
            if rule.name == name:
                return rule
        raise KeyError(name)

    def blind_after(self, rule: RuleSpec) -> float:
        return rule.blind_after if rule.blind_after is not None else self.defaults.blind_after


# --- YAML with locations ---------------------------------------------------------------


class _TooManyValuesError(Exception):
    """Raised out of ``_construct`` when a file expands past ``MAX_VALUES``."""


class _Marks:
    def __init__(self, file: str) -> None:
        self.file = file
        self.lines: dict[Path_, int] = {}
        self.values = 0
        self.open: set[int] = set()  # collections being built (an alias to one is a loop)

    def line_of(self, path: Path_) -> int:
        """The line of the deepest known prefix of ``path``."""
        for end in range(len(path), -1, -1):
            line = self.lines.get(path[:end])
            if line is not None:
                return line
        return 1


def _construct(node: yaml.Node, path: Path_, marks: _Marks, problems: list[str]) -> Any:
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
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_object(node, deep=True)
    except _SCALAR_ERRORS as exc:
        why = exc.problem if isinstance(exc, yaml.MarkedYAMLError) else "not a valid value"
        tag = str(node.tag).replace("tag:yaml.org,2002:", "!!")
        problems.append(
            f"{marks.file}:{node.start_mark.line + 1} {_dotted(path)}: cannot read "
            f"{node.value!r:.40} tagged {tag}: {why}"
        )
        return None
    finally:
        loader.dispose()


def _construct_collection(
    node: yaml.MappingNode | yaml.SequenceNode, path: Path_, marks: _Marks, problems: list[str]
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


def _parse_yaml(text: str, file: str) -> tuple[Any, _Marks, list[str]]:
    marks = _Marks(file)
    problems: list[str] = []
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        return None, marks, [f"{file}:{line} (top level): invalid YAML: {exc.problem}"]
    except yaml.YAMLError as exc:
        return None, marks, [f"{file}:1 (top level): invalid YAML: {exc}"]
    except RecursionError:
        return None, marks, [f"{file}:1 (top level): invalid YAML: nested too deeply"]
    if node is None:
        return None, marks, [f"{file}:1 (top level): the file is empty (expected version: 1)"]
    try:
        return _construct(node, (), marks, problems), marks, problems
    except RecursionError:
        return None, marks, [f"{file}:1 (top level): invalid YAML: nested too deeply"]
    except _TooManyValuesError:
        return (
            None,
            marks,
            [
                f"{file}:1 (top level): over {MAX_VALUES} values once aliases are expanded "
                "(an alias bomb?)"
            ],
        )


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


def _validation_problems(exc: ValidationError, data: Any, marks: _Marks) -> list[str]:
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


# --- loading and merging ---------------------------------------------------------------


@dataclass
class _Parsed:
    file: str
    model: RulesFile
    marks: _Marks


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


def parse_file(path: Path) -> tuple[_Parsed | None, list[str]]:
    file = str(path)
    if path.exists() and not path.is_file():  # a FIFO or a device: reading could hang
        return None, [f"{file}:0 (top level): not a regular file"]
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None, [f"{file}:0 (top level): no such file"]
    except (OSError, UnicodeDecodeError) as exc:
        return None, [f"{file}:0 (top level): cannot read: {exc}"]
    return parse_text(text, file)


def parse_text(text: str, file: str) -> tuple[_Parsed | None, list[str]]:
    data, marks, problems = _parse_yaml(text, file)
    if problems:
        return None, problems
    if not isinstance(data, dict):
        return None, [f"{file}:{marks.line_of(())} (top level): expected a mapping with version: 1"]
    try:
        model = RulesFile.model_validate(data, context=FILE_CONTEXT)
    except ValidationError as exc:
        return None, _validation_problems(exc, data, marks)
    return _Parsed(file, model, marks), []


def load_rules(paths: Iterable[str | Path]) -> RuleSet:
    """Load and merge rules files; raise ``RuleError`` listing every problem."""
    files = rule_files(paths)
    if not files:
        raise RuleError(["(no files): no rules files found (expected *.yaml or *.yml)"])
    parsed: list[_Parsed] = []
    problems: list[str] = []
    for path in files:
        result, found = parse_file(path)
        problems.extend(found)
        if result is not None:
            parsed.append(result)
    if problems:
        raise RuleError(problems)
    ruleset, problems = _merge(parsed)
    if problems:
        raise RuleError(problems)
    return ruleset


def _where(parsed: _Parsed, path: Path_) -> str:
    return f"{parsed.file}:{parsed.marks.line_of(path)} {_dotted(path)}"


def _merge(parsed: list[_Parsed]) -> tuple[RuleSet, list[str]]:
    problems: list[str] = []
    named: dict[str, dict[str, Any]] = {section: {} for section in NAMED_SECTIONS}
    origin: dict[tuple[str, str], tuple[_Parsed, Path_]] = {}
    singletons: dict[str, Any] = {}
    singleton_origin: dict[str, _Parsed] = {}
    rules: list[tuple[RuleSpec, _Parsed, Path_]] = []
    rule_origin: dict[str, tuple[_Parsed, Path_]] = {}

    for item in parsed:
        for section in NAMED_SECTIONS:
            for name, spec in getattr(item.model, section).items():
                path: Path_ = (section, name)
                if name in named[section]:
                    first, first_path = origin[(section, name)]
                    problems.append(
                        f"{_where(item, path)}: duplicate name (first defined at "
                        f"{first.file}:{first.marks.line_of(first_path)})"
                    )
                    continue
                named[section][name] = spec
                origin[(section, name)] = (item, path)
        for section in SINGLETON_SECTIONS:
            value = getattr(item.model, section)
            if value is None:
                continue
            if section in singletons:
                first = singleton_origin[section]
                problems.append(
                    f"{_where(item, (section,))}: defined again (first at "
                    f"{first.file}:{first.marks.line_of((section,))}); give it in one file"
                )
                continue
            singletons[section] = value
            singleton_origin[section] = item
        for index, rule in enumerate(item.model.rules):
            path = ("rules", index)
            if rule.name in rule_origin:
                first, first_path = rule_origin[rule.name]
                problems.append(
                    f"{_where(item, (*path, 'name'))}: duplicate rule name {rule.name!r} "
                    f"(first at {first.file}:{first.marks.line_of(first_path)})"
                )
                continue
            rule_origin[rule.name] = (item, path)
            rules.append((rule, item, path))

    defaults: Defaults = singletons.get("defaults") or Defaults()
    sources: dict[str, SourceSpec] = named["sources"]
    signals: dict[str, ResolvedSignal] = {}
    for name, spec in named["signals"].items():
        item, path = origin[("signals", name)]
        resolved, found = _resolve_signal(name, spec, sources, defaults, item, path)
        problems.extend(found)
        if resolved is not None:
            signals[name] = resolved

    targets: dict[str, TargetSpec] = named["targets"]
    purges: dict[str, PurgeSpec] = named["purges"]
    notifiers: dict[str, NotifierSpec] = named["notifiers"]

    def need(
        names: Iterable[str], pool: Mapping[str, Any], what: str, item: _Parsed, path: Path_
    ) -> None:
        for index, name in enumerate(names):
            if name not in pool:
                known = ", ".join(sorted(pool)) or "none defined"
                problems.append(
                    f"{_where(item, (*path, index))}: unknown {what} {name!r} "
                    f"(expected one of: {known})"
                )

    for name, target in targets.items():
        item, path = origin[("targets", name)]
        need(target.purge, purges, "purge", item, (*path, "purge"))

    for rule, item, path in rules:
        signal = _implicit_signal(rule.signal, signals, sources, defaults)
        if signal is None:
            known = ", ".join(sorted(signals)) or "none defined"
            problems.append(
                f"{_where(item, (*path, 'signal'))}: unknown signal {rule.signal!r} "
                f"(expected one of: {known})"
            )
        else:
            signals.setdefault(signal.name, signal)
            threshold = rule.threshold
            problem = (
                None
                if rule.regression is not None or rule.burn_rate is not None
                else _threshold_problem(rule.comparison, threshold, signal)
            )
            if problem is not None:
                problems.append(f"{_where(item, (*path, rule.comparison))}: {problem}")
            if rule.min_requests > 0 and not reports_traffic(signal):
                # Silently ignoring min_requests would act on too little traffic.
                problems.append(
                    f"{_where(item, (*path, 'min_requests'))}: signal {signal.name!r} does not "
                    "report its traffic (give the prometheus signal a requests_query, or use "
                    "a scrape error_ratio/quantile or cloudflare error_rate signal)"
                )
            keys = ("confidence", "regression", "burn_rate")
            key = next((k for k in keys if getattr(rule, k) is not None), None)
            if key is not None and not counts_errors(signal):
                problems.append(
                    f"{_where(item, (*path, key))}: signal {signal.name!r} does not "
                    "count errors and requests (use a prometheus errors_query/requests_query, "
                    "a scrape error_ratio or a cloudflare error_rate signal)"
                )
        need(rule.rollback, targets, "target", item, (*path, "rollback"))
        if rule.notify is not None:
            need(rule.notify, notifiers, "notifier", item, (*path, "notify"))

    after: AfterRollback = singletons.get("after_rollback") or AfterRollback()
    if "after_rollback" in singletons:
        item = singleton_origin["after_rollback"]
        need(after.purge, purges, "purge", item, ("after_rollback", "purge"))
        for index, check in enumerate(after.verify):
            signal = _implicit_signal(check.signal, signals, sources, defaults)
            where = _where(item, ("after_rollback", "verify", index, "signal"))
            if signal is None:
                problems.append(f"{where}: unknown signal {check.signal!r}")
                continue
            signals.setdefault(signal.name, signal)
            if check.below is not None:
                problem = _threshold_problem("below", check.below, signal)
                if problem is not None:
                    at = _where(item, ("after_rollback", "verify", index, "below"))
                    problems.append(f"{at}: {problem}")
    notify: tuple[str, ...] = singletons.get("notify") or tuple(notifiers)
    if "notify" in singletons:
        need(notify, notifiers, "notifier", singleton_origin["notify"], ("notify",))
    escalation: tuple[EscalationLevel, ...] = singletons.get("escalation") or ()
    if "escalation" in singletons:
        item = singleton_origin["escalation"]
        for index, level in enumerate(escalation):
            need(level.notify, notifiers, "notifier", item, ("escalation", index, "notify"))
    severities = dict(runbook_severities())
    severities.update(singletons.get("severities") or {})

    summaries = {
        p.file: f"{len(p.model.rules)} rules, {len(p.model.signals)} signals, "
        f"{len(p.model.sources)} sources, {len(p.model.targets)} targets"
        for p in parsed
    }
    ruleset = RuleSet(
        sources=sources,
        signals=signals,
        targets=targets,
        purges=purges,
        notifiers=notifiers,
        rules=tuple(rule for rule, _, _ in rules),
        severities=severities,
        notify=notify,
        after_rollback=after,
        escalation=escalation,
        correlation=singletons.get("correlation") or Correlation(),
        guards=singletons.get("guards") or Guards(),
        defaults=defaults,
        silence=singletons.get("silence") or SilencePolicy(),
        files=tuple(p.file for p in parsed),
        summaries=summaries,
    )
    return ruleset, problems


def reports_traffic(signal: ResolvedSignal) -> bool:
    """Whether samples of ``signal`` carry a request count (for ``min_requests``)."""
    spec = signal.spec
    if signal.source.type == "prometheus":
        return spec.requests_query is not None
    if signal.source.type == "scrape":
        return spec.kind in ("error_ratio", "quantile")
    if signal.source.type == "cloudflare":
        return spec.field in ("error_rate", "requests")
    return False


def counts_errors(signal: ResolvedSignal) -> bool:
    """Whether samples of ``signal`` carry both counts (for ``confidence``)."""
    spec = signal.spec
    if signal.source.type == "prometheus":
        return spec.errors_query is not None and spec.requests_query is not None
    if signal.source.type == "scrape":
        return spec.kind == "error_ratio"
    if signal.source.type == "cloudflare":
        return spec.field == "error_rate"
    return False


def _threshold_problem(comparison: str, threshold: Threshold, signal: ResolvedSignal) -> str | None:
    if not _units_fit(threshold.unit, signal.unit):
        return (
            f"threshold {threshold.text!r} is a {threshold.unit} but signal {signal.name!r} "
            f"is in {signal.unit}"
        )
    return threshold_problem(
        comparison, threshold.value, threshold.unit, threshold.text, signal.unit
    )


def _units_fit(threshold: Unit, signal: Unit) -> bool:
    # A bare number fits any signal (0.05 for a ratio, 5 for seconds); units must agree.
    return threshold == "number" or threshold == signal


def _implicit_signal(
    name: str,
    signals: Mapping[str, ResolvedSignal],
    sources: Mapping[str, SourceSpec],
    defaults: Defaults,
) -> ResolvedSignal | None:
    """``health.up`` names field ``up`` of probe source ``health`` without a signals entry."""
    if name in signals:
        return signals[name]
    source_name, _, field_name = name.rpartition(".")
    source = sources.get(source_name)
    if source is None:
        return None
    fields = IMPLICIT_FIELDS.get(source.type, {})
    if field_name not in fields:
        return None
    spec = SignalSpec(source=source_name, field=field_name)
    interval = source.interval if source.interval is not None else defaults.interval
    return ResolvedSignal(name, source_name, source, spec, fields[field_name], interval)


_SCRAPE_UNITS: dict[str, Unit] = {
    "error_ratio": "ratio",
    "quantile": "seconds",
    "gauge": "number",
    "rate": "number",
}


def _resolve_signal(
    name: str,
    spec: SignalSpec,
    sources: Mapping[str, SourceSpec],
    defaults: Defaults,
    item: _Parsed,
    path: Path_,
) -> tuple[ResolvedSignal | None, list[str]]:
    source = sources.get(spec.source)
    if source is None:
        known = ", ".join(sorted(sources)) or "none defined"
        return None, [
            f"{_where(item, (*path, 'source'))}: unknown source {spec.source!r} "
            f"(expected one of: {known})"
        ]
    problems: list[str] = []

    def require(key: str, why: str) -> None:
        if getattr(spec, key) is None:
            problems.append(f"{_where(item, path)}.{key}: missing required key ({why})")

    def forbid(*keys: str) -> None:
        for key in keys:
            if key in spec.model_fields_set:
                problems.append(
                    f"{_where(item, (*path, key))}: does not apply to a {source.type} source"
                )

    unit: Unit = spec.unit or "number"
    if source.type == "prometheus":
        if spec.errors_query is None:
            require("query", "a PromQL expression for a prometheus source")
        elif spec.query is not None:
            problems.append(
                f"{_where(item, (*path, 'errors_query'))}: give either query or "
                "errors_query + requests_query, not both"
            )
        else:
            require("requests_query", "errors_query is divided by requests_query")
            if spec.unit not in (None, "ratio"):
                problems.append(
                    f"{_where(item, (*path, 'unit'))}: errors over requests is a ratio, "
                    f"not {spec.unit}"
                )
            unit = "ratio"
        forbid("kind", "metric", "labels", "status_label", "error_status", "quantile", "field")
    elif source.type == "scrape":
        require("kind", "error_ratio, quantile, gauge or rate for a scrape source")
        require("metric", "the metric family to read")
        forbid("query", "errors_query", "requests_query", "reduce", "field")
        if spec.kind is not None and spec.unit is None:
            unit = _SCRAPE_UNITS[spec.kind]
    else:
        fields = IMPLICIT_FIELDS[source.type]
        forbid("query", "errors_query", "requests_query", "reduce", "kind", "metric", "labels")
        if spec.field is None or spec.field not in fields:
            got = f"unknown {spec.field!r}" if spec.field is not None else "missing required key"
            problems.append(
                f"{_where(item, (*path, 'field'))}: {got} (expected one of: {', '.join(fields)})"
            )
        elif spec.unit is None:
            unit = fields[spec.field]
    interval = spec.interval or source.interval or defaults.interval
    if problems:
        return None, problems
    return ResolvedSignal(name, spec.source, source, spec, unit, interval), []


def check_files(paths: Iterable[str | Path]) -> tuple[list[str], list[str]]:
    """For ``check rules``: (summary lines, problems). Each argument is one rule set,
    checked on its own: a file, or a directory whose files merge."""
    summaries: list[str] = []
    problems: list[str] = []
    for argument in paths:
        parsed: list[_Parsed] = []
        for path in rule_files([argument]):
            result, found = parse_file(path)
            problems.extend(found)
            if result is not None:
                parsed.append(result)
        if not parsed:
            continue
        ruleset, found = _merge(parsed)
        problems.extend(found)
        for file in ruleset.files:
            if not any(p.startswith(f"{file}:") for p in found):
                summaries.append(f"{file}: SUCCESS: {ruleset.summaries[file]}")
    return summaries, problems
