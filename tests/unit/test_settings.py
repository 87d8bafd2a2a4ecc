"""Settings from the environment and the secrets directory; bad values name the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from watchdog.errors import ConfigError
from watchdog.settings import DEFAULT_CLOUDFLARE_API_URL, load_settings

NO_SECRETS = {"WATCHDOG_SECRETS_DIR": "/nonexistent"}


def test_defaults() -> None:
    """With nothing set: the documented defaults, the real Cloudflare API."""
    settings = load_settings(NO_SECRETS)
    assert settings.rules_paths == ["/etc/rollback-watchdog/rules"]
    assert settings.listen == "127.0.0.1:9464"
    assert settings.cloudflare_api_url == DEFAULT_CLOUDFLARE_API_URL
    assert (settings.dry_run, settings.silenced, settings.log_format) == (False, False, "json")


def test_environment_with_prefix_aliases_and_nested_secrets() -> None:
    """WATCHDOG_* with a prefix, the ecosystem's unprefixed names, nested secrets."""
    settings = load_settings(
        {
            **NO_SECRETS,
            "WATCHDOG_RULES": "a.yaml:rules.d",
            "WATCHDOG_DRY_RUN": "true",
            "WATCHDOG_CLOUDFLARE_API_URL": "http://127.0.0.1:8787/client/v4/",
            "CLOUDFLARE_API_TOKEN": "tok-123",
            "CLOUDFLARE_ACCOUNT_ID": "acct",
            "SENTRY_DSN": "https://k@sentry.example/1",
            "WATCHDOG_SECRETS__SLACK_WEBHOOK": "https://hooks.slack.com/services/T/B/x",
        }
    )
    assert settings.rules_paths == ["a.yaml", "rules.d"]
    assert settings.dry_run is True
    assert settings.cloudflare_api_url == "http://127.0.0.1:8787/client/v4"
    assert settings.cloudflare_api_token is not None
    assert settings.cloudflare_api_token.get_secret_value() == "tok-123"
    assert settings.cloudflare_account_id == "acct"
    secret = settings.secret("SLACK_WEBHOOK")
    assert secret is not None
    assert secret.get_secret_value().endswith("/x")
    assert "tok-123" not in repr(settings)
    assert "hooks.slack.com" not in repr(settings)


def test_secrets_directory(tmp_path: Path) -> None:
    """One file per secret; the environment wins over a file."""
    (tmp_path / "cloudflare_api_token").write_text("from-file\n")
    (tmp_path / "pagerduty_routing_key").write_text("pd-key\n")
    (tmp_path / "slack_webhook").write_text("file-url\n")
    settings = load_settings(
        {
            "WATCHDOG_SECRETS_DIR": str(tmp_path),
            "WATCHDOG_SECRETS__SLACK_WEBHOOK": "env-url",
        }
    )
    assert settings.cloudflare_api_token is not None
    assert settings.cloudflare_api_token.get_secret_value() == "from-file"
    pd = settings.secret("pagerduty_routing_key")
    slack = settings.secret("slack_webhook")
    assert pd is not None
    assert slack is not None
    assert (pd.get_secret_value(), slack.get_secret_value()) == ("pd-key", "env-url")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"WATCHDOG_LISTEN": "nowhere"}, "WATCHDOG_LISTEN: expected host:port"),
        ({"WATCHDOG_LISTEN": "0.0.0.0:99999"}, "WATCHDOG_LISTEN: expected host:port"),
        ({"WATCHDOG_DRY_RUN": "maybe"}, "WATCHDOG_DRY_RUN: "),
        ({"WATCHDOG_LOG_FORMAT": "xml"}, "WATCHDOG_LOG_FORMAT: "),
        ({"WATCHDOG_CLOUDFLARE_API_URL": "ftp://x"}, "WATCHDOG_CLOUDFLARE_API_URL: expected an"),
        ({"WATCHDOG_SHUTDOWN_TIMEOUT": "-1"}, "WATCHDOG_SHUTDOWN_TIMEOUT: "),
    ],
)
def test_bad_value_names_the_variable(env: dict[str, str], message: str) -> None:
    """A bad value raises ConfigError that names the environment variable."""
    with pytest.raises(ConfigError) as caught:
        load_settings({**NO_SECRETS, **env})
    assert message in str(caught.value)
