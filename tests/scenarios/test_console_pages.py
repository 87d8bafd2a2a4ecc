"""The console's pages over a whole world (local Cloudflare API, receivers, a Runtime on
a virtual clock): a breach shows the rule firing and an incident with its timeline; the
incident's page has the post-mortem draft; the targets show what is live, the rollback
candidate and why; DRY RUN shows; an unknown incident is a 404 page."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx

from tests.world import World, world
from watchdog.api import console
from watchdog.api.app import build_app


@contextlib.asynccontextmanager
async def pages(w: World) -> AsyncIterator[tuple[httpx.AsyncClient, console.Console]]:
    rt = w.runtime
    app = build_app(rt.watchdog, None, silences=rt.silences)
    page = console.install(app, rt, "127.0.0.1")
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as http:
            yield http, page
    finally:
        await page.close()


async def test_a_breach_shows_the_rule_firing_and_the_incident(tmp_path: Path) -> None:
    async with world(tmp_path) as w, pages(w) as (http, page):
        calm = await http.get("/")
        assert 'class="rule state-inactive" id="rule-error-rate"' in calm.text
        assert "No open incident." in calm.text
        await w.feed("error_rate", [0.01] * 4 + [0.2] * 22)
        hot = await http.get("/")
        assert 'class="rule state-firing" id="rule-error-rate"' in hot.text
        incident = (await w.runtime.store.open_incidents())[0]
        assert f'id="incident-{incident.id}"' in hot.text
        assert "rollback finished" in hot.text
        assert f'href="/incidents/{incident.id}#postmortem"' in hot.text
        timeline = hot.text.split('id="incidents"')[1].split('id="silences"')[0]
        assert "purge zone" in timeline
        assert "<strong>notified</strong>" not in timeline  # left for the incident's page
        one = await http.get(f"/incidents/{incident.id}")
        assert one.status_code == 200
        assert "# Post-Mortem:" in one.text
        assert "<strong>notified</strong>" in one.text
        draft = await http.get(f"/incidents/{incident.id}/postmortem.md")
        assert draft.headers["content-type"].startswith("text/markdown")
        assert draft.text.startswith("# Post-Mortem:")
        missing = await http.get("/incidents/nope")
        assert missing.status_code == 404
        await page.targets.wait()
        with_targets = await http.get("/")
        assert 'id="target-worker"' in with_targets.text
        assert 'id="target-frontend"' in with_targets.text
        assert "rollback to" in with_targets.text
        assert "rolled away" in with_targets.text  # v3, rolled back from


async def test_dry_run_and_follower_banners(tmp_path: Path) -> None:
    async with world(tmp_path, env={"WATCHDOG_DRY_RUN": "1"}) as w, pages(w) as (http, _):
        page = await http.get("/")
        assert "DRY RUN" in page.text
        assert "LEADER" in page.text
        w.runtime.gate.acting = False
        follower = await http.get("/")
        assert "FOLLOWER" in follower.text
