"""``postmortem``: an incident's post-mortem draft from the journal, without a running
watchdog. ``targets`` and ``rollback`` are in ``cli/rollback.py``; the verbs that talk to
a running watchdog's API (``silence``, ``status``) in ``cli/silences.py``."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import TYPE_CHECKING

from watchdog.cli.output import add_output, emit, error_document, wants_json
from watchdog.termtext import printable

if TYPE_CHECKING:  # pydantic-settings only for the verbs that read settings
    from watchdog.settings import Settings


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    postmortem = commands.add_parser(
        "postmortem", help="render an incident's post-mortem draft (Markdown) from the journal"
    )
    postmortem.add_argument("incident", help="incident id (a unique prefix is enough)")
    postmortem.add_argument("--out", help="write to this file instead of stdout")
    add_output(postmortem)
    postmortem.set_defaults(func=cmd_postmortem)


# --- post-mortem -----------------------------------------------------------------------


def cmd_postmortem(args: argparse.Namespace) -> int:
    from watchdog.settings import load_settings

    settings = load_settings()
    return asyncio.run(_postmortem(settings, args.incident, args.out, wants_json(args)))


async def _postmortem(settings: Settings, incident_id: str, out: str | None, as_json: bool) -> int:
    from watchdog.incidents.postmortem import render_incident
    from watchdog.store import open_store

    store = open_store(settings.state)
    await store.open()
    try:
        found = await store.get_incident(incident_id)  # a unique prefix is enough
        text = await render_incident(store, found.id) if found is not None else None
        if found is None or text is None:
            recent = await store.recent_incidents(5)
            hint = ", ".join(i.id for i in recent) or "none recorded"
            message = f"no single incident matches {incident_id!r} (recent: {hint})"
            if as_json:
                emit(error_document(message))
            print(f"error: {message}", file=sys.stderr)
            return 1
    finally:
        await store.close()
    if out:
        await asyncio.to_thread(_write, out, text)
    if as_json:  # the Markdown as it is: JSON escapes control characters itself
        emit({"incident": found.id, "out": out, "markdown": text})
    elif out:
        print(f"wrote {out}")
    else:  # on a terminal: silence comments and reasons in it are outside text
        print("\n".join(printable(line) for line in text.split("\n")))
    return 0


def _write(path: str, text: str) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
