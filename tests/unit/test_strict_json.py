"""No NaN or Infinity in any JSON the watchdog emits (issue 10, defect 6).

JavaScript, Go and Grafana's JSON datasources refuse bare ``NaN``; a blind rule's value
is NaN inside the process. Every producer goes through ``watchdog.strict_json``
(non-finite -> null, ``allow_nan=False``); a scan of the package pins that no producer
bypasses it.
"""

from __future__ import annotations

import ast
import json
import math
from pathlib import Path
from typing import Any

import httpx

from tests.factories import T0
from tests.unit.test_daemon import make
from watchdog import strict_json
from watchdog.actions.notify.webhook import encode
from watchdog.http.server import Response

PACKAGE = Path(__file__).resolve().parents[2] / "watchdog"


def strict_loads(text: str | bytes) -> Any:
    """json.loads that refuses NaN/Infinity (as JavaScript's JSON.parse does)."""

    def refuse(constant: str) -> Any:
        raise ValueError(f"not JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


async def test_status_with_a_blind_rule_is_strict_json(tmp_path: Path) -> None:
    """A rule blind past blind_after (observed NaN in its decision) still gives JSON."""
    watchdog, clock, _ = make(tmp_path, lambda t: None)
    transport = httpx.ASGITransport(app=_app(watchdog), client=("127.0.0.1", 5555))
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
        await watchdog.start()
        await clock.advance(6 * 60)
        body = (await client.get("/api/v1/status")).content
        await watchdog.stop()
    status = strict_loads(body)
    assert status["rules"][0]["state"] == "blind"
    assert status["rules"][0]["value"] is None
    blind = [d for d in status["decisions"] if d["kind"] == "blind"]
    assert blind, status["decisions"]
    assert blind[0]["observed"] is None
    assert clock.now() > T0


def _app(watchdog: Any) -> Any:
    from watchdog.api.app import build_app

    return build_app(watchdog, None)


def test_non_finite_becomes_null_at_any_depth() -> None:
    data = {"a": math.nan, "b": [math.inf, -math.inf, 1.5], "c": {"d": (math.nan,)}}
    text = strict_json.dumps(data)
    assert strict_loads(text) == {"a": None, "b": [None, None, 1.5], "c": {"d": [None]}}


def test_http_responses_and_webhook_bodies_are_strict() -> None:
    assert strict_loads(Response.json({"v": math.nan}).body) == {"v": None}
    assert strict_loads(encode({"extra": {"observed": math.inf}})) == {"extra": {"observed": None}}


# The state store's rows are read back by this process only (json.loads), where a
# manual rollback's NaN ``observed`` must survive; they are never emitted as they are.
INTERNAL = ("store",)  # the store's own rows keep NaN (a manual rollback's) as NaN


def _json_producers(path: Path) -> list[str]:
    """Calls that write JSON without the strict encoder: ``json.dump(s)`` and httpx's
    ``json=`` (its encoder lets NaN through). ``send(..., json=)`` is our retrying
    sender, which encodes with the strict encoder."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if (
            isinstance(func, ast.Attribute)
            and func.attr in ("dump", "dumps")
            and isinstance(func.value, ast.Name)
            and func.value.id == "json"
        ):
            found.append(f"{path.name}:{node.lineno} json.{func.attr}")
        if isinstance(func, ast.Name) and func.id == "send":
            continue
        found += [f"{path.name}:{node.lineno} json=" for k in node.keywords if k.arg == "json"]
    return found


def test_every_json_producer_goes_through_the_strict_encoder() -> None:
    """Scan the package (the local fakes are test doubles, not our output)."""
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if "fakes" in path.parts or path.name == "strict_json.py" or path.parent.name in INTERNAL:
            continue
        offenders += _json_producers(path)
    assert offenders == []


def test_the_scan_finds_a_producer(tmp_path: Path) -> None:
    """The scan itself can fail: it sees both kinds of bypass."""
    sample = tmp_path / "sample.py"
    sample.write_text("import json\njson.dumps({})\nhttp.post(url, json={})\nsend(u, json={})\n")
    assert _json_producers(sample) == ["sample.py:2 json.dumps", "sample.py:3 json="]


async def test_the_retrying_sender_puts_strict_json_on_the_wire() -> None:
    """``send(json=...)`` (every notifier and Cloudflare call) writes null, not NaN."""
    from tests.helpers import InstantClock
    from tests.recorder import recorder
    from watchdog.http.client import send

    async with recorder() as (record, server), httpx.AsyncClient() as http:
        await send(
            http,
            "POST",
            f"{server.url}/hook",
            what="test",
            clock=InstantClock(),
            json={"observed": math.nan, "ok": 1},
        )
    assert strict_loads(record.requests[0].body) == {"observed": None, "ok": 1}
    assert record.requests[0].headers["content-type"] == "application/json"
