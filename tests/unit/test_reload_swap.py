"""A reload swaps one reference (issue 12): the runtime builds a new playbook from the
new rules and every holder reads that one. Before, ``Runtime._reload`` copied four
attributes into the live playbook, so the next field added to ``Playbook`` would have
kept the old rules' value after a reload."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from tests.world import world
from watchdog.actions.registry import build_actions
from watchdog.rules.load import load_rules
from watchdog.run.runtime import build_playbook

NEW_TARGET = "  frontend2: {type: cloudflare-pages, project: site2, purge: [zone2]}\n"
NEW_PURGE = "  zone2: {type: cloudflare-zone, zone: zone2, everything: true}\n"
NEW_NOTIFIER = "  lead2: {type: slack, webhook_secret: slack_webhook}\n"


async def test_a_reload_changes_every_field_the_rules_drive(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        runtime = w.runtime
        old = runtime.playbook
        rules = tmp_path / "rules.yaml"
        text = rules.read_text()
        text = text.replace("targets:\n", "targets:\n" + NEW_TARGET)
        text = text.replace("purges:\n", "purges:\n" + NEW_PURGE)
        text = text.replace("notifiers:\n", "notifiers:\n" + NEW_NOTIFIER)
        rules.write_text(text)
        assert await runtime.reload() is True

        new = runtime.playbook
        assert new is not old
        assert runtime.manager.playbook is new
        # What a playbook built straight from the new rules holds, field by field: a
        # field added to Playbook is compared here without this test naming it.
        ruleset = load_rules([rules])
        actions = build_actions(ruleset, runtime.settings, runtime.http, runtime.clock)
        reference = build_playbook(actions, runtime.store, runtime.clock, runtime.watchdog.metrics)
        assert set(vars(new)) == set(vars(reference))
        for name, value in vars(new).items():
            expected = vars(reference)[name]
            if isinstance(value, Mapping):
                assert sorted(value) == sorted(expected), name
                assert sorted(value) != sorted(vars(old)[name]), f"{name} kept the old rules"
            else:
                assert value is expected, name
        assert new.target_purges["frontend2"] == ("zone2",)
