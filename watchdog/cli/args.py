"""What every verb reads from its arguments the same way: the settings with the
command line's overrides (``--rules``, ``--dry-run``, ``--silenced``, ``--listen``)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pydantic-settings only for the verbs that read settings
    from watchdog.settings import Settings


def settings_from_args(args: argparse.Namespace) -> Settings:
    """The process settings, with what the command line overrides."""
    from watchdog.settings import load_settings

    return load_settings(None, **overrides(args))


def overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The settings a verb's arguments override (the ones it has and was given)."""
    out: dict[str, Any] = {}
    if getattr(args, "rules", None):
        out["rules"] = ":".join(args.rules) if isinstance(args.rules, list) else args.rules
    if getattr(args, "dry_run", False):
        out["dry_run"] = True
    if getattr(args, "silenced", False):
        out["silenced"] = True
    if getattr(args, "listen", None):
        out["listen"] = args.listen
    return out
