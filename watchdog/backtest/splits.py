"""Gradual deployments in the backtest and ``test rules``: the split form of a
``deployments.json`` entry, the split it makes live (told to the engine with
``Engine.split`` at each deploy of the target, as ``run/deploys.py`` tells it live), and
per-version counts for a canary rule's signal.

A split entry names its versions instead of one ``version``::

    {"versions": [{"version": "v2", "percentage": 10},
                  {"version": "v1", "percentage": 90}],
     "at": "2026-11-03T14:10:00Z", "description": "canary v2 at 10%"}

One or two versions (Cloudflare splits a Worker between at most two) whose
percentages add up to 100. Of two, one must have served 100 % in an earlier entry of
the same target: that one is *old*, the other *new* (``run/deploys.split_of`` reads
Cloudflare's history the same way). A later entry of the same two versions moves the
percentage (a ramp: the same test goes on, since the first); an entry of one version
ends the split. A rollback during a split goes to 100 % of the old version.

Per-version counts (``SIGNAL.versions.json`` beside the other recordings, and
``versions:`` in a rule test's ``input_series``) are what a ``cloudflare`` source in
``mode: versions`` reads per window: for each version, its errors and its requests in
the window that ended at the sample's time (``fresh_to``: the data is complete up to
then; the analytics' delay is already in the recorded times)::

    {"step": 60,
     "samples": [{"at": 1793000060,
                  "versions": {"v1": {"errors": 1, "requests": 540},
                               "v2": {"errors": 5, "requests": 60}}},
                 {"at": 1793000120, "versions": {}}]}

A version absent from a window served nothing in it; a window with no version is no
data (no invocations in the window), as live.
"""

from __future__ import annotations

import bisect
import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from watchdog.core.engine import Engine
from watchdog.errors import BacktestError
from watchdog.model import Deploy, Sample, SampleKind, Split, VersionCounts
from watchdog.units import iso

Versions = tuple[tuple[str, float], ...]


@dataclass(frozen=True)
class SplitDeploy(Deploy):
    """A deploy of two versions at percentages; ``version`` is the new one (what the
    split brought; a rollback goes to the version before it, the old one)."""

    versions: Versions = ()


def parse_versions(value: object, place: str) -> Versions:
    """A split entry's ``versions``: one or two ``{version, percentage}`` adding to 100."""
    if not isinstance(value, list) or not 1 <= len(value) <= 2:
        raise BacktestError(
            f"{place}: versions: expected a list of one or two {{version, percentage}} "
            "(Cloudflare splits a Worker between at most two versions)"
        )
    out: list[tuple[str, float]] = []
    for index, item in enumerate(value):
        where = f"{place}: versions[{index}]"
        if not isinstance(item, dict) or set(item) != {"version", "percentage"}:
            raise BacktestError(f"{where}: expected {{version: ..., percentage: ...}}")
        version, pct = item["version"], item["percentage"]
        if not isinstance(version, str) or not version:
            raise BacktestError(f"{where}: version: expected a version id")
        if isinstance(pct, bool) or not isinstance(pct, int | float):
            raise BacktestError(f"{where}: percentage: expected a number, got {pct!r}")
        if not math.isfinite(pct) or not 0 < pct <= 100:
            raise BacktestError(f"{where}: percentage: {pct!r} is not in (0, 100]")
        if any(v == version for v, _ in out):
            raise BacktestError(f"{where}: version {version} is given twice")
        out.append((version, float(pct)))
    total = sum(p for _, p in out)
    if abs(total - 100.0) > 1e-6:
        raise BacktestError(f"{place}: versions: the percentages add up to {total:g}, not 100")
    return tuple(out)


def resolve(dated: Sequence[tuple[str, Deploy]]) -> list[Deploy]:
    """``(place, deploy)`` in time order → the deploys, each split naming its new
    version; an error naming the entry when no earlier entry tells which is old."""
    stable: str | None = None
    out: list[Deploy] = []
    for place, deploy in dated:
        if isinstance(deploy, SplitDeploy) and len(deploy.versions) == 2:
            pair = [v for v, _ in deploy.versions]
            if stable not in pair:
                before = f"{stable} served 100% before it" if stable else "nothing came before it"
                raise BacktestError(
                    f"{place}: a split of {pair[0]} and {pair[1]} at {iso(deploy.created_at)}, "
                    f"but {before}: which version is new is unknown (give the deploy of the "
                    "old version at 100% first)"
                )
            new = pair[1] if pair[0] == stable else pair[0]
            deploy = dataclasses.replace(deploy, version=new, id=deploy.id or new)
        else:
            stable = deploy.version
        out.append(deploy)
    return out


def split_table(deployments: Mapping[str, Sequence[Deploy]]) -> dict[str, list[Split | None]]:
    """Per target, the split each of its deploys (in time order) makes live."""
    table: dict[str, list[Split | None]] = {}
    for target, deploys in deployments.items():
        splits: list[Split | None] = []
        old: str | None = None
        since = 0.0
        for index, deploy in enumerate(deploys):
            if not isinstance(deploy, SplitDeploy) or len(deploy.versions) != 2:
                old = deploy.version
                splits.append(None)
                continue
            pair = {v for v, _ in deploy.versions}
            earlier = splits[-1] if index else None
            same = earlier is not None and {earlier.new, earlier.old} == pair
            since = since if same else deploy.created_at
            pct = dict(deploy.versions)[deploy.version]
            splits.append(
                Split(target, deploy.id, deploy.version, old or "", pct, since, deploy.author)
            )
        table[target] = splits
    return table


class SplitFeed:
    """Tells the engine each target's split at each of its deploys, in time order."""

    def __init__(self, deployments: Mapping[str, Sequence[Deploy]]) -> None:
        self._times = {t: [d.created_at for d in ds] for t, ds in deployments.items()}
        self._table = split_table(deployments)

    def tell(self, engine: Engine, target: str, at: float) -> None:
        """A deploy of ``target`` at ``at``: the split live from then (None: one version)."""
        times = self._times.get(target)
        if not times:
            return
        index = bisect.bisect_right(times, at) - 1
        if index >= 0:
            engine.split(target, self._table[target][index])


def versions_sample(at: float, counts: Mapping[str, tuple[float, float]]) -> Sample:
    """One window's ``{version: (errors, requests)}`` as the ``cloudflare`` source's
    sample in ``mode: versions``; no version served: no data, as live."""
    versions = tuple(VersionCounts(v, e, r) for v, (e, r) in counts.items() if r > 0)
    if not versions:
        return Sample.no_data(at, "no invocations in the window")
    errors = sum(v.errors for v in versions)
    requests = sum(v.requests for v in versions)
    ratio = errors / requests if requests > 0 else 0.0
    return Sample(
        at, SampleKind.VALUE, ratio, requests, errors=errors, versions=versions, fresh_to=at
    )


def parse_versions_recording(data: Any, where: str) -> list[Sample]:
    """``SIGNAL.versions.json`` (module docstring) → samples in time order."""
    if not isinstance(data, dict) or not isinstance(data.get("samples"), list):
        raise BacktestError(f"{where}: expected {{step: ..., samples: [...]}}")
    out: list[Sample] = []
    for index, item in enumerate(data["samples"]):
        place = f"{where}: samples[{index}]"
        if not isinstance(item, dict) or set(item) != {"at", "versions"}:
            raise BacktestError(f"{place}: expected {{at: ..., versions: {{...}}}}")
        at, versions = item["at"], item["versions"]
        if isinstance(at, bool) or not isinstance(at, int | float) or not math.isfinite(at):
            raise BacktestError(f"{place}: at: expected Unix seconds, got {at!r}")
        if not isinstance(versions, dict):
            raise BacktestError(f"{place}: versions: expected {{version: {{errors, requests}}}}")
        counts = {str(v): _counts(c, f"{place}: versions.{v}") for v, c in sorted(versions.items())}
        if out and at <= out[-1].at:
            raise BacktestError(f"{place}: at {at!r} is not after the sample before it")
        out.append(versions_sample(float(at), counts))
    return out


def _counts(value: object, place: str) -> tuple[float, float]:
    if not isinstance(value, dict) or set(value) != {"errors", "requests"}:
        raise BacktestError(f"{place}: expected {{errors: N, requests: N}}")
    errors, requests = value["errors"], value["requests"]
    for name, n in (("errors", errors), ("requests", requests)):
        if isinstance(n, bool) or not isinstance(n, int | float) or not math.isfinite(n) or n < 0:
            raise BacktestError(f"{place}: {name}: expected a count (>= 0), got {n!r}")
    if errors > requests:
        raise BacktestError(f"{place}: errors {errors!r} exceed requests {requests!r}")
    return float(errors), float(requests)


def read_versions_file(path: Path) -> tuple[list[Sample], float | None]:
    """``DIR/SIGNAL.versions.json``: its samples and its ``step`` (None: not given)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise BacktestError(f"{path}: cannot read: {exc}") from None
    except json.JSONDecodeError as exc:
        raise BacktestError(f"{path}: not JSON: {exc}") from None
    samples = parse_versions_recording(data, str(path))
    step = data.get("step")
    if step is None:
        return samples, None
    if isinstance(step, bool) or not isinstance(step, int | float) or not 0 < step < math.inf:
        raise BacktestError(f"{path}: step: expected seconds (> 0), got {step!r}")
    return samples, float(step)


def in_span(samples: Sequence[Sample], start: float, end: float) -> list[Sample]:
    """A per-version recording's samples within ``[start, end]``, as recorded (a window
    the analytics had nothing for is its own no-data sample)."""
    return [s for s in samples if start <= s.at <= end]
