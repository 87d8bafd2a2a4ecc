"""A real Alertmanager (Debian's ``prometheus-alertmanager``) on loopback for tests.

``start_alertmanager(webhook_url, token)`` writes a config whose one receiver is a
webhook to ``webhook_url`` (with a Bearer token when given), grouping by alertname
and flushing every second, starts the binary on a free port with clustering off and a
temporary data directory, waits until ``/-/ready`` answers (a bounded number of
polls) and stops it at teardown. Without the binary the tests skip, except under
``CI`` where they fail: CI must not silently test less (``.ci/run`` installs it).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.servers import RunningServer, binary, launch, stop


class RunningAlertmanager(RunningServer):
    async def alerts(self, http: httpx.AsyncClient, **filters: str) -> list[dict[str, Any]]:
        """``GET /api/v2/alerts``: the alerts Alertmanager holds as active (not resolved)."""
        response = await http.get(f"{self.url}/api/v2/alerts", params=filters)
        assert response.status_code == 200, response.text
        found: list[dict[str, Any]] = response.json()
        return found


StartAlertmanager = Callable[[str, str | None], Awaitable[RunningAlertmanager]]


def config(webhook_url: str, token_file: Path | None) -> str:
    auth = (
        f"        http_config:\n          authorization:\n"
        f"            credentials_file: {token_file}\n"
        if token_file is not None
        else ""
    )
    return (
        "route:\n"
        "  receiver: watchdog\n"
        "  group_by: [alertname]\n"
        "  group_wait: 0s\n"
        "  group_interval: 1s\n"
        "  repeat_interval: 1m\n"
        "receivers:\n"
        "  - name: watchdog\n"
        "    webhook_configs:\n"
        f"      - url: {webhook_url}\n"
        "        send_resolved: true\n"
        f"{auth}"
    )


@pytest.fixture
def alertmanager_binary() -> str:
    return binary(["prometheus-alertmanager", "alertmanager"], "prometheus-alertmanager")


@pytest.fixture
async def start_alertmanager(
    alertmanager_binary: str, tmp_path: Path
) -> AsyncIterator[StartAlertmanager]:
    started: list[RunningAlertmanager] = []

    async def start(webhook_url: str, token: str | None) -> RunningAlertmanager:
        workdir = tmp_path / f"alertmanager-{len(started)}"
        workdir.mkdir()
        token_file = None
        if token is not None:
            token_file = workdir / "token"
            token_file.write_text(token)
        conf = workdir / "alertmanager.yml"
        conf.write_text(config(webhook_url, token_file))

        def argv(port: int, attempt: int) -> list[str]:
            return [
                alertmanager_binary,
                f"--config.file={conf}",
                f"--storage.path={workdir / f'data-{attempt}'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--cluster.listen-address=",
                "--log.level=debug",
            ]

        running = await launch(RunningAlertmanager, "alertmanager", workdir, argv)
        started.append(running)
        return running

    yield start
    for running in started:
        await stop(running.process)
