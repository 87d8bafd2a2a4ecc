"""Process settings and secrets (pydantic-settings). Rules files carry no secrets:
they name entries of ``secrets`` (``WATCHDOG_SECRETS__SLACK_WEBHOOK`` or a file
``slack_webhook`` in the secrets directory)."""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from watchdog.errors import ConfigError
from watchdog.units import parse_duration

DEFAULT_CLOUDFLARE_API_URL = "https://api.cloudflare.com/client/v4"
DEFAULT_SECRETS_DIR = "/run/secrets"
# A DNS name or an IPv4 address (a trailing dot allowed), or an IPv6 address in brackets.
_HOST_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9.])?|\[[0-9A-Fa-f:.]+\]")

# Settings read without the WATCHDOG_ prefix, as the rest of the ecosystem names them.
_UNPREFIXED = {
    "cloudflare_api_token": "CLOUDFLARE_API_TOKEN",
    "cloudflare_account_id": "CLOUDFLARE_ACCOUNT_ID",
    "sentry_dsn": "SENTRY_DSN",
}


class Settings(BaseSettings):
    """Everything a running watchdog reads from its environment."""

    model_config = SettingsConfigDict(
        env_prefix="WATCHDOG_",
        env_nested_delimiter="__",
        extra="ignore",
        frozen=True,
        case_sensitive=False,
    )

    rules: str = "/etc/rollback-watchdog/rules"
    state: str = "state/watchdog.db"
    listen: str = "127.0.0.1:9464"
    dry_run: bool = False
    silenced: bool = False
    silence_file: Path | None = None
    # The longest silence the API accepts (a forgotten one must expire on its own).
    silence_max_duration: float = Field(default=7 * 86400.0, gt=0)
    log_format: Literal["json", "console"] = "json"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    environment: str = "production"
    shutdown_timeout: float = Field(default=10.0, gt=0)
    postmortem_dir: Path | None = None
    # Poll the rules files this often and reload on change (a Kubernetes ConfigMap
    # update swaps a symlink; no SIGHUP arrives). 0 turns it off.
    rules_watch_interval: float = Field(default=10.0, ge=0)
    # Replicas on a PostgreSQL state elect a leader under this name, retrying every
    # leader_retry seconds (the bound on a takeover after the leader dies).
    leader_name: str = Field(default="rollback-watchdog", min_length=1)
    leader_retry: float = Field(default=5.0, gt=0)
    # How often a ramp reads what is live and asks the canary rules. How often the
    # deploy watch reads the targets: a deploy is tested from when it went live, so
    # decided at most deploy_poll later; while a split is live, canary rules need its
    # end soon (12 reads a minute per Worker, far under Cloudflare's 1,200 per 5 min).
    ramp_tick: float = Field(default=5.0, gt=0)
    deploy_poll: float = Field(default=30.0, gt=0)
    split_poll: float = Field(default=5.0, gt=0)
    api_token: SecretStr | None = None
    # Accepted on the push routes only (a Tail Worker's events, Alertmanager's webhook),
    # so a sender's secret cannot silence or roll back; the API token works there too.
    push_token: SecretStr | None = None
    # Without a token, extra Host names the control API answers to (comma-separated):
    # the name a port-forward or local proxy puts in Host. localhost and the listen
    # host always count; any other name could be a DNS-rebound web page.
    api_allowed_hosts: str = ""
    cloudflare_api_url: str = DEFAULT_CLOUDFLARE_API_URL
    cloudflare_api_token: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("CLOUDFLARE_API_TOKEN", "WATCHDOG_CLOUDFLARE_API_TOKEN"),
    )
    cloudflare_account_id: str | None = Field(
        default=None,
        validation_alias=AliasChoices("CLOUDFLARE_ACCOUNT_ID", "WATCHDOG_CLOUDFLARE_ACCOUNT_ID"),
    )
    sentry_dsn: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("SENTRY_DSN", "WATCHDOG_SENTRY_DSN")
    )
    secrets: dict[str, SecretStr] = Field(default_factory=dict)

    @field_validator("listen")
    @classmethod
    def _check_listen(cls, value: str) -> str:
        listen_address(value)
        return value

    @field_validator("api_allowed_hosts")
    @classmethod
    def _check_hosts(cls, value: str) -> str:
        for name in value.split(","):
            if name.strip() and not _HOST_NAME.fullmatch(name.strip()):
                raise ValueError(
                    f"{name.strip()[:80]!r} is not a host name (a name or an address, "
                    "without scheme, port or path; comma-separated)"
                )
        return value

    @property
    def api_hosts(self) -> tuple[str, ...]:
        """``api_allowed_hosts`` as names, the way a ``Host`` header is compared."""
        return tuple(
            name.strip().strip("[]").rstrip(".").lower()
            for name in self.api_allowed_hosts.split(",")
            if name.strip()
        )

    @field_validator("silence_max_duration", mode="before")
    @classmethod
    def _check_silence_max(cls, value: object) -> float:
        return parse_duration(value)

    @field_validator("cloudflare_api_url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"expected an http(s) URL, got {value!r}")
        return value.rstrip("/")

    @property
    def rules_paths(self) -> list[str]:
        return [part for part in self.rules.split(os.pathsep) if part]

    def secret(self, name: str) -> SecretStr | None:
        return self.secrets.get(name.lower())


def listen_address(value: str) -> tuple[str, int]:
    """``host:port`` (``[::1]:9464`` for IPv6) → (host, port)."""
    host, sep, port_text = value.rpartition(":")
    if not sep or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"expected host:port (like 0.0.0.0:9464), got {value!r}")
    return host.strip("[]") or "0.0.0.0", int(port_text)


def _env_name(field: str) -> str:
    return _UNPREFIXED.get(field, f"WATCHDOG_{field.upper()}")


def load_settings(environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Build settings from the environment and the secrets directory
    (``WATCHDOG_SECRETS_DIR``, default /run/secrets, where each file is one secret).
    A bad value, or a token set but empty, raises ``ConfigError`` naming the variable."""
    settings = read_settings(environ, **overrides)
    blank = blank_problems(settings)
    if blank:
        # An empty token would only fail later, as "connection failed" after retries.
        raise ConfigError("; ".join(blank))
    return settings


def blank_problems(settings: Settings) -> list[str]:
    """Tokens that are set but empty (an unset variable in a template, an empty file)."""
    return [
        f"{_env_name(name)}: set but empty"
        for name in ("cloudflare_api_token", "api_token", "push_token", "sentry_dsn")
        if (value := getattr(settings, name)) is not None and not value.get_secret_value().strip()
    ]


def read_settings(environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """``load_settings`` without the check for empty tokens (the preflight lists them
    with every other problem)."""
    env = dict(os.environ if environ is None else environ)
    secrets_dir = Path(env.get("WATCHDOG_SECRETS_DIR", DEFAULT_SECRETS_DIR))
    file_secrets = _read_secrets_dir(secrets_dir)
    try:
        settings = Settings(**overrides) if environ is None else _from_mapping(env, overrides)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else "?"
            name = _env_name(field)
            if field == "secrets" and len(error["loc"]) > 1:
                name = f"WATCHDOG_SECRETS__{str(error['loc'][1]).upper()}"
            message = str(error.get("ctx", {}).get("error", error["msg"]))
            problems.append(f"{name}: {message}")
        raise ConfigError("; ".join(problems)) from None
    if file_secrets:
        settings = _with_file_secrets(settings, file_secrets)
    return settings


_ENVIRON_LOCK = threading.Lock()


def _from_mapping(env: Mapping[str, str], overrides: Mapping[str, Any]) -> Settings:
    """Settings from ``env`` instead of the process environment (tests, the demo).
    pydantic-settings reads ``os.environ`` only, so it is swapped for the call, under a
    lock; the real environment is never touched in production (``environ=None``)."""
    with _ENVIRON_LOCK:
        saved = dict(os.environ)
        try:
            os.environ.clear()
            os.environ.update(env)
            return Settings(**overrides)
        finally:
            os.environ.clear()
            os.environ.update(saved)


def _read_secrets_dir(directory: Path) -> dict[str, str]:
    if not directory.is_dir():
        return {}
    out = {}
    for path in sorted(directory.iterdir()):
        if path.is_file() and not path.name.startswith("."):
            try:
                out[path.name.lower()] = path.read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError) as exc:
                raise ConfigError(
                    f"secrets directory {directory}: cannot read {path.name}: {exc}"
                ) from None
    return out


def _with_file_secrets(settings: Settings, files: dict[str, str]) -> Settings:
    """Environment wins over files, as in pydantic-settings' own priority order."""
    update: dict[str, Any] = {}
    for field in ("cloudflare_api_token", "sentry_dsn"):
        if getattr(settings, field) is None and field in files:
            update[field] = SecretStr(files[field])
    if settings.cloudflare_account_id is None and "cloudflare_account_id" in files:
        update["cloudflare_account_id"] = files["cloudflare_account_id"]
    for field in ("api_token", "push_token"):
        if getattr(settings, field) is None and f"watchdog_{field}" in files:
            update[field] = SecretStr(files[f"watchdog_{field}"])
    secrets = {
        name: SecretStr(value)
        for name, value in files.items()
        if name not in _UNPREFIXED and name not in ("watchdog_api_token", "watchdog_push_token")
    }
    secrets.update(settings.secrets)
    update["secrets"] = secrets
    return settings.model_copy(update=update)
