"""The ``probe`` source: one HTTP GET of a health URL per call.

It gives two fields, chosen per signal by ``field``:

- ``up``: 1.0 when the status is in ``expect_status`` within ``timeout``, else 0.0.
  A failed probe is *evidence* that the site is down (value 0, with the reason in
  ``Sample.reason``), not missing evidence: the probe is the thing that measures
  reachability, so "could not reach it" is its answer.
- ``latency``: seconds until the full response, on the injected clock (so the
  probe works under the virtual clock too). Only a probe that succeeded has one;
  otherwise the latency sample is an error, since a refused connection or an error
  page's speed says nothing about how fast the service answers.

The body is read through ``watchdog.http.bounded_read`` and capped at ``MAX_BYTES``
after decoding: a body over the cap, in an encoding we refuse, or that does not
decode is a failed probe (down), logged once until the reason changes.

Redirects follow the shared HTTP client's setting (httpx: not followed), so a 301
counts as down unless ``expect_status`` lists it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

import httpx
import structlog

from watchdog.http import bounded_read
from watchdog.model import Sample, SampleKind
from watchdog.rules.load import ResolvedSignal
from watchdog.rules.model import IMPLICIT_FIELDS, ProbeSourceSpec
from watchdog.sources import _transport
from watchdog.sources.base import SourceDeps

log = structlog.get_logger("watchdog.sources.probe")

FIELDS = tuple(IMPLICIT_FIELDS["probe"])
# A health page is a few bytes; a probe never needs more than this of one.
MAX_BYTES = 1024 * 1024


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
        self._clock = deps.clock
        self._logged = ""  # the failure last logged: each new one is logged once

    async def sample(self, signals: Sequence[ResolvedSignal], now: float) -> dict[str, Sample]:
        result = await self.probe()
        return {signal.name: _field(result, signal.spec.field, now) for signal in signals}

    async def aclose(self) -> None:
        """Nothing to release: the HTTP client is shared."""

    async def probe(self) -> ProbeResult:
        result = await self._probe()
        if result.reason != self._logged:
            if result.reason:
                log.warning("probe failed", source=self.name, reason=result.reason)
            else:
                log.info("probe succeeded again", source=self.name)
            self._logged = result.reason
        return result

    async def _probe(self) -> ProbeResult:
        timeout = self.spec.timeout
        started = self._clock.monotonic()
        try:
            async with asyncio.timeout(timeout):
                response = await bounded_read.fetch(
                    self._http, "GET", self.spec.url, max_bytes=MAX_BYTES, timeout=timeout
                )
        except TimeoutError:
            return ProbeResult(False, None, _transport.timed_out(timeout))
        except httpx.TransportError as exc:
            return ProbeResult(
                False, None, _transport.transport_failure(exc, timeout, self.spec.url)
            )
        except bounded_read.BodyError as exc:
            return ProbeResult(False, None, f"HTTP {exc.status}, body refused: {exc}")
        except httpx.HTTPError as exc:  # a malformed answer (bad framing, a bad redirect)
            return ProbeResult(False, None, f"bad response ({type(exc).__name__})")
        if response.status_code not in self.spec.expect_status:
            expected = ", ".join(str(code) for code in self.spec.expect_status)
            return ProbeResult(False, None, f"HTTP {response.status_code} (expected {expected})")
        return ProbeResult(True, max(0.0, self._clock.monotonic() - started), "")


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
