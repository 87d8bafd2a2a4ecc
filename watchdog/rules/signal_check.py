"""A signals entry resolved against its source: the keys it needs and must not have for
the source's type, and the unit its values come in."""

from __future__ import annotations

from collections.abc import Mapping

from watchdog.rules.model import IMPLICIT_FIELDS, Defaults, SignalSpec, SourceSpec
from watchdog.rules.parse import Parsed, Path_, where
from watchdog.rules.ruleset import ResolvedSignal
from watchdog.units import Unit

_SCRAPE_UNITS: dict[str, Unit] = {
    "error_ratio": "ratio",
    "quantile": "seconds",
    "gauge": "number",
    "rate": "number",
    "slow_ratio": "ratio",
}


def resolve_signal(
    name: str,
    spec: SignalSpec,
    sources: Mapping[str, SourceSpec],
    defaults: Defaults,
    item: Parsed,
    path: Path_,
) -> tuple[ResolvedSignal | None, list[str]]:
    """A signals entry with its source and unit settled, or the problems with it."""
    source = sources.get(spec.source)
    if source is None:
        known = ", ".join(sorted(sources)) or "none defined"
        return None, [
            f"{where(item, (*path, 'source'))}: unknown source {spec.source!r} "
            f"(expected one of: {known})"
        ]
    check = _SignalCheck(spec, source, item, path)
    if source.type == "prometheus":
        unit = check.prometheus()
    elif source.type == "scrape":
        unit = check.scrape()
    elif source.type == "alertmanager":
        unit = check.alertmanager()
    else:
        unit = check.implicit_field()
    interval = spec.interval or source.interval or defaults.interval
    if check.problems:
        return None, check.problems
    return ResolvedSignal(name, spec.source, source, spec, unit, interval), []


class _SignalCheck:
    """The keys a signal needs and must not have for its source's type, and its unit."""

    def __init__(self, spec: SignalSpec, source: SourceSpec, item: Parsed, path: Path_) -> None:
        self.spec = spec
        self.source = source
        self.item = item
        self.path = path
        self.problems: list[str] = []

    def require(self, key: str, why: str) -> None:
        if getattr(self.spec, key) is None:
            self.problems.append(
                f"{where(self.item, self.path)}.{key}: missing required key ({why})"
            )

    def forbid(self, *keys: str) -> None:
        for key in keys:
            if key in self.spec.model_fields_set:
                self.problems.append(
                    f"{where(self.item, (*self.path, key))}: does not apply to a "
                    f"{self.source.type} source"
                )

    def prometheus(self) -> Unit:
        spec = self.spec
        unit: Unit = spec.unit or "number"
        if spec.errors_query is None:
            self.require("query", "a PromQL expression for a prometheus source")
        elif spec.query is not None:
            self.problems.append(
                f"{where(self.item, (*self.path, 'errors_query'))}: give either query or "
                "errors_query + requests_query, not both"
            )
        else:
            self.require("requests_query", "errors_query is divided by requests_query")
            if spec.unit not in (None, "ratio"):
                self.problems.append(
                    f"{where(self.item, (*self.path, 'unit'))}: errors over requests is a "
                    f"ratio, not {spec.unit}"
                )
            unit = "ratio"
        self.forbid("kind", "metric", "labels", "status_label", "error_status", "quantile", "field")
        self.forbid("alertname", "slower_than")
        return unit

    def alertmanager(self) -> Unit:
        """The count of firing alerts named ``alertname`` whose labels match ``labels``."""
        self.require("alertname", "the name of the alert whose firing breaches")
        self.forbid("query", "errors_query", "requests_query", "reduce", "kind", "metric")
        self.forbid("status_label", "error_status", "quantile", "field")
        if self.spec.unit not in (None, "number"):
            self.problems.append(
                f"{where(self.item, (*self.path, 'unit'))}: a count of firing alerts is a "
                f"number, not {self.spec.unit}"
            )
        return "number"

    def scrape(self) -> Unit:
        spec = self.spec
        self.require("kind", "error_ratio, quantile, gauge, rate or slow_ratio for a scrape source")
        self.require("metric", "the metric family to read")
        self.forbid("query", "errors_query", "requests_query", "reduce", "field", "alertname")
        if spec.kind == "slow_ratio":
            self.require("slower_than", "the bucket bound a slow request exceeds (like 500ms)")
        elif "slower_than" in spec.model_fields_set:
            self.problems.append(
                f"{where(self.item, (*self.path, 'slower_than'))}: applies to kind slow_ratio only"
            )
        if spec.kind is not None and spec.unit is None:
            return _SCRAPE_UNITS[spec.kind]
        return spec.unit or "number"

    def implicit_field(self) -> Unit:
        """A probe or cloudflare signal: one of the source's named fields."""
        spec = self.spec
        fields = IMPLICIT_FIELDS[self.source.type]
        self.forbid("query", "errors_query", "requests_query", "reduce", "kind", "metric", "labels")
        self.forbid("alertname", "slower_than")
        if spec.field is None or spec.field not in fields:
            got = f"unknown {spec.field!r}" if spec.field is not None else "missing required key"
            self.problems.append(
                f"{where(self.item, (*self.path, 'field'))}: {got} "
                f"(expected one of: {', '.join(fields)})"
            )
        elif spec.unit is None:
            return fields[spec.field]
        return spec.unit or "number"
