"""The console's story in a real browser against the real daemon on loopback, and the
README's screenshot (``scripts/screenshot-console`` runs this module; the browser test
runs that script):

1. the page shows ``error-rate`` inactive; 2. the bad deploy's errors show and the rule
turns red (the page's own script refreshes it: no reload); 3. an incident appears and its
timeline reaches the rollback; 4. a silence with a misspelt rule is refused by the form,
then added from it; 5. the screenshot; 6. the errors end, and the silence is expired
from its button; 7. a page on another site posts the same form with the console's own
CSRF token, and is refused.

Each step waits (bounded) for what the page shows and records it in the report (JSON),
which the test reads."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from tests.integration.console_browser import Browser, browser
from tests.integration.console_stage import Stage, stage

RULE = "document.querySelector('#rule-error-rate')"
BORDER = f"return getComputedStyle({RULE}).borderLeftColor"
OPEN_INCIDENT = "document.querySelector('#incidents article.incident.open')"
SILENCE_ROW = "document.querySelector('#silences tr.silence')"


async def story(page: Browser, world: Stage, shot: Path | None, warmup_s: float) -> dict[str, Any]:
    report: dict[str, Any] = {}
    await page.get(world.url + "/")
    report["title"] = await page.js("return document.title")
    report["before"] = await page.until(
        f"return {RULE} && {RULE}.dataset.state", "the rule error-rate"
    )
    report["before_border"] = await page.js(BORDER)
    if warmup_s > 0:  # the screenshot's sparklines: some history before the breach
        await asyncio.sleep(warmup_s)
    world.breach = True
    report["after"] = await page.until(
        f"return {RULE}.dataset.state === 'firing' && 'firing'", "error-rate firing"
    )
    report["after_border"] = await page.js(BORDER)
    report["incident"] = await page.until(
        f"return {OPEN_INCIDENT} && {OPEN_INCIDENT}.id", "an open incident"
    )
    report["timeline"] = await page.until(
        f"var t = {OPEN_INCIDENT}.querySelector('ol.timeline').innerText;"
        "return t.includes('rollback finished') && t",
        "the incident's rollback in its timeline",
    )
    await page.until("return document.querySelector('#target-worker')", "the worker target")
    report["target"] = await page.js("return document.querySelector('#target-worker').innerText")
    fields = {
        "matchers": "rule=eror-rate",
        "duration": "1h",
        "created_by": "on-call",
        "comment": "holding the watchdog while we look",
    }
    await page.fill("#add-silence form", fields)
    await page.click("#add-silence button[type=submit]")
    report["refused"] = await page.until(
        "var e = document.querySelector('#add-silence [role=alert]'); return e && e.innerText",
        "the form's refusal of a misspelt rule",
    )
    await page.fill("#add-silence form", {"matchers": "rule=error-rate"})
    await page.click("#add-silence button[type=submit]")
    report["added"] = await page.until(
        f"return {SILENCE_ROW} && {SILENCE_ROW}.innerText", "the new silence in the list"
    )
    report["added_url"] = await page.js("return location.search")
    if shot is not None:
        await page.js("window.scrollTo(0, 0)")
        png = await page.screenshot(1280)
        await asyncio.to_thread(shot.write_bytes, png)
        report["screenshot"] = str(shot)
    report["phone"] = await phone_fit(page)
    if shot is not None:
        phone = shot.with_name(f"{shot.stem}-phone{shot.suffix}")
        png = await page.screenshot(390)
        await asyncio.to_thread(phone.write_bytes, png)
    world.breach = False
    await page.resize(1280, 900)
    await page.click("#silences tr.silence button.expire")
    report["expired"] = await page.until(
        f"var r = {SILENCE_ROW};return r && r.classList.contains('silence-expired') && r.innerText",
        "the silence expired",
    )
    report["cross_site"] = await cross_site(page, world)
    return report


async def cross_site(page: Browser, world: Stage) -> dict[str, Any]:
    """A page on another origin posts the silence form with the console's own CSRF
    token (stolen): the browser says where it came from, and the daemon refuses."""
    world.evil.csrf = await page.js("return document.querySelector('input[name=csrf]').value")
    await page.get(world.evil_url + "/")
    await page.click("button[type=submit]")
    refused = await page.until(
        "return document.querySelector('main.refused') && document.body.innerText",
        "the refusal of a form from another site",
    )
    await page.get(world.url + "/")
    rows = await page.js("return document.querySelectorAll('#silences tr.silence').length")
    return {"refused": refused, "silences": rows}


async def phone_fit(page: Browser) -> dict[str, Any]:
    """At a phone's width, the page scrolls only down, never sideways."""
    await page.resize(390, 844)
    fit: dict[str, Any] = await page.js(
        "return {inner: window.innerWidth, scroll: document.documentElement.scrollWidth,"
        " viewport: document.querySelector('meta[name=viewport]').content}"
    )
    return fit


async def run(out: Path | None, report_path: Path | None, warmup_s: float) -> int:
    with tempfile.TemporaryDirectory(prefix="console-stage-") as workdir:
        async with stage(Path(workdir)) as world, browser() as page:
            try:
                report = await story(page, world, out, warmup_s)
            except AssertionError as exc:
                print(f"console story failed: {exc}\n{world.proc.log_tail()}", file=sys.stderr)
                return 1
    text = json.dumps(report, indent=2)
    if report_path is not None:
        await asyncio.to_thread(report_path.write_text, text)
    print(text)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("docs/console.png"))
    parser.add_argument("--report", type=Path, help="write what each step saw (JSON)")
    parser.add_argument(
        "--warmup", type=float, default=40.0, help="seconds of calm before the breach"
    )
    args = parser.parse_args(argv)
    return asyncio.run(run(args.out, args.report, args.warmup))


if __name__ == "__main__":
    sys.exit(main())
