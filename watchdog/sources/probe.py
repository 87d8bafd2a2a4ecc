"""The ``probe`` source: one HTTP GET of a health URL per call.

It gives two fields, chosen per signal by ``field``:

- ``up``: 1.0 when the status is in ``expect_status`` within ``timeout``, else 0.0.
  A failed probe is *evidence* that the site is down (value 0, with the reason in
  ``Sample.reason``), not missing evidence: the probe is the thing that measures
  reachability, so "could not reach it" is its answer.
- ``latency``: seconds until the full response, as measured by httpx
  (``Response.elapsed``). Only a probe that succeeded has one; otherwise the latency
  sample is an error, since a refused connection or an error page's speed says
  nothing about how fast the service answers.

Redirects follow the shared HTTP client's setting (httpx: not followed), so a 301
counts as down unless ``expect_status`` lists it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

import httpx

from watchdog.rules import ResolvedSignal
from watchdog.rules_model import IMPLICIT_FIELDS, ProbeSourceSpec
from watchdog.samples import Sample, SampleKind
from watchdog.sources import _transport
from watchdog.sources.base import SourceDeps

FIELDS = tuple(IMPLICIT_FIELDS["probe"])


@dataclass(frozen=True)
class ProbeResult:
    """One probe: ``latency_s`` is None when the probe failed; ``reason`` says why."""

    up: bool
    latency_s: float | None
    reason: str


class ProbeSource:
    """Probes ``spec.url`` once per ``sample`` call, whatever the number of signals."""

    def __init__(self, name: str, spec: ProbeSourceSpec, deps: SourceDeps) -> None:
        self.name = name
        self.spec = spec
        self._http = deps.http

    async def sample(self, signals: Sequence[ResolvedSignal], now: float) -> dict[str, Sample]:
        result = await self.probe()
        return {signal.name: _field(result, signal.spec.field, now) for signal in signals}

    async def aclose(self) -> None:
        """Nothing to release: the HTTP client is shared."""

    async def probe(self) -> ProbeResult:
        timeout = self.spec.timeout
        try:
            async with asyncio.timeout(timeout):
                response = await self._http.get(self.spec.url, timeout=timeout)
        except TimeoutError:
            return ProbeResult(False, None, _transport.timed_out(timeout))
        except httpx.TransportError as exc:
            return ProbeResult(
                False, None, _transport.transport_failure(exc, timeout, self.spec.url)
            )
        if response.status_code not in self.spec.expect_status:
            expected = ", ".join(str(code) for code in self.spec.expect_status)
            return ProbeResult(False, None, f"HTTP {response.status_code} (expected {expected})")
        return ProbeResult(True, response.elapsed.total_seconds(), "")


def _field(result: ProbeResult, field: str | None, now: float) -> Sample:
    if field == "up":
        return Sample(now, SampleKind.VALUE, 1.0 if result.up else 0.0, reason=result.reason)
    if field == "latency":
        if result.latency_s is None:
            return Sample.error(now, f"no latency: {result.reason}")
        return Sample.of(now, result.latency_s)
    return Sample.error(
        now, f"unknown probe field {field!r} (expected one of: {', '.join(FIELDS)})"
    )
