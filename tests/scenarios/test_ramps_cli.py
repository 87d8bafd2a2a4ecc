"""``rollback-watchdog ramp start|hold|promote|abort|list``: the CLI through the
daemon's control API (the daemon owns the ramp; the command only asks), text and
``-o json``."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator

from tests.scenarios.ramp_support import RampWorld, ramp_world
from watchdog.api.app import build_app
from watchdog.cli.main import main
from watchdog.http.server import serve
from watchdog.metrics import Metrics
from watchdog.run.daemon import Watchdog
from watchdog.sources.base import SourceDeps


@contextlib.asynccontextmanager
async def daemon(tmp_path: Path, with_ramps: bool = True) -> AsyncIterator[tuple[RampWorld, str]]:
    async with ramp_world(tmp_path) as w, httpx.AsyncClient() as http:
        watchdog = Watchdog(w.rules, SourceDeps(http=http, clock=w.clock), Metrics())
        app = build_app(watchdog, None, ramps=w.ramps if with_ramps else None)
        async with serve(app) as srv:
            yield w, srv.url


async def cli(url: str, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any]:
    """The CLI in a thread (it runs its own HTTP client, as a shell's process would);
    its stdout parsed when it printed JSON."""
    code = await asyncio.to_thread(main, [*argv, "--url", url, "--author", "ana"])
    out = capsys.readouterr().out
    return code, json.loads(out) if out.startswith("{") else out


async def test_the_verbs_drive_the_daemons_ramp(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with daemon(tmp_path) as (w, url):
        code, started = await cli(
            url, capsys, "ramp", "start", "--version", w.new, "--steps", "10%,50%,100%",
            "--soak", "10m", "-o", "json",
        )  # fmt: skip
        assert code == 0
        assert (started["new"], started["old"], started["steps"]) == (w.new, w.old, [10, 50, 100])
        assert started["created_by"] == "ana"
        assert started["soak_s"] == 600
        ramp_id = started["id"]
        await w.until_step(ramp_id, 0)
        code, held = await cli(url, capsys, "ramp", "hold", ramp_id, "-o", "json")
        assert (code, held["phase"], held["why"]) == (0, "held", "held by ana")
        code, text = await cli(url, capsys, "ramp", "promote", ramp_id[:5])
        assert code == 0
        assert text.startswith(f"ramp {ramp_id} ramping: worker {w.old} -> {w.new} at 50%")
        assert "promoted by ana" in text
        code, listed = await cli(url, capsys, "ramp", "list", "-o", "json")
        assert [(r["id"], r["percentage"], r["active"]) for r in listed["ramps"]] == [
            (ramp_id, 50.0, True)
        ]
        code, aborted = await cli(url, capsys, "ramp", "abort", ramp_id, "-o", "json")
        assert (code, aborted["phase"], aborted["active"]) == (0, "aborted", False)
        assert w.live() == [(w.old, 100.0)]
        # Every answer is what the OpenAPI document says (closed objects: no key drifts).
        async with httpx.AsyncClient(base_url=url) as http:
            doc = (await http.get("/api/v1/openapi.json")).json()
        for name, answer in [("Ramp", started), ("Ramp", held), ("RampList", listed)]:
            root = {"$ref": f"#/components/schemas/{name}", "components": doc["components"]}
            errors = [e.message for e in Draft202012Validator(root).iter_errors(answer)]
            assert errors == [], (name, errors)


async def test_refusals_are_errors_naming_what_is_wrong(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with daemon(tmp_path) as (w, url):
        code, doc = await cli(url, capsys, "ramp", "hold", "nosuch", "-o", "json")
        assert code == 1
        assert doc["ok"] is False
        assert "HTTP 404: no single active ramp 'nosuch'" in doc["error"]
        code, doc = await cli(
            url, capsys, "ramp", "start", "--version", w.new, "--steps", "10%,60%", "-o", "json"
        )
        assert code == 1
        assert "HTTP 400: steps: the last step must be 100%, not 60%" in doc["error"]
        code, doc = await cli(
            url, capsys, "ramp", "start", "--version", w.new, "--soak", "soon", "-o", "json"
        )
        assert code == 1
        assert "HTTP 400: soak:" in doc["error"]
    (tmp_path / "no-daemon").mkdir()
    async with daemon(tmp_path / "no-daemon", with_ramps=False) as (w, url):
        code, doc = await cli(url, capsys, "ramp", "list", "-o", "json")
        assert code == 1
        assert "HTTP 503: ramps run in the daemon" in doc["error"]
