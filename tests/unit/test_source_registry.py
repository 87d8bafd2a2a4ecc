"""The source registry: ``type:`` → source class."""

from __future__ import annotations

import httpx
import pytest

from watchdog.clock import FakeClock
from watchdog.errors import RuleError
from watchdog.rules.model import CloudflareSourceSpec, ProbeSourceSpec, PrometheusSourceSpec
from watchdog.sources.base import SourceDeps
from watchdog.sources.cloudflare import CloudflareSource
from watchdog.sources.probe import ProbeSource
from watchdog.sources.prometheus import PrometheusSource
from watchdog.sources.registry import SOURCE_TYPES, build_source


async def test_each_type_builds_its_source() -> None:
    """prometheus, probe and cloudflare specs build their classes, named as in the file."""
    async with httpx.AsyncClient() as http:
        deps = SourceDeps(http=http, clock=FakeClock())
        prom = build_source("p", PrometheusSourceSpec(type="prometheus", url="http://x"), deps)
        probe = build_source("h", ProbeSourceSpec(type="probe", url="http://x/health"), deps)
        cf = build_source("c", CloudflareSourceSpec(type="cloudflare", script="w"), deps)
    assert isinstance(prom, PrometheusSource)
    assert isinstance(probe, ProbeSource)
    assert isinstance(cf, CloudflareSource)
    assert (prom.name, probe.name, cf.name) == ("p", "h", "c")


def test_registry_covers_every_rules_type() -> None:
    """Every ``type:`` the rules format accepts has a factory."""
    from watchdog.rules.model import SOURCE_TYPES as RULE_TYPES

    assert set(SOURCE_TYPES) == set(RULE_TYPES)


async def test_unknown_type_is_a_rule_error() -> None:
    """A spec whose type has no factory is a RuleError naming the known types."""
    good = PrometheusSourceSpec(type="prometheus", url="http://x")
    spec = good.model_copy(update={"type": "promethus"})  # past validation, as a typo would be
    async with httpx.AsyncClient() as http:
        with pytest.raises(RuleError, match="expected one of: prometheus, scrape"):
            build_source("p", spec, SourceDeps(http=http, clock=FakeClock()))
