"""Fault matrix, the console's forms and who may see them:

- a form posted from another site (foreign ``Origin``, or a foreign ``Referer`` with
  no ``Origin``, or neither) is refused, even with a valid CSRF token: no silence;
- a form without this page's CSRF token (missing, forged, another session's) is
  refused, even from this server's own origin: no silence;
- without a token the console answers only loopback clients and a ``Host`` that names
  this server (DNS rebinding); with a token it needs the sign-in cookie, and a POST
  without it changes nothing;
- amtool's guards hold in the form: a matcher required (or "every action" ticked),
  unknown names refused with a hint, bad matcher names refused;
- what people typed is escaped, and the page forbids framing and inline scripts.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.factories import MINIMAL_RULES
from watchdog.api import console
from watchdog.api.app import build_app
from watchdog.clock import FakeClock
from watchdog.http.server import Router
from watchdog.run.runtime import Runtime
from watchdog.settings import load_settings

T0 = 1_790_000_000.0
ORIGIN = "http://localhost"
API_TOKEN = "console-test-token-31f"


@dataclass
class Console:
    app: Router
    runtime: Runtime

    def client(self, address: str = "127.0.0.1", host: str = "localhost") -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=self.app, client=(address, 40000))
        return httpx.AsyncClient(transport=transport, base_url=f"http://{host}")

    def made(self) -> int:
        return len(self.runtime.silences.all())

    async def csrf(self, http: httpx.AsyncClient) -> str:
        page = await http.get("/")
        assert page.status_code == 200, page.text
        found = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text)
        assert found is not None
        return found.group(1)


@contextlib.asynccontextmanager
async def running(tmp_path: Path, token: str | None = None) -> AsyncIterator[Console]:
    rules = tmp_path / "rules.yaml"
    rules.write_text(MINIMAL_RULES)
    env = {
        "WATCHDOG_RULES": str(rules),
        "WATCHDOG_STATE": str(tmp_path / "state.db"),
        "WATCHDOG_SECRETS_DIR": str(tmp_path / "no-secrets"),
        **({"WATCHDOG_API_TOKEN": token} if token else {}),
    }
    async with httpx.AsyncClient(timeout=5.0) as http:
        runtime = await Runtime.build(load_settings(env), FakeClock(T0), http)
        try:
            app = build_app(runtime.watchdog, runtime.settings.api_token, silences=runtime.silences)
            page = console.install(app, runtime, "127.0.0.1")
            try:
                yield Console(app, runtime)
            finally:
                await page.close()
        finally:
            await runtime.stop()


def silence_form(csrf: str, **fields: str) -> dict[str, str]:
    return {
        "csrf": csrf,
        "matchers": "rule=error-rate",
        "duration": "2h",
        "created_by": "alice",
        "comment": "deploying by hand",
        **fields,
    }


async def test_a_form_from_another_site_is_refused_even_with_a_valid_csrf_token(
    tmp_path: Path,
) -> None:
    async with running(tmp_path) as c, c.client() as http:
        csrf = await c.csrf(http)
        for headers in (
            {"origin": "https://evil.example"},
            {"origin": "null"},
            {"origin": "http://localhost:9999"},  # another port is another origin
            {"referer": "https://evil.example/page"},  # no Origin: the Referer decides
            {},  # neither
        ):
            answer = await http.post("/console/silences", data=silence_form(csrf), headers=headers)
            assert answer.status_code == 403, (headers, answer.text)
        assert c.made() == 0
        registry = c.runtime.watchdog.metrics.registry
        refused = [
            registry.get_sample_value("watchdog_api_refused_total", {"reason": reason}) or 0
            for reason in ("console_foreign_origin", "console_no_origin")
        ]
        assert refused == [4, 1]
        ok = await http.post(
            "/console/silences", data=silence_form(csrf), headers={"referer": f"{ORIGIN}/"}
        )
        assert ok.status_code == 303, ok.text
        assert c.made() == 1


async def test_a_form_without_this_pages_csrf_token_is_refused(tmp_path: Path) -> None:
    async with running(tmp_path) as c, c.client() as http:
        csrf = await c.csrf(http)
        for forged in ("", "0" * 64, csrf[:-1] + ("0" if csrf[-1] != "0" else "1")):
            answer = await http.post(
                "/console/silences", data=silence_form(forged), headers={"origin": ORIGIN}
            )
            assert answer.status_code == 403, answer.text
            assert "CSRF" in answer.text
        expire = await http.post(
            "/console/silences/x/expire", data={"csrf": ""}, headers={"origin": ORIGIN}
        )
        assert expire.status_code == 403
        assert c.made() == 0
        ok = await http.post(
            "/console/silences", data=silence_form(csrf), headers={"origin": ORIGIN}
        )
        assert ok.status_code == 303
        assert ok.headers["location"] == "/?done=added#silences"
        made = c.runtime.silences.all()[0]
        assert made.matchers == [{"name": "rule", "op": "=", "value": "error-rate"}]
        gone = await http.post(
            f"/console/silences/{made.id}/expire", data={"csrf": csrf}, headers={"origin": ORIGIN}
        )
        assert gone.status_code == 303
        assert c.runtime.silences.all()[0].expired_at == T0


async def test_without_a_token_only_loopback_and_this_servers_names(tmp_path: Path) -> None:
    async with running(tmp_path) as c:
        async with c.client(address="10.0.0.7") as far:
            assert (await far.get("/")).status_code == 403
        async with c.client(host="evil.example") as rebound:  # DNS rebinding
            assert (await rebound.get("/")).status_code == 403
        async with c.client() as near:
            page = await near.get("/")
            assert page.status_code == 200
            static = await near.get("/static/console.css")
            assert static.status_code == 200
            again = await near.get(
                "/static/console.css", headers={"if-none-match": static.headers["etag"]}
            )
            assert again.status_code == 304


async def test_with_a_token_the_console_needs_the_sign_in(tmp_path: Path) -> None:
    async with running(tmp_path, API_TOKEN) as c, c.client(address="10.0.0.7") as http:
        first = await http.get("/")
        assert first.status_code == 303
        assert first.headers["location"] == "/console/login"
        login = await http.get("/console/login")
        csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', login.text)
        assert csrf is not None
        # Signed out, a same-origin form with the sign-in page's token changes nothing.
        blind = await http.post(
            "/console/silences", data=silence_form(csrf.group(1)), headers={"origin": ORIGIN}
        )
        assert blind.status_code == 401
        assert c.made() == 0
        wrong = await http.post(
            "/console/login",
            data={"csrf": csrf.group(1), "token": "nope"},
            headers={"origin": ORIGIN},
        )
        assert wrong.status_code == 401
        right = await http.post(
            "/console/login",
            data={"csrf": csrf.group(1), "token": API_TOKEN},
            headers={"origin": ORIGIN},
        )
        assert right.status_code == 303
        cookie = right.headers["set-cookie"]
        assert "HttpOnly" in cookie
        assert "SameSite=Strict" in cookie
        assert API_TOKEN not in cookie
        page = await http.get("/")  # the client keeps the cookie
        assert page.status_code == 200
        session = right.headers["set-cookie"].split(";")[0]
        async with c.client(address="10.0.0.7") as other:  # another app's odd cookie too
            mixed = await other.get("/", headers={"cookie": f'a="b\\"; {session}; x=[y]'})
            assert mixed.status_code == 200
        signed = await c.csrf(http)
        assert signed != csrf.group(1)  # bound to the session
        ok = await http.post(
            "/console/silences", data=silence_form(signed), headers={"origin": ORIGIN}
        )
        assert ok.status_code == 303, ok.text
        assert c.made() == 1


async def test_the_forms_keep_amtools_guards(tmp_path: Path) -> None:
    async with running(tmp_path) as c, c.client() as http:
        csrf = await c.csrf(http)
        cases = {
            "": "no matchers",
            "rule=eror-rate": "did you mean error-rate",
            "colour=red": "matcher name 'colour' unknown",
            "rule=~(": "bad regular expression",
        }
        for matchers, says in cases.items():
            answer = await http.post(
                "/console/silences",
                data=silence_form(csrf, matchers=matchers),
                headers={"origin": ORIGIN},
            )
            assert answer.status_code == 400, matchers
            assert says in answer.text.replace("&#39;", "'"), (matchers, answer.text[-2000:])
            assert f'value="{matchers.replace("<", "&lt;")}"' in answer.text  # kept for a fix
        assert c.made() == 0
        everything = await http.post(
            "/console/silences",
            data=silence_form(csrf, matchers="", all="on"),
            headers={"origin": ORIGIN},
        )
        assert everything.status_code == 303
        page = await http.get("/")
        assert "SILENCED" in page.text


async def test_what_people_typed_is_escaped_and_the_page_cannot_be_framed(tmp_path: Path) -> None:
    async with running(tmp_path) as c, c.client() as http:
        csrf = await c.csrf(http)
        await http.post(
            "/console/silences",
            data=silence_form(csrf, comment="<script>alert(1)</script>", created_by='"><b>x'),
            headers={"origin": ORIGIN},
        )
        page = await http.get("/")
        assert "<script>alert(1)" not in page.text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
        assert '"><b>x' not in page.text
        assert page.headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert '<meta name="viewport"' in page.text
        assert page.headers["content-encoding"] == "gzip"  # httpx asks for it
        live = await http.get("/?fragment=live")
        assert "<html" not in live.text
        assert 'id="rule-error-rate"' in live.text
