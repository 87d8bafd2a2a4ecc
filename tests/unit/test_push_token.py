"""``WATCHDOG_PUSH_TOKEN`` opens the push routes (a Tail Worker's events, Alertmanager's
webhook) and nothing else, with the API token set or not (loopback mode), so the secret a
Tail Worker holds can never silence or roll back. The API token still opens everything."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Counter
from pydantic import SecretStr

from watchdog.api.app import ControlAuth
from watchdog.errors import ConfigError
from watchdog.http.server import Request
from watchdog.settings import load_settings

PUSH, API = "push-secret", "api-secret"


def auth(api_token: str | None) -> ControlAuth:
    refusals = Counter("refused", "refusals", ["reason"], registry=CollectorRegistry())
    token = SecretStr(api_token) if api_token is not None else None
    return ControlAuth(token, refusals, push_token=SecretStr(PUSH))


def request(path: str, bearer: str | None, client: str = "203.0.113.7") -> Request:
    headers = {"host": "watchdog.example", "content-type": "application/json"}
    if bearer is not None:
        headers["authorization"] = f"Bearer {bearer}"
    return Request("POST", path, {}, headers, b"[]", client)


@pytest.mark.parametrize("api_token", [API, None])
@pytest.mark.parametrize("path", ["/api/v1/tail/edge", "/api/v1/alertmanager/am"])
async def test_the_push_token_opens_the_push_routes(api_token: str | None, path: str) -> None:
    assert await auth(api_token)(request(path, PUSH)) is None


@pytest.mark.parametrize(("api_token", "status"), [(API, 401), (None, 403)])
@pytest.mark.parametrize(
    "path", ["/api/v1/silences", "/-/reload", "/api/v1/ramps", "/api/v1/tailx"]
)
async def test_the_push_token_opens_nothing_else(
    api_token: str | None, status: int, path: str
) -> None:
    refused = await auth(api_token)(request(path, PUSH))
    assert refused is not None
    assert refused.status == status


async def test_a_wrong_push_token_is_refused_and_the_api_token_still_works() -> None:
    with_token = auth(API)
    wrong = await with_token(request("/api/v1/tail/edge", "guess"))
    assert wrong is not None
    assert wrong.status == 401
    assert await with_token(request("/api/v1/tail/edge", API)) is None
    assert await with_token(request("/api/v1/silences", API)) is None
    loopback_only = await auth(None)(request("/api/v1/tail/edge", "guess"))
    assert loopback_only is not None
    assert loopback_only.status == 403


def test_the_push_token_comes_from_the_environment_or_the_secrets_dir(tmp_path: object) -> None:
    from pathlib import Path

    secrets = Path(str(tmp_path))
    (secrets / "watchdog_push_token").write_text("from-file")
    base = {"WATCHDOG_RULES": "rules.yaml", "WATCHDOG_SECRETS_DIR": str(secrets)}
    from_file = load_settings(base).push_token
    assert from_file is not None
    assert from_file.get_secret_value() == "from-file"
    from_env = load_settings({**base, "WATCHDOG_PUSH_TOKEN": "from-env"}).push_token
    assert from_env is not None
    assert from_env.get_secret_value() == "from-env"
    assert "watchdog_push_token" not in load_settings(base).secrets  # not a notifier secret
    with pytest.raises(ConfigError, match="WATCHDOG_PUSH_TOKEN: set but empty"):
        load_settings({**base, "WATCHDOG_PUSH_TOKEN": " "})
