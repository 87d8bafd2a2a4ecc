"""Fault matrix, the control API in its token-less loopback mode, attacked from the
operator's own browser and from odd clients:

- a page POSTs ``text/plain`` JSON (a "simple" request, no preflight) with a foreign
  ``Origin``: refused (415 / 403), no silence made, no reload;
- DNS rebinding: a foreign ``Host`` header is refused, reads included;
- only the exact loopback addresses are trusted: ``127.0.0.6`` (a mesh sidecar's
  source) is not; ``::ffff:127.0.0.1`` (IPv4 on a dual-stack ``[::]`` socket) is;
- a silence longer than ``WATCHDOG_SILENCE_MAX_DURATION`` (default 7 days) is refused;
- hostile bodies (30,000-deep JSON, 5,000-digit numbers, ``a{4294967296}``,
  ``"duration": true``) get a 400 that says what is wrong, never a 500.
"""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.factories import MINIMAL_RULES
from watchdog.api.app import build_app
from watchdog.clock import FakeClock
from watchdog.errors import ConfigError
from watchdog.http.server import Router, serve
from watchdog.run.runtime import Runtime
from watchdog.settings import load_settings

T0 = 1_790_000_000.0
GOOD = {"matchers": ["rule=error-rate"], "duration": "2h", "created_by": "a", "comment": "b"}
JSON = {"content-type": "application/json"}


@dataclass
class Api:
    url: str
    port: int
    app: Router
    runtime: Runtime
    http: httpx.AsyncClient

    def made(self) -> int:
        return len(self.runtime.silences.all())

    async def via(self, client: str, method: str, path: str, **kw: object) -> httpx.Response:
        """The same app, reached from another client address (in-process)."""
        transport = httpx.ASGITransport(app=self.app, client=(client, 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
            return await c.request(method, path, **kw)  # type: ignore[arg-type]


@contextlib.asynccontextmanager
async def tokenless(
    tmp_path: Path, host: str = "127.0.0.1", **env_extra: str
) -> AsyncIterator[Api]:
    rules = tmp_path / "rules.yaml"
    rules.write_text(MINIMAL_RULES)
    env = {
        "WATCHDOG_RULES": str(rules),
        "WATCHDOG_STATE": str(tmp_path / "state.db"),
        "WATCHDOG_SECRETS_DIR": str(tmp_path / "no-secrets"),
        **env_extra,
    }
    async with httpx.AsyncClient(timeout=5.0) as http:
        runtime = await Runtime.build(load_settings(env), FakeClock(T0), http)
        try:
            app = build_app(
                runtime.watchdog,
                None,
                reload=runtime.reload,
                silences=runtime.silences,
                listen_host=host,
                allowed_hosts=runtime.settings.api_hosts,
            )
            async with serve(app, host) as srv:
                yield Api(srv.url, srv.port, app, runtime, http)
        finally:
            await runtime.stop()


# --- a hostile page in the operator's browser -------------------------------------------


async def test_text_plain_from_a_foreign_origin_makes_no_silence(tmp_path: Path) -> None:
    async with tokenless(tmp_path) as api:
        headers = {"content-type": "text/plain", "origin": "https://evil.example"}
        answer = await api.http.post(
            f"{api.url}/api/v1/silences", content=json.dumps(GOOD), headers=headers
        )
        assert answer.status_code in (403, 415), answer.text
        assert api.made() == 0
        # text/plain from no Origin at all (curl): still not JSON, refused with the fix.
        plain = await api.http.post(
            f"{api.url}/api/v1/silences",
            content=json.dumps(GOOD),
            headers={"content-type": "text/plain"},
        )
        assert plain.status_code == 415, plain.text
        assert "application/json" in plain.json()["error"]
        assert api.made() == 0


async def test_a_foreign_origin_is_refused_even_with_json(tmp_path: Path) -> None:
    async with tokenless(tmp_path) as api:
        for origin in ("https://evil.example", "null", f"http://127.0.0.1:{api.port + 1}"):
            answer = await api.http.post(
                f"{api.url}/api/v1/silences", json=GOOD, headers={"origin": origin}
            )
            assert answer.status_code == 403, (origin, answer.text)
            assert "Origin" in answer.json()["error"]
        assert api.made() == 0
        same = await api.http.post(
            f"{api.url}/api/v1/silences", json=GOOD, headers={"origin": api.url}
        )
        assert same.status_code == 201, same.text


async def test_a_page_cannot_trigger_a_reload(tmp_path: Path) -> None:
    async with tokenless(tmp_path) as api:
        before = api.runtime.watchdog.metrics.registry.get_sample_value(
            "watchdog_rules_reloads_total", {"result": "success"}
        )
        for headers in (
            {"content-type": "text/plain", "origin": "https://evil.example"},
            {"content-type": "application/x-www-form-urlencoded"},
            {"origin": "https://evil.example", **JSON},
        ):
            answer = await api.http.post(f"{api.url}/-/reload", headers=headers)
            assert answer.status_code in (403, 415), (headers, answer.text)
        after = api.runtime.watchdog.metrics.registry.get_sample_value(
            "watchdog_rules_reloads_total", {"result": "success"}
        )
        assert after == before
        ok = await api.http.post(f"{api.url}/-/reload", headers=JSON)
        assert ok.status_code == 200, ok.text


async def test_dns_rebinding_a_foreign_host_is_refused(tmp_path: Path) -> None:
    async with tokenless(tmp_path) as api:
        evil = {"host": f"rebind.evil.example:{api.port}"}
        for method, path in (("GET", "/api/v1/status"), ("GET", "/api/v1/silences")):
            answer = await api.http.request(method, f"{api.url}{path}", headers=evil)
            assert answer.status_code == 403, answer.text
            assert "Host" in answer.json()["error"]
        posted = await api.http.post(
            f"{api.url}/api/v1/silences",
            json=GOOD,
            headers={**evil, "origin": "http://" + evil["host"]},
        )
        assert posted.status_code == 403
        assert api.made() == 0
        for host in (f"localhost:{api.port}", f"127.0.0.1:{api.port}", "localhost"):
            fine = await api.http.get(f"{api.url}/api/v1/status", headers={"host": host})
            assert fine.status_code == 200, (host, fine.text)
        # /healthz and /metrics stay open whatever the Host (probes use the pod IP).
        health = await api.http.get(f"{api.url}/healthz", headers=evil)
        assert health.status_code == 200


async def test_extra_host_names_are_allowed_by_setting(tmp_path: Path) -> None:
    """WATCHDOG_API_ALLOWED_HOSTS: the names a port-forward or local proxy puts in
    ``Host`` are accepted (any case, trailing dot, a port); others stay refused."""
    extra = {"WATCHDOG_API_ALLOWED_HOSTS": "watchdog.internal, Proxy.Local., [fd00::1]"}
    async with tokenless(tmp_path, **extra) as api:
        for host in (
            f"watchdog.internal:{api.port}",
            "WATCHDOG.internal",
            "proxy.local.",
            f"[fd00::1]:{api.port}",
            "localhost",
        ):
            fine = await api.http.get(f"{api.url}/api/v1/status", headers={"host": host})
            assert fine.status_code == 200, (host, fine.text)
        for host in ("rebind.evil.example", "internal", "watchdog.internal.evil.example"):
            refused = await api.http.get(f"{api.url}/api/v1/status", headers={"host": host})
            assert refused.status_code == 403, (host, refused.text)
        posted = await api.http.post(
            f"{api.url}/api/v1/silences",
            json=GOOD,
            headers={
                "host": f"watchdog.internal:{api.port}",
                "origin": f"http://watchdog.internal:{api.port}",
            },
        )
        assert posted.status_code == 201, posted.text


@pytest.mark.parametrize("bad", ["http://watchdog.internal", "a b", "host/path", "*"])
def test_an_allowed_host_that_is_not_a_name_is_a_config_error(bad: str) -> None:
    with pytest.raises(ConfigError, match=r"WATCHDOG_API_ALLOWED_HOSTS: .* is not a host name"):
        load_settings({"WATCHDOG_API_ALLOWED_HOSTS": f"ok.example,{bad}"})


async def test_only_exact_loopback_addresses_are_trusted(tmp_path: Path) -> None:
    async with tokenless(tmp_path) as api:
        for client in ("127.0.0.6", "127.1.2.3", "::ffff:127.0.0.6", "10.0.0.1"):
            answer = await api.via(client, "GET", "/api/v1/status")
            assert answer.status_code == 403, (client, answer.text)
        for client in ("127.0.0.1", "::1", "::ffff:127.0.0.1"):
            answer = await api.via(client, "GET", "/api/v1/status")
            assert answer.status_code == 200, (client, answer.text)


def _dual_stack() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _dual_stack(), reason="no IPv6 on this machine")
async def test_dual_stack_listen_serves_the_ipv4_loopback_cli(tmp_path: Path) -> None:
    """WATCHDOG_LISTEN=[::]:9464: the CLI on 127.0.0.1 arrives as ::ffff:127.0.0.1."""
    async with tokenless(tmp_path, host="::") as api:
        url = f"http://127.0.0.1:{api.port}"
        answer = await api.http.post(f"{url}/api/v1/silences", json=GOOD)
        assert answer.status_code == 201, answer.text


# --- silence length ------------------------------------------------------------------


async def test_a_silence_until_9999_is_refused(tmp_path: Path) -> None:
    async with tokenless(tmp_path) as api:
        forever = {**GOOD, "duration": None, "ends_at": 253_402_300_799.0}
        answer = await api.http.post(f"{api.url}/api/v1/silences", json=forever)
        assert answer.status_code == 400, answer.text
        assert "WATCHDOG_SILENCE_MAX_DURATION" in answer.json()["error"]
        week = await api.http.post(f"{api.url}/api/v1/silences", json={**GOOD, "duration": "8d"})
        assert week.status_code == 400
        far = await api.http.post(
            f"{api.url}/api/v1/silences", json={**GOOD, "starts_at": T0 + 30 * 86400}
        )
        assert far.status_code == 400, far.text
        fine = await api.http.post(f"{api.url}/api/v1/silences", json={**GOOD, "duration": "7d"})
        assert fine.status_code == 201, fine.text


async def test_the_silence_limit_is_configurable(tmp_path: Path) -> None:
    async with tokenless(tmp_path, WATCHDOG_SILENCE_MAX_DURATION="1h") as api:
        over = await api.http.post(f"{api.url}/api/v1/silences", json=GOOD)  # 2h
        assert over.status_code == 400
        assert "1h" in over.json()["error"]


# --- hostile bodies --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"[" * 30_000 + b"]" * 30_000, "nested"),
        (b'{"matchers": ' + b"[" * 200 + b"]" * 200 + b"}", "nested"),
        (json.dumps({**GOOD, "starts_at": 0}).replace("0", "9" * 5000, 1).encode(), "JSON"),
        (b'{"starts_at": ' + b"9" * 5000 + b"}", "JSON"),
        (json.dumps({**GOOD, "starts_at": int("9" * 4000)}).encode(), "starts_at"),
        (json.dumps({**GOOD, "matchers": ["rule=~a{4294967296}"]}).encode(), "repeat"),
        (json.dumps({**GOOD, "matchers": ["rule=~a{1000}"]}).encode(), "repeat"),
        (json.dumps({**GOOD, "duration": True}).encode(), "duration"),
        (json.dumps({**GOOD, "ends_at": True, "duration": None}).encode(), "ends_at"),
        (b'{"starts_at": NaN, "created_by": "a", "comment": "b"}', "NaN"),
    ],
)
async def test_hostile_bodies_get_a_400_that_says_why(
    tmp_path: Path, body: bytes, says: str
) -> None:
    async with tokenless(tmp_path) as api:
        answer = await api.http.post(f"{api.url}/api/v1/silences", content=body, headers=JSON)
        assert answer.status_code == 400, answer.text[:300]
        assert says in answer.json()["error"], answer.text[:300]
        assert api.made() == 0
