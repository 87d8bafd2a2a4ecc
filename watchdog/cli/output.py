"""``-o text|json`` for every verb that prints: text for a person (the default), or one
strict JSON document on stdout per invocation, an object whose keys do not depend on the
run (a missing value is null, never an absent key), for scripts and ``jq``."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

from watchdog import strict_json

TEXT, JSON = "text", "json"


def add_output(parser: argparse.ArgumentParser, *, aliases: tuple[str, ...] = ()) -> None:
    """``-o/--output``; ``aliases`` are older names for text (``simple``, as amtool says)."""
    parser.add_argument(
        "-o",
        "--output",
        choices=(TEXT, JSON, *aliases),
        default=TEXT,
        help="text (default) or json: one strict JSON document on stdout",
    )


def wants_json(args: argparse.Namespace) -> bool:
    return getattr(args, "output", TEXT) == JSON


def emit(document: Mapping[str, Any]) -> None:
    """The invocation's one document: NaN and infinities are null, never ``NaN``."""
    print(strict_json.dumps(dict(document), indent=2))


def error_document(message: str, problems: list[str] | None = None) -> dict[str, Any]:
    """What a verb asked for JSON prints when it fails before its own document."""
    return {"ok": False, "error": message, "problems": problems or []}
