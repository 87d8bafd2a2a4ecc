"""The ``Source`` protocol and what every source is built with."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from pydantic import SecretStr

from watchdog.clock import Clock
from watchdog.model import Sample
from watchdog.rules.load import ResolvedSignal

if TYPE_CHECKING:  # the backtest imports this module, never httpx
    import httpx

MAX_IN_FLIGHT = 64


@dataclass(frozen=True)
class SourceDeps:
    """Shared things a source needs; built once by the daemon (or a test)."""

    http: httpx.AsyncClient
    clock: Clock
    cloudflare_api_url: str = "https://api.cloudflare.com/client/v4"
    cloudflare_api_token: SecretStr | None = None
    cloudflare_account_id: str | None = None
    # Sources fed over the daemon's API instead of polled (alertmanager), by name: each
    # registers itself when built, so the API finds the running one after a reload.
    inboxes: dict[str, object] = field(default_factory=dict)
    # Requests all sources have in flight at once, under the client's 100 connections:
    # httpcore's pool scans every queued request against every connection, so 300
    # scrapes due together cost a fifth of a core; queued here they cost nothing.
    slots: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(MAX_IN_FLIGHT))


class Source(Protocol):
    """Gives one sample per signal per call. Never raises for a remote failure:
    a failure is an ``error`` sample for each signal, with the reason."""

    name: str

    async def sample(self, signals: Sequence[ResolvedSignal], now: float) -> dict[str, Sample]:
        """One sample per signal name, taken at ``now``."""
        ...

    async def aclose(self) -> None:
        """Release what the source holds (not the shared HTTP client)."""
        ...


def error_for_all(signals: Sequence[ResolvedSignal], now: float, reason: str) -> dict[str, Sample]:
    return {signal.name: Sample.error(now, reason) for signal in signals}
