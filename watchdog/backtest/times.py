"""Times (RFC 3339, Unix seconds, ``now-7d``) and the recorded deploy history.

``DIR/deployments.json`` (optional; ``--deployments FILE`` elsewhere) says what was
live on each target, and since when::

    {
      "worker":   [{"version": "v41", "at": "2026-11-02T09:00:00Z"},
                   {"version": "v42", "at": "2026-11-03T14:10:00Z",
                    "description": "release 42"}],
      "frontend": [{"version": "a1b2c3", "at": 1793000000}]
    }

``at`` is RFC 3339 or Unix seconds; ``id`` and ``description`` are optional. At
virtual time T a target's live version is its latest deploy at or before T, and a
rollback goes to the newest earlier version (preferring one seen healthy), as the
live targets choose. A gradual deployment gives ``versions`` instead of ``version``
(``{"versions": [{"version": "v42", "percentage": 10}, {"version": "v41",
"percentage": 90}], "at": ...}``): canary rules judge its new version against the old
one from then, as live (``backtest/splits.py`` has the rules and the per-version
recordings a canary rule's signal reads). Without the file no deploy is known, so deploy correlation
blocks every rollback ("missing deploy") unless ``--ignore-deploys``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

from watchdog.backtest.splits import SplitDeploy, parse_versions, resolve
from watchdog.errors import BacktestError
from watchdog.model import Deploy
from watchdog.units import iso, parse_duration

_RELATIVE = re.compile(r"^now(?:(?P<sign>[+-])(?P<span>.+))?$")


def parse_time(value: object, now: float | None = None) -> float:
    """RFC 3339 (with a zone), Unix seconds, ``now`` or ``now-7d`` → Unix seconds."""
    if isinstance(value, bool):
        raise BacktestError(f"expected a time, got {value!r}")
    if isinstance(value, int | float):
        return float(value)
    if not isinstance(value, str):
        raise BacktestError(f"expected a time (RFC 3339 or Unix seconds), got {value!r}")
    text = value.strip()
    relative = _RELATIVE.match(text)
    if relative is not None:
        base = now if now is not None else datetime.now(tz=UTC).timestamp()
        if relative.group("span") is None:
            return base
        try:
            span = parse_duration(relative.group("span"))
        except ValueError as exc:
            raise BacktestError(f"time {value!r}: {exc}") from None
        return base - span if relative.group("sign") == "-" else base + span
    try:
        return float(text)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise BacktestError(
            f"time {value!r}: expected RFC 3339 (2026-11-28T10:00:00Z), Unix seconds, now or now-7d"
        ) from None
    if parsed.tzinfo is None:
        raise BacktestError(f"time {value!r}: give a time zone (Z or +00:00)")
    return parsed.timestamp()


def rfc3339(ts: float) -> str:
    """UTC with a Z; milliseconds only when the time has them."""
    if ts == int(ts):
        return iso(ts)
    stamp = datetime.fromtimestamp(ts, tz=UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"


Deployments = Mapping[str, Sequence[Deploy]]


def parse_deployments(
    data: object, where: str, base: float | None = None
) -> dict[str, list[Deploy]]:
    """``{target: [{version | versions, at, id?, description?}, ...]}`` → deploys sorted
    by time. ``base`` makes durations like ``-10m`` valid for ``at`` (relative to it)."""
    if not isinstance(data, dict):
        raise BacktestError(f"{where}: expected an object mapping each target to its deploys")
    out: dict[str, list[Deploy]] = {}
    for target, items in data.items():
        if not isinstance(items, list):
            raise BacktestError(f"{where}: {target}: expected a list of deploys")
        dated = [
            (f"{where}: {target}[{index}]", _deploy(item, f"{where}: {target}[{index}]", base))
            for index, item in enumerate(items)
        ]
        out[str(target)] = resolve(sorted(dated, key=lambda pair: pair[1].created_at))
    return out


def _deploy(item: object, place: str, base: float | None) -> Deploy:
    if (
        not isinstance(item, dict)
        or "at" not in item
        or ("version" in item) == ("versions" in item)
    ):
        raise BacktestError(
            f"{place}: expected {{version: ..., at: ...}} or, for a gradual deployment, "
            "{versions: [{version: ..., percentage: ...}, ...], at: ...}"
        )
    unknown = set(item) - {"version", "versions", "at", "id", "description"}
    if unknown:
        raise BacktestError(f"{place}: unknown key(s) {', '.join(sorted(unknown))}")
    at = _deploy_time(item["at"], place, base)
    description = str(item.get("description", ""))
    if "version" in item:
        version = str(item["version"])
        return Deploy(str(item.get("id", version)), version, at, description)
    versions = parse_versions(item["versions"], place)
    if len(versions) == 1:  # one version at 100 %: a plain deploy
        return Deploy(str(item.get("id", versions[0][0])), versions[0][0], at, description)
    # The new version is known once the deploys are in time order (``resolve``).
    return SplitDeploy(str(item.get("id", "")), "", at, description, versions=versions)


def _deploy_time(value: object, place: str, base: float | None) -> float:
    if base is not None and isinstance(value, str) and value.strip()[:1] in ("-", "+"):
        text = value.strip()
        try:
            span = parse_duration(text[1:])
        except ValueError as exc:
            raise BacktestError(f"{place}: at: {exc}") from None
        return base - span if text[0] == "-" else base + span
    if base is not None and isinstance(value, str) and value.strip()[:1].isdigit():
        try:
            return base + parse_duration(value)
        except ValueError:
            pass
    try:
        return parse_time(value)
    except BacktestError as exc:
        raise BacktestError(f"{place}: at: {exc}") from None


def load_deployments(path: Path) -> dict[str, list[Deploy]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BacktestError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BacktestError(f"{path}: cannot read: {exc}") from None
    except json.JSONDecodeError as exc:
        raise BacktestError(f"{path}: not JSON: {exc}") from None
    return parse_deployments(data, str(path))
