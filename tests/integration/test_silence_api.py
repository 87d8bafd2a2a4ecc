"""The control API on a real loopback socket: /api/v1/silences (create, list,
expire) and its guard: a bearer token, or loopback only when none is configured.
Bad requests get a 4xx that says what is wrong; a wrong token is counted."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.factories import MINIMAL_RULES
from watchdog.api.app import build_app
from watchdog.clock import FakeClock
from watchdog.http.server import Router, serve
from watchdog.run.runtime import Runtime
from watchdog.settings import load_settings
from watchdog.units import iso

T0 = 1_790_000_000.0
TOKEN = "api-token-6f1e2d"
RULES = MINIMAL_RULES


@dataclass
class Api:
    url: str
    app: Router
    runtime: Runtime
    clock: FakeClock
    http: httpx.AsyncClient

    def refusals(self, reason: str) -> float:
        registry = self.runtime.watchdog.metrics.registry
        value = registry.get_sample_value("watchdog_api_refused_total", {"reason": reason})
        return value or 0.0


@contextlib.asynccontextmanager
async def control_api(tmp_path: Path, token: str | None = TOKEN) -> AsyncIterator[Api]:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    env = {
        "WATCHDOG_RULES": str(rules),
        "WATCHDOG_STATE": str(tmp_path / "state.db"),
        "WATCHDOG_SECRETS_DIR": str(tmp_path / "no-secrets"),
    }
    if token is not None:
        env["WATCHDOG_API_TOKEN"] = token
    clock = FakeClock(T0)
    async with httpx.AsyncClient(timeout=5.0) as http:
        runtime = await Runtime.build(load_settings(env), clock, http)
        try:
            app = build_app(
                runtime.watchdog,
                runtime.settings.api_token,
                extra_status=runtime.status_extra,
                silences=runtime.silences,
            )
            async with serve(app) as srv:
                yield Api(srv.url, app, runtime, clock, http)
        finally:
            await runtime.stop()


def auth(token: str = TOKEN) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


GOOD = {
    "matchers": ["rule=error-rate", {"name": "severity", "op": "=~", "value": "critical|high"}],
    "duration": "2h",
    "created_by": "alice",
    "comment": "deploying by hand",
}


async def test_create_list_and_expire(tmp_path: Path) -> None:
    """POST creates (201, persisted, active at once), GET lists it, DELETE expires
    it; expired silences are listed only with ?expired=true."""
    async with control_api(tmp_path) as api:
        created = await api.http.post(f"{api.url}/api/v1/silences", json=GOOD, headers=auth())
        assert created.status_code == 201, created.text
        body = created.json()
        assert body["state"] == "active"
        assert body["ends_at"] == T0 + 7200
        assert body["ends_at_iso"] == iso(T0 + 7200)
        assert body["matchers"] == [
            {"name": "rule", "op": "=", "value": "error-rate"},
            {"name": "severity", "op": "=~", "value": "critical|high"},
        ]
        assert [s.id for s in await api.runtime.store.silences(now=T0)] == [body["id"]]
        assert api.runtime.silences.match("error-rate", "critical", "worker") is not None
        listed = await api.http.get(f"{api.url}/api/v1/silences", headers=auth())
        assert [s["id"] for s in listed.json()["silences"]] == [body["id"]]
        expired = await api.http.delete(
            f"{api.url}/api/v1/silences/{body['id'][:8]}", headers=auth()
        )
        assert expired.status_code == 200
        assert expired.json()["state"] == "expired"
        assert api.runtime.silences.active() == []
        listed = await api.http.get(f"{api.url}/api/v1/silences", headers=auth())
        assert listed.json()["silences"] == []
        listed = await api.http.get(
            f"{api.url}/api/v1/silences", params={"expired": "true"}, headers=auth()
        )
        assert [s["state"] for s in listed.json()["silences"]] == ["expired"]


async def test_missing_token_is_401(tmp_path: Path) -> None:
    """No Authorization header: 401 with WWW-Authenticate, nothing created, counted."""
    async with control_api(tmp_path) as api:
        answer = await api.http.post(f"{api.url}/api/v1/silences", json=GOOD)
        assert answer.status_code == 401
        assert answer.headers["www-authenticate"] == "Bearer"
        assert answer.json() == {"error": "missing bearer token"}
        assert api.refusals("missing_token") == 1
        assert api.runtime.silences.all() == []


async def test_wrong_token_is_401_and_counted(tmp_path: Path) -> None:
    """A wrong token: 401, counted in watchdog_api_refused_total{reason="wrong_token"}
    (visible on /metrics), and the token given is never echoed."""
    async with control_api(tmp_path) as api:
        for _ in range(2):
            answer = await api.http.post(
                f"{api.url}/api/v1/silences", json=GOOD, headers=auth("guess-123")
            )
            assert answer.status_code == 401
            assert "guess-123" not in answer.text
        assert api.refusals("wrong_token") == 2
        metrics = await api.http.get(f"{api.url}/metrics")
        assert 'watchdog_api_refused_total{reason="wrong_token"} 2.0' in metrics.text
        assert api.runtime.silences.all() == []


async def test_without_a_token_only_loopback_is_served(tmp_path: Path) -> None:
    """No WATCHDOG_API_TOKEN: a loopback client is served; any other address gets
    403 (counted), while /healthz and /metrics stay open."""
    async with control_api(tmp_path, token=None) as api:
        local = await api.http.post(f"{api.url}/api/v1/silences", json=GOOD)
        assert local.status_code == 201
        # The same app, reached from another address (the socket above is loopback).
        remote = httpx.ASGITransport(app=api.app, client=("203.0.113.7", 40000))
        async with httpx.AsyncClient(transport=remote, base_url="http://watchdog") as client:
            refused = await client.post("/api/v1/silences", json=GOOD)
            assert refused.status_code == 403
            assert "only on loopback" in refused.json()["error"]
            assert (await client.get("/api/v1/silences")).status_code == 403
            assert (await client.get("/healthz")).status_code == 200
        assert api.refusals("not_loopback") == 2
        assert len(api.runtime.silences.all()) == 1


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b"{not json", 400, "request body is not valid JSON"),
        (b"", 400, "request body is empty"),
        (json.dumps({**GOOD, "matchers": ["host=web1"]}).encode(), 400, "matcher name 'host'"),
        (
            json.dumps({**GOOD, "matchers": [{"name": "zone", "value": "x"}]}).encode(),
            400,
            "matcher name 'zone' unknown",
        ),
        (json.dumps({**GOOD, "matchers": ["rule=~("]}).encode(), 400, "bad regular expression"),
        (json.dumps({**GOOD, "duration": "2 fortnights"}).encode(), 400, "duration"),
        (json.dumps({**GOOD, "created_by": ""}).encode(), 400, "created_by"),
        (json.dumps({**GOOD, "comment": ""}).encode(), 400, "comment"),
        (json.dumps({**GOOD, "color": "red"}).encode(), 400, "color"),
        (
            json.dumps({**GOOD, "duration": None, "ends_at": T0 - 60}).encode(),
            400,
            "before it starts",
        ),
        (json.dumps({**GOOD, "duration": None}).encode(), 400, "positive duration"),
        (b"[1, 2]", 400, "body"),
    ],
)
async def test_bad_requests_say_what_is_wrong(
    tmp_path: Path, body: bytes, status: int, message: str
) -> None:
    """Each malformed silence gets a 4xx whose JSON error names the problem; nothing
    is created."""
    async with control_api(tmp_path) as api:
        answer = await api.http.post(
            f"{api.url}/api/v1/silences",
            content=body,
            headers={**auth(), "content-type": "application/json"},
        )
        assert answer.status_code == status, answer.text
        assert message in answer.json()["error"]
        assert api.runtime.silences.all() == []


async def test_oversized_body_is_413(tmp_path: Path) -> None:
    """A body over 64 KiB is refused with 413 before it is parsed."""
    async with control_api(tmp_path) as api:
        huge = {**GOOD, "comment": "x" * (70 * 1024)}
        answer = await api.http.post(f"{api.url}/api/v1/silences", json=huge, headers=auth())
        assert answer.status_code == 413
        assert "over 65536 bytes" in answer.json()["error"]
        assert api.runtime.silences.all() == []


async def test_expiring_an_unknown_silence_is_404(tmp_path: Path) -> None:
    """DELETE of an id that matches nothing: 404 saying so."""
    async with control_api(tmp_path) as api:
        answer = await api.http.delete(f"{api.url}/api/v1/silences/nope", headers=auth())
        assert answer.status_code == 404
        assert "no silence with id 'nope'" in answer.json()["error"]


async def test_status_lists_active_silences(tmp_path: Path) -> None:
    """/api/v1/status shows active silences with who and why."""
    async with control_api(tmp_path) as api:
        await api.http.post(f"{api.url}/api/v1/silences", json=GOOD, headers=auth())
        status = (await api.http.get(f"{api.url}/api/v1/status", headers=auth())).json()
        (shown,) = status["silences"]
        assert shown["created_by"] == "alice"
        assert shown["comment"] == "deploying by hand"
