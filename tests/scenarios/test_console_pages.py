"""The console's pages over a whole world (local Cloudflare API, receivers, a Runtime on
a virtual clock): a breach shows the rule firing and an incident with its timeline; the
incident's page has the post-mortem draft; the targets show what is live, the rollback
candidate and why; DRY RUN shows; an unknown incident is a 404 page; a store that does
not answer is said on the page, which still shows the rules."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx

from tests.world import BusyStore, World, world
from watchdog.api import console
from watchdog.api.app import build_app
from watchdog.errors import StoreError
from watchdog.store.base import IncidentRecord, SilenceRecord


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


class UnreadableStore(BusyStore):
    """The SQLite store with a switch: while ``down``, reads of incidents and writes of
    silences raise ``StoreError``, as a locked or vanished volume makes them."""

    down = False

    def _check(self) -> None:
        if self.down:
            raise StoreError(f"state store {self.path}: disk I/O error")

    async def open_incidents(self) -> list[IncidentRecord]:
        self._check()
        return await super().open_incidents()

    async def get_incident(self, incident_id: str) -> IncidentRecord | None:
        self._check()
        return await super().get_incident(incident_id)

    async def save_silence(self, silence: SilenceRecord) -> None:
        self._check()
        await super().save_silence(silence)


async def test_a_store_that_does_not_answer_is_said_and_the_rest_still_shows(
    tmp_path: Path,
) -> None:
    async with (
        world(tmp_path, store_factory=UnreadableStore) as w,
        pages(w) as (http, _),
    ):
        store = w.runtime.store
        assert isinstance(store, UnreadableStore)
        store.down = True
        shown = await http.get("/")
        assert shown.status_code == 200
        assert "The state store did not answer" in shown.text
        assert 'id="rule-error-rate"' in shown.text
        assert (await http.get("/incidents/any")).status_code == 503
        csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', shown.text)
        assert csrf is not None
        form = {
            "csrf": csrf.group(1),
            "matchers": "rule=error-rate",
            "duration": "1h",
            "created_by": "alice",
            "comment": "by hand",
        }
        refused = await http.post(
            "/console/silences", data=form, headers={"origin": "http://localhost"}
        )
        assert refused.status_code == 400
        assert "the silence was not saved" in refused.text
        assert w.runtime.silences.all() == []
        store.down = False
