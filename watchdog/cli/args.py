"""What every verb reads from its arguments the same way: the settings with the
command line's overrides (``--rules``, ``--dry-run``, ``--silenced``, ``--listen``)."""

from __future__ import annotations

import argparse
from typing import Any

from watchdog.settings import Settings, load_settings


def settings_from_args(args: argparse.Namespace) -> Settings:
    """The process settings, with what the command line overrides."""
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
