"""One preflight for a configuration: settings, rules and every secret the rules need,
all problems at once. ``rollback-watchdog check config`` prints it (exit 1 on any
problem) and ``rollback-watchdog run`` refuses to start on the same list, so a missing
secret is never found one restart at a time."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from pydantic import BaseModel, TypeAdapter, ValidationError

from watchdog.clock import SystemClock
from watchdog.errors import ConfigError, RuleError
from watchdog.rules.load import RuleSet, load_rules, rule_files
from watchdog.rules.model import SourceSpec
from watchdog.rules.response import NotifierSpec, PurgeSpec, TargetSpec
from watchdog.settings import Settings, blank_problems, read_settings

# A flow source reads the Worker's deployments to find the split it pins.
_CLOUDFLARE_TYPES = (
    "cloudflare-worker",
    "cloudflare-pages",
    "cloudflare-zone",
    "cloudflare",
    "flow",
)
_SECTIONS: tuple[tuple[str, str, Any], ...] = (
    ("sources", "source", TypeAdapter(SourceSpec)),
    ("targets", "target", TypeAdapter(TargetSpec)),
    ("purges", "purge", TypeAdapter(PurgeSpec)),
    ("notifiers", "notifier", TypeAdapter(NotifierSpec)),
)


@dataclass
class Report:
    settings: Settings | None
    ruleset: RuleSet | None
    problems: list[str] = field(default_factory=list)


def preflight(environ: Mapping[str, str] | None = None, **overrides: Any) -> Report:
    """Settings from the environment (as ``load_settings``), then ``check``."""
    try:
        settings = read_settings(environ, **overrides)
    except ConfigError as exc:
        rules = overrides.get("rules") or (environ or os.environ).get("WATCHDOG_RULES")
        report = Report(None, None, str(exc).split("; "))
        if rules:  # the rules can still be checked
            report.problems += _rules(str(rules).split(os.pathsep))[1]
        return report
    return check(settings)


def check(settings: Settings) -> Report:
    """Every problem of ``settings`` with its rules: empty tokens, the rules' own
    problems, missing or empty secrets, a Cloudflare token or account the rules need."""
    problems = blank_problems(settings)
    ruleset, rule_problems = _rules(settings.rules_paths)
    problems += rule_problems
    owners = _owners(ruleset) if ruleset is not None else _owners_of_files(settings.rules_paths)
    problems += _secret_problems(settings, owners)
    if ruleset is not None and not problems:
        problems += _build_problems(settings, ruleset)  # anything the walk above missed
    return Report(settings, ruleset, problems)


def secret_problems(settings: Settings, ruleset: RuleSet) -> list[str]:
    """Every secret, token or account ``ruleset`` needs and ``settings`` lacks (a
    reload's check, so edited rules report all of them at once)."""
    return _secret_problems(settings, _owners(ruleset))


def _rules(paths: list[str]) -> tuple[RuleSet | None, list[str]]:
    try:
        return load_rules(paths), []
    except RuleError as exc:
        return None, list(exc.problems)


# (kind, name, spec) of every source, target, purge and notifier.
Owner = tuple[str, str, BaseModel]


def _owners(ruleset: RuleSet) -> list[Owner]:
    out: list[Owner] = []
    for section, kind, _ in _SECTIONS:
        specs: Mapping[str, BaseModel] = getattr(ruleset, section)
        out += [(kind, name, spec) for name, spec in specs.items()]
    return out


def _owners_of_files(paths: list[str]) -> list[Owner]:
    """When the rules as a whole are invalid: every entry that is valid on its own, so
    the missing secrets are listed beside the rules problems."""
    from watchdog.rules.parse import _parse_yaml

    out: list[Owner] = []
    for path in rule_files(paths):
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        data, _, problems = _parse_yaml(text, str(path))
        if problems or not isinstance(data, dict):
            continue
        for section, kind, adapter in _SECTIONS:
            entries = data.get(section)
            if not isinstance(entries, dict):
                continue
            for name, entry in entries.items():
                try:
                    out.append((kind, str(name), adapter.validate_python(entry)))
                except ValidationError:
                    continue
    return out


def _secret_problems(settings: Settings, owners: Iterable[Owner]) -> list[str]:
    needs: dict[str, list[str]] = {}  # secret -> who needs it
    cloudflare: list[str] = []
    no_account: list[str] = []
    for kind, name, spec in owners:
        for key, value in spec:
            if key.endswith("_secret") and isinstance(value, str):
                needs.setdefault(value, []).append(f"{kind} {name}")
        if getattr(spec, "type", None) in _CLOUDFLARE_TYPES:
            cloudflare.append(f"{kind} {name}")
            if kind != "purge" and getattr(spec, "account", None) is None:
                no_account.append(f"{kind} {name}")
    problems = []
    for secret, who in sorted(needs.items()):
        value = settings.secret(secret)
        state = "not set" if value is None else "empty"
        if value is None or not value.get_secret_value().strip():
            problems.append(
                f"secret {secret}: {state} (needed by {', '.join(who)}): set "
                f"WATCHDOG_SECRETS__{secret.upper()} or a file {secret.lower()} in the secrets "
                "directory (WATCHDOG_SECRETS_DIR)"
            )
    if cloudflare and settings.cloudflare_api_token is None:
        problems.append(f"CLOUDFLARE_API_TOKEN: not set (needed by {', '.join(cloudflare)})")
    if no_account and settings.cloudflare_account_id is None:
        problems.append(
            f"CLOUDFLARE_ACCOUNT_ID: not set and no `account:` on {', '.join(no_account)}"
        )
    return problems


def _build_problems(settings: Settings, ruleset: RuleSet) -> list[str]:
    from watchdog.actions.registry import build_actions

    http = httpx.AsyncClient()  # never used for a request: building only
    try:
        build_actions(ruleset, settings, http, SystemClock())
    except ConfigError as exc:
        return [str(exc)]
    return []
