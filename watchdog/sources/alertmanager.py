"""The ``alertmanager`` source: Alertmanager's webhook notifications (payload version 4)
as evidence, so a team drives the watchdog from the alerts it already has.

Alertmanager pushes; the daemon's API hands each notification to ``receive`` and the
sampling loop reads what it holds. A notification carries every alert of its group
(firing, and resolved since the last one), so the latest one per ``groupKey`` is that
group's state. A signal's sample is the number of firing alerts named its
``alertname`` whose labels carry its ``labels``: a rule ``above: 0`` breaches while one
fires, and not once it resolves. No notification yet, or none for ``staleness``, is
*no data* (the rule goes blind, never breaches): route an always-firing heartbeat
alert here with a ``repeat_interval`` shorter than ``staleness``. A group Alertmanager
truncated (``max_alerts``) where no matching alert is seen firing is no data too: the
firing one may be among those left out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from watchdog.errors import SourceError
from watchdog.model import Sample
from watchdog.rules.load import ResolvedSignal
from watchdog.rules.model import AlertmanagerSourceSpec
from watchdog.sources.base import SourceDeps
from watchdog.units import format_duration

# Past this many groups the oldest is forgotten: a runaway sender must not fill memory.
MAX_GROUPS = 1_000


class _Alert(BaseModel):
    # Fields Alertmanager may add later are ignored; the ones read are strict.
    model_config = ConfigDict(extra="ignore", strict=True, frozen=True)
    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: str  # noqa: N815 (Alertmanager's own field names)
    endsAt: str = ""  # noqa: N815
    fingerprint: str = ""


class Notification(BaseModel):
    """The webhook body (``version: "4"``) as far as the watchdog reads it."""

    model_config = ConfigDict(extra="ignore", strict=True, frozen=True)
    version: Literal["4"]
    groupKey: str = Field(min_length=1)  # noqa: N815
    status: Literal["firing", "resolved"]
    receiver: str
    alerts: list[_Alert]
    truncatedAlerts: int = Field(default=0, ge=0)  # noqa: N815
    groupLabels: dict[str, str] = Field(default_factory=dict)  # noqa: N815


class PayloadError(SourceError):
    """A webhook body that is not an Alertmanager v4 notification; names the field."""


def parse(body: object) -> Notification:
    """The notification in ``body`` (parsed JSON), or ``PayloadError`` naming the
    first wrong field like ``alerts[0].status: ...``."""
    try:
        return Notification.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = "".join(
            f"[{part}]" if isinstance(part, int) else f".{part}" for part in first["loc"]
        ).lstrip(".")
        raise PayloadError(
            f"{where or 'body'}: {first['msg']} (expected an Alertmanager webhook "
            'notification, version "4")'
        ) from None


@dataclass(frozen=True)
class _Group:
    firing: tuple[dict[str, str], ...]  # the labels of each firing alert
    truncated: int
    group_labels: dict[str, str]
    at: float


class AlertmanagerSource:
    """Holds the latest notification per alert group; samples count firing alerts."""

    def __init__(self, name: str, spec: AlertmanagerSourceSpec, deps: SourceDeps) -> None:
        self.name = name
        self.spec = spec
        self._clock = deps.clock
        self._groups: dict[str, _Group] = {}
        self._heard_at: float | None = None
        self._inboxes = deps.inboxes
        self._inboxes[name] = self

    def receive(self, notification: Notification) -> int:
        """Take one notification; the number of firing alerts it carries."""
        now = self._clock.now()
        firing = tuple(a.labels for a in notification.alerts if a.status == "firing")
        self._groups.pop(notification.groupKey, None)  # re-inserted: newest last
        self._groups[notification.groupKey] = _Group(
            firing, notification.truncatedAlerts, notification.groupLabels, now
        )
        while len(self._groups) > MAX_GROUPS:
            del self._groups[next(iter(self._groups))]
        self._heard_at = now
        return len(firing)

    async def sample(self, signals: Sequence[ResolvedSignal], now: float) -> dict[str, Sample]:
        return {signal.name: self._one(signal, now) for signal in signals}

    async def aclose(self) -> None:
        """No longer the one the API feeds (unless a rebuilt one already took the name)."""
        if self._inboxes.get(self.name) is self:
            del self._inboxes[self.name]

    def _one(self, signal: ResolvedSignal, now: float) -> Sample:
        if self._heard_at is None:
            return Sample.no_data(now, f"no Alertmanager notification yet for source {self.name}")
        silent = self._clock.now() - self._heard_at
        if silent > self.spec.staleness:
            return Sample.no_data(
                now,
                f"no Alertmanager notification for {format_duration(silent)} (staleness "
                f"{format_duration(self.spec.staleness)}): route a heartbeat alert here",
            )
        wanted = {**signal.spec.labels, "alertname": signal.spec.alertname or ""}
        firing = 0
        hidden: list[str] = []
        for key, group in self._groups.items():
            hits = sum(1 for labels in group.firing if _matches(labels, wanted))
            firing += hits
            if group.truncated and not hits and _may_hold(group.group_labels, wanted):
                hidden.append(key)
        if firing == 0 and hidden:
            return Sample.no_data(
                now,
                f"Alertmanager left alerts out of group {hidden[0][:120]} (max_alerts): "
                f"{wanted['alertname']} may be among them",
            )
        return Sample.of(now, float(firing))


def _matches(labels: dict[str, str], wanted: dict[str, str]) -> bool:
    return all(labels.get(key, "") == value for key, value in wanted.items())


def _may_hold(group_labels: dict[str, str], wanted: dict[str, str]) -> bool:
    """Whether a group could hold the wanted alert: its grouping labels do not rule it out."""
    return all(wanted.get(key, value) == value for key, value in group_labels.items())
