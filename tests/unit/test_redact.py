"""One helper redacts URLs' userinfo (and password-like query values) everywhere."""

from __future__ import annotations

import pytest

from watchdog.redact import redact_url, redact_urls


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://wd:hunter2@db:5432/wd", "postgresql://wd:***@db:5432/wd"),
        ("https://ghp_token123@github.com/o/r", "https://***@github.com/o/r"),
        ("postgresql://db/wd?user=wd&password=hunter2", "postgresql://db/wd?user=wd&password=***"),
        ("postgresql://wd@db/wd", "postgresql://wd@db/wd"),
        ("http://127.0.0.1:9090", "http://127.0.0.1:9090"),
        ("state/watchdog.db", "state/watchdog.db"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_redact_urls_in_free_text() -> None:
    text = "failover from postgresql://a:p1@h1/db to postgresql://a:p2@h2/db (timeout)"
    assert redact_urls(text) == (
        "failover from postgresql://a:***@h1/db to postgresql://a:***@h2/db (timeout)"
    )
