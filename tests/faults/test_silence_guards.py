"""Fault matrix, silences as an operator (or an attacker) writes them:

- trust issue defect 9: ``silence add --comment x`` with no matcher silenced every
  action (amtool refuses "no matchers"): now refused unless ``--all``; a matcher that
  meets no loaded rule, target or severity (``rule=eror-rate``, a typo) silenced
  nothing and was accepted: now refused unless ``--force``, with the known names
  suggested. The HTTP API the same (``"all"`` / ``"force"`` in the body).
- terminal escapes (ANSI, OSC 52 clipboard writes, NUL, bidi overrides) stored in a
  silence were printed raw by ``silence query`` and ``status``: now escaped.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.factories import MINIMAL_RULES
from watchdog.api.app import build_app
from watchdog.cli.main import main
from watchdog.clock import SystemClock
from watchdog.http.server import serve
from watchdog.run.runtime import Runtime
from watchdog.settings import load_settings
from watchdog.termtext import printable

HOSTILE = "\x1b[2J\x1b]52;c;cm0gLXJmIH4K\x07owned\x00\r\u202eevil"


@dataclass
class Api:
    url: str
    runtime: Runtime
    http: httpx.AsyncClient


@contextlib.asynccontextmanager
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    rules = tmp_path / "rules.yaml"
    rules.write_text(MINIMAL_RULES)
    env = {
        "WATCHDOG_RULES": str(rules),
        "WATCHDOG_STATE": str(tmp_path / "state.db"),
        "WATCHDOG_SECRETS_DIR": str(tmp_path / "no-secrets"),
    }
    async with httpx.AsyncClient(timeout=5.0) as http:
        runtime = await Runtime.build(load_settings(env), SystemClock(), http)
        try:
            app = build_app(
                runtime.watchdog,
                None,
                extra_status=runtime.status_extra,
                silences=runtime.silences,
            )
            async with serve(app) as srv:
                yield Api(srv.url, runtime, http)
        finally:
            await runtime.stop()


async def cli(a: Api, *argv: str) -> int:
    """The CLI runs its own event loop: give it a thread, as a shell would a process."""
    return await asyncio.to_thread(main, [*argv, "--url", a.url])


# --- defect 9: no matcher, a typo ----------------------------------------------------------


async def test_cli_refuses_a_silence_without_matchers_unless_all(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with api(tmp_path) as a:
        assert await cli(a, "silence", "add", "--comment", "x") == 2
        assert "no matchers" in capsys.readouterr().err
        assert a.runtime.silences.all() == []
        assert await cli(a, "silence", "add", "--all", "--comment", "migrating") == 0
        (made,) = a.runtime.silences.all()
        assert made.matchers == []


async def test_cli_refuses_a_typo_and_suggests_the_known_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with api(tmp_path) as a:
        assert await cli(a, "silence", "add", "rule=eror-rate", "--comment", "x") == 1
        err = capsys.readouterr().err
        assert "matches no loaded rule" in err
        assert "did you mean error-rate?" in err
        assert await cli(a, "silence", "add", "severity=crit", "--comment", "x") == 1
        assert "known: critical, high, medium, low" in capsys.readouterr().err
        assert a.runtime.silences.all() == []
        assert await cli(a, "silence", "add", "rule=eror-rate", "--force", "--comment", "x") == 0
        assert await cli(a, "silence", "add", "rule=~error-.*", "--comment", "ok") == 0
        assert len(a.runtime.silences.all()) == 2


async def test_api_needs_all_for_no_matchers_and_force_for_unknown_names(
    tmp_path: Path,
) -> None:
    base = {"duration": "1h", "created_by": "alice", "comment": "x"}
    async with api(tmp_path) as a:
        url = f"{a.url}/api/v1/silences"
        none = await a.http.post(url, json=base)
        assert none.status_code == 400
        assert "no matchers" in none.json()["error"]
        unknown = await a.http.post(url, json={**base, "matchers": ["target=worker"]})
        assert unknown.status_code == 400
        assert "matches no loaded target (known: none loaded)" in unknown.json()["error"]
        negated = await a.http.post(url, json={**base, "matchers": ["rule!=error-rate"]})
        assert negated.status_code == 400  # every known rule is excluded: matches none
        assert a.runtime.silences.all() == []
        assert (await a.http.post(url, json={**base, "all": True})).status_code == 201
        forced = {**base, "matchers": ["target=worker"], "force": True}
        assert (await a.http.post(url, json=forced)).status_code == 201


# --- terminal escapes --------------------------------------------------------------------


async def test_query_and_status_escape_terminal_sequences(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with api(tmp_path) as a:
        body = {
            "matchers": [f"rule=~error-rate|{HOSTILE}"],
            "duration": "1h",
            "created_by": f"mallory{HOSTILE}",
            "comment": HOSTILE,
        }
        made = await a.http.post(f"{a.url}/api/v1/silences", json=body)
        assert made.status_code == 201, made.text
        capsys.readouterr()
        for argv in (("silence", "query"), ("status",)):
            assert await cli(a, *argv) == 0
            out = capsys.readouterr().out
            assert "owned" in out  # the text is shown ...
            for raw in ("\x1b", "\x07", "\x00", "\r", "\u202e"):
                assert raw not in out, (argv, repr(raw))  # ... its controls are not
            assert "\\x1b[2J\\x1b]52;c;cm0gLXJmIH4K\\x07owned\\x00\\x0d\\u202eevil" in out


def test_printable_keeps_ordinary_text() -> None:
    for text in ("error-rate", "deploying by hand ✅", "Größe: 5%", "target=~worker|frontend"):
        assert printable(text) == text
    assert printable("a\nb\tc\x7f\x9b") == "a\\x0ab\\x09c\\x7f\\x9b"
