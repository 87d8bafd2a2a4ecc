"""``rollback-watchdog run``: wire settings, rules, sources, HTTP server and signals.

SIGTERM/SIGINT stop gracefully within ``WATCHDOG_SHUTDOWN_TIMEOUT`` (a second one
forces the exit); SIGHUP reloads the rules, keeping the old ones if the new are bad.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from typing import Any

import httpx
import structlog

from watchdog import __version__
from watchdog.clock import Clock, SystemClock
from watchdog.daemon import Watchdog
from watchdog.errors import RuleError
from watchdog.httpserver import serve
from watchdog.metrics import Metrics
from watchdog.rules import load_rules
from watchdog.server import build_app
from watchdog.settings import Settings, listen_address
from watchdog.sources.base import SourceDeps

log = structlog.get_logger("watchdog.service")


def init_sentry(settings: Settings) -> bool:
    """Initialise Sentry only when SENTRY_DSN is set; never with frame locals or URLs."""
    if settings.sentry_dsn is None:
        return False
    import sentry_sdk
    from sentry_sdk.integrations.asyncio import AsyncioIntegration

    def scrub_breadcrumb(crumb: Any, _hint: Any) -> Any:
        # httpx breadcrumbs carry full URLs; a webhook URL is a secret.
        if isinstance(crumb, dict) and crumb.get("category") in ("httplib", "http"):
            return None
        return crumb

    sentry_sdk.init(
        dsn=settings.sentry_dsn.get_secret_value(),
        release=f"rollback-watchdog@{__version__}",
        environment=settings.environment,
        include_local_variables=False,
        send_default_pii=False,
        integrations=[AsyncioIntegration()],
        before_breadcrumb=scrub_breadcrumb,
    )
    return True


def install_signals(
    loop: asyncio.AbstractEventLoop,
    stop: asyncio.Event,
    on_hup: Callable[[], None],
    extra: dict[signal.Signals, Callable[[], None]] | None = None,
) -> None:
    def on_stop(sig: signal.Signals) -> None:
        if stop.is_set():
            log.warning("second signal: forcing exit", signal=sig.name)
            for task in asyncio.all_tasks(loop):
                task.cancel()
            return
        log.info("shutting down", signal=sig.name)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_stop, sig)
    loop.add_signal_handler(signal.SIGHUP, on_hup)
    for sig, handler in (extra or {}).items():
        loop.add_signal_handler(sig, handler)


async def run_service(settings: Settings, clock: Clock | None = None) -> int:
    """Run until SIGTERM/SIGINT. Returns the process exit code."""
    clock = clock or SystemClock()
    init_sentry(settings)
    try:
        ruleset = await asyncio.to_thread(load_rules, settings.rules_paths)
    except RuleError as exc:
        log.error("rules are invalid; not starting", problems=exc.problems)
        return 1
    host, port = listen_address(settings.listen)
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=20)
    async with httpx.AsyncClient(timeout=10.0, limits=limits, follow_redirects=False) as http:
        deps = SourceDeps(
            http=http,
            clock=clock,
            cloudflare_api_url=settings.cloudflare_api_url,
            cloudflare_api_token=settings.cloudflare_api_token,
            cloudflare_account_id=settings.cloudflare_account_id,
        )
        watchdog = Watchdog(ruleset, deps, Metrics(), settings.rules_paths)
        app = build_app(watchdog, settings.api_token)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        reloads: set[asyncio.Task[bool]] = set()

        def on_hup() -> None:
            task = loop.create_task(watchdog.reload(), name="reload")
            reloads.add(task)
            task.add_done_callback(reloads.discard)

        install_signals(loop, stop, on_hup)
        async with serve(app, host, port, shutdown_timeout_s=2.0) as server:
            log.info("listening", url=server.url, dry_run=settings.dry_run)
            await watchdog.start()
            await stop.wait()
            await watchdog.stop(settings.shutdown_timeout)
    log.info("stopped")
    return 0
