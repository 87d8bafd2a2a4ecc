"""The ``flow`` source: a synthetic user journey (``rules.flows``) run against a Worker
split's new and old version, each pinned with ``Cloudflare-Workers-Version-Overrides``.

Each call reads the Worker's deployments (the Cloudflare API); without a split there
is nothing to compare (*no data*). With one, the flow runs once per version: every
step's request carries the override and must be answered by that version (the flow
file's ``version_header``, set by the Worker's version metadata binding), else the
override did not apply (Cloudflare ignores it silently when the version is not in the
deployment) and the sample is an *error*: a run by the wrong version proves nothing.
A run fails at its first step whose status, body or latency is not as expected, or
that gets no answer. The sample carries one run per version (``VersionCounts``: 1
request, 1 error when it failed), which a canary rule judges like traffic: a step
broken only in the new version is caught at 0 %, before any user reaches it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import structlog

from watchdog import strict_json
from watchdog.clock import Clock
from watchdog.errors import SourceError
from watchdog.model import Sample, SampleKind, VersionCounts
from watchdog.rules.flows import PLACEHOLDER, FlowFile, FlowStep, load_flow
from watchdog.rules.load import ResolvedSignal
from watchdog.rules.model import FlowSourceSpec
from watchdog.sources import _transport
from watchdog.sources.base import SourceDeps, error_for_all

log = structlog.get_logger("watchdog.sources.flow")
OVERRIDE_HEADER = "Cloudflare-Workers-Version-Overrides"


class WrongVersionError(Exception):
    """The override did not apply: another version answered."""


class FlowSource:
    """Runs one flow file against the new and the old version of a split."""

    def __init__(self, name: str, spec: FlowSourceSpec, deps: SourceDeps) -> None:
        self.name = name
        self.spec = spec
        self._http = deps.http
        self._clock: Clock = deps.clock
        self._api = deps.cloudflare_api_url.rstrip("/")
        self._token = deps.cloudflare_api_token
        self._account = spec.account or deps.cloudflare_account_id
        flow, problems = load_flow(Path(spec.file))
        self._flow: FlowFile | None = flow
        self._problem = "; ".join(problems)

    async def aclose(self) -> None:
        """Nothing to release: the HTTP client is shared."""

    async def sample(self, signals: Sequence[ResolvedSignal], now: float) -> dict[str, Sample]:
        if self._flow is None:
            return error_for_all(signals, now, f"flow file: {self._problem}")
        if self._token is None or not self._account:
            return error_for_all(signals, now, "no Cloudflare API token or account id")
        try:
            split = await self._split()
        except SourceError as exc:
            return error_for_all(signals, now, str(exc))
        if split is None:
            reason = f"no gradual deployment of {self.spec.script}: nothing to compare"
            return {s.name: Sample.no_data(now, reason) for s in signals}
        new, old = split
        try:
            failed = [await self.run(self._flow, version) for version in (new, old)]
        except WrongVersionError as exc:
            return error_for_all(signals, now, str(exc))
        counts = tuple(
            VersionCounts(v, 1.0 if why else 0.0, 1.0)
            for v, why in zip((new, old), failed, strict=True)
        )
        for version, why in zip((new, old), failed, strict=True):
            if why:
                log.warning("flow failed", source=self.name, version=version, why=why)
        value = 1.0 if failed[0] else 0.0
        sample = Sample(
            now,
            SampleKind.VALUE,
            value,
            2.0,
            errors=sum(c.errors for c in counts),
            versions=counts,
            fresh_to=now,
        )
        return {s.name: sample for s in signals}

    async def _split(self) -> tuple[str, str] | None:
        """``(new, old)`` of the live split, read from the deployments list."""
        assert self._token is not None
        script = self.spec.script
        url = f"{self._api}/accounts/{self._account}/workers/scripts/{script}/deployments"
        headers = {"Authorization": f"Bearer {self._token.get_secret_value()}"}
        timeout = self.spec.timeout
        try:
            async with asyncio.timeout(timeout):
                response = await self._http.get(url, headers=headers)
        except TimeoutError:
            raise SourceError(f"Workers deployments: {_transport.timed_out(timeout)}") from None
        except httpx.TransportError as exc:
            why = _transport.transport_failure(exc, timeout, url)
            raise SourceError(f"Workers deployments: {why}") from None
        try:
            raw = response.json()["result"]["deployments"]
            found = [
                (
                    _time(d["created_on"]),
                    {v["version_id"]: float(v["percentage"]) for v in d["versions"]},
                )
                for d in raw
            ]
        except (ValueError, KeyError, TypeError):
            why = f"HTTP {response.status_code}, no result.deployments with versions"
            raise SourceError(f"Workers deployments: {why}") from None
        found.sort(key=lambda item: item[0], reverse=True)
        if not found or len(found[0][1]) != 2:
            return None
        live = found[0][1]
        full = (next(iter(v)) for _, v in found[1:] if list(v.values()) == [100.0])
        stable = next(full, None)
        if stable is None or stable not in live:
            return None
        return next(v for v in live if v != stable), stable

    async def run(self, flow: FlowFile, version: str) -> str:
        """One run pinned to ``version``: "" when every step passed, else why it failed."""
        captured: dict[str, str] = {}
        for step in flow.steps:
            why = await self._step(flow, step, version, captured)
            if why:
                return f"step {step.name!r}: {why}"
        return ""

    async def _step(
        self, flow: FlowFile, step: FlowStep, version: str, captured: dict[str, str]
    ) -> str:
        req = step.request
        headers = {k: _fill(v, captured) for k, v in req.headers.items()}
        headers[OVERRIDE_HEADER] = f'{self.spec.script}="{version}"'
        content = None
        if req.json_body is not None:
            content = strict_json.dumpb(_fill_json(req.json_body, captured))
            headers = {**strict_json.JSON_HEADERS, **headers}
        started = self._clock.monotonic()
        try:
            async with asyncio.timeout(self.spec.timeout):
                response = await self._http.request(
                    req.method,
                    self.spec.url.rstrip("/") + _fill(req.path, captured),
                    headers=headers,
                    content=content,
                )
        except TimeoutError:
            return _transport.timed_out(self.spec.timeout)
        except httpx.TransportError as exc:
            return _transport.transport_failure(exc, self.spec.timeout)
        took = self._clock.monotonic() - started
        answered = response.headers.get(flow.version_header)
        if answered != version:
            raise WrongVersionError(
                f"the version override did not apply: asked for {version}, {flow.version_header} "
                f"says {answered!r} (is the version in the deployment?)"
            )
        expect = step.expect
        if response.status_code not in expect.status:
            return f"HTTP {response.status_code}, expected {', '.join(map(str, expect.status))}"
        if expect.body_contains is not None and expect.body_contains not in response.text:
            return f"the body lacks {expect.body_contains!r}"
        if expect.max_latency is not None and took > expect.max_latency:
            return f"took {took:.3g}s, more than {expect.max_latency:g}s"
        return _capture(step, response, captured)


def _time(value: object) -> float:
    if not isinstance(value, str):
        raise ValueError("created_on")
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def _fill(text: str, captured: dict[str, str]) -> str:
    return PLACEHOLDER.sub(lambda m: captured.get(m.group(1), ""), text)


def _fill_json(value: Any, captured: dict[str, str]) -> Any:
    if isinstance(value, str):
        return _fill(value, captured)
    if isinstance(value, list):
        return [_fill_json(v, captured) for v in value]
    if isinstance(value, dict):
        return {k: _fill_json(v, captured) for k, v in value.items()}
    return value


def _capture(step: FlowStep, response: httpx.Response, captured: dict[str, str]) -> str:
    """Store the step's captures; "" or why one is missing."""
    data: Any = None
    for name, spec in step.capture.items():
        if spec.startswith("header:"):
            found = response.headers.get(spec.removeprefix("header:"))
        else:
            if data is None:
                try:
                    data = response.json()
                except json.JSONDecodeError:
                    return f"capture {name}: the answer is not JSON"
            found = data
            for key in spec.removeprefix("$.").split("."):
                found = found.get(key) if isinstance(found, dict) else None
        if found is None or isinstance(found, dict | list):
            return f"capture {name}: {spec} not in the answer"
        captured[name] = str(found)
    return ""
