"""The shipped dashboard shows what the ``grafana`` notifier posts: an annotation query
by tag on Grafana's own annotations, with tags every posted annotation carries."""

from __future__ import annotations

import json
from pathlib import Path

from tests.notify_helpers import event
from watchdog.actions.notify.event import EventKind, SilenceEvent
from watchdog.actions.notify.grafana import event_tags, silence_tags
from watchdog.rules.response import GrafanaNotifierSpec

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "rollback-watchdog.json"


def tag_queries() -> list[dict[str, object]]:
    annotations = json.loads(DASHBOARD.read_text())["annotations"]["list"]
    return [
        a
        for a in annotations
        if a.get("datasource") == {"type": "datasource", "uid": "grafana"}
        and isinstance(a.get("target"), dict)
        and a["target"].get("type") == "tags"
        and a.get("enable") is True
    ]


def test_the_dashboard_queries_the_notifiers_annotations_by_tag() -> None:
    queries = tag_queries()
    assert queries, "the dashboard has no enabled annotation query by tag"
    default_tags = GrafanaNotifierSpec(type="grafana", url="http://grafana").tags
    posted = [set(event_tags(default_tags, event(kind))) for kind in EventKind] + [
        set(
            silence_tags(
                default_tags, SilenceEvent("created", "s", (), 0.0, 60.0, "alice", "", 0.0)
            )
        )
    ]
    for query in queries:
        target = query["target"]
        assert isinstance(target, dict)
        wanted = set(target["tags"])
        assert wanted, "a tag query without tags matches nothing"
        # matchAny false: an annotation must carry every tag the query names.
        assert all(wanted <= tags for tags in posted), (wanted, posted)
