"""Source types by the rules file's ``type:`` key: one dict, one builder."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from watchdog.errors import RuleError
from watchdog.rules.model import (
    AlertmanagerSourceSpec,
    CloudflareSourceSpec,
    CloudflareTailSourceSpec,
    FlowSourceSpec,
    ProbeSourceSpec,
    PrometheusSourceSpec,
    ScrapeSourceSpec,
    SourceSpec,
)
from watchdog.sources.alertmanager import AlertmanagerSource
from watchdog.sources.base import Source, SourceDeps
from watchdog.sources.cloudflare import CloudflareSource
from watchdog.sources.cloudflare_tail import CloudflareTailSource
from watchdog.sources.cloudflare_versions import CloudflareVersionsSource
from watchdog.sources.flow import FlowSource
from watchdog.sources.probe import ProbeSource
from watchdog.sources.prometheus import PrometheusSource
from watchdog.sources.scrape import ScrapeSource

SourceFactory = Callable[[str, SourceSpec, SourceDeps], Source]
_Spec = TypeVar("_Spec")


def _expect(name: str, spec: SourceSpec, kind: type[_Spec]) -> _Spec:
    if not isinstance(spec, kind):
        raise RuleError([f"sources.{name}: expected a {kind.__name__}, got type {spec.type!r}"])
    return spec


def _prometheus(name: str, spec: SourceSpec, deps: SourceDeps) -> Source:
    return PrometheusSource(name, _expect(name, spec, PrometheusSourceSpec), deps)


def _scrape(name: str, spec: SourceSpec, deps: SourceDeps) -> Source:
    return ScrapeSource(name, _expect(name, spec, ScrapeSourceSpec), deps)


def _probe(name: str, spec: SourceSpec, deps: SourceDeps) -> Source:
    return ProbeSource(name, _expect(name, spec, ProbeSourceSpec), deps)


def _cloudflare(name: str, spec: SourceSpec, deps: SourceDeps) -> Source:
    cf = _expect(name, spec, CloudflareSourceSpec)
    if cf.mode == "versions":
        return CloudflareVersionsSource(name, cf, deps)
    return CloudflareSource(name, cf, deps)


def _cloudflare_tail(name: str, spec: SourceSpec, deps: SourceDeps) -> Source:
    return CloudflareTailSource(name, _expect(name, spec, CloudflareTailSourceSpec), deps)


def _flow(name: str, spec: SourceSpec, deps: SourceDeps) -> Source:
    return FlowSource(name, _expect(name, spec, FlowSourceSpec), deps)


def _alertmanager(name: str, spec: SourceSpec, deps: SourceDeps) -> Source:
    return AlertmanagerSource(name, _expect(name, spec, AlertmanagerSourceSpec), deps)


SOURCE_TYPES: dict[str, SourceFactory] = {
    "prometheus": _prometheus,
    "scrape": _scrape,
    "probe": _probe,
    "cloudflare": _cloudflare,
    "cloudflare-tail": _cloudflare_tail,
    "alertmanager": _alertmanager,
    "flow": _flow,
}


def build_source(name: str, spec: SourceSpec, deps: SourceDeps) -> Source:
    """The source for ``sources.<name>``. Raises ``RuleError`` for an unknown type."""
    factory = SOURCE_TYPES.get(spec.type)
    if factory is None:
        known = ", ".join(SOURCE_TYPES)
        raise RuleError([f"sources.{name}.type: unknown {spec.type!r} (expected one of: {known})"])
    return factory(name, spec, deps)
