"""``rollback-watchdog run``: wire settings, rules, sources, HTTP server and signals.

SIGTERM/SIGINT stop gracefully within ``WATCHDOG_SHUTDOWN_TIMEOUT`` (a second one
forces the exit); SIGHUP reloads the rules, keeping the old ones if the new are bad.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable, Coroutine
from typing import Any

import httpx
import structlog

from watchdog import __version__
from watchdog.api import console
from watchdog.api.app import build_app
from watchdog.clock import Clock, SystemClock
from watchdog.errors import ConfigError, RuleError, StoreError
from watchdog.http.server import Router, serve
from watchdog.run import preflight
from watchdog.run.runtime import Runtime
from watchdog.settings import Settings, listen_address
from watchdog.store.lock import acquire as acquire_state_lock

log = structlog.get_logger("watchdog.service")


def init_sentry(settings: Settings) -> bool:
    """Initialise Sentry only when SENTRY_DSN is set; never with frame locals or URLs."""
    if settings.sentry_dsn is None:
        return False
    import sentry_sdk
    from sentry_sdk.integrations.asyncio import AsyncioIntegration
    from sentry_sdk.integrations.httpx import HttpxIntegration
    from sentry_sdk.integrations.stdlib import StdlibIntegration

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
        integrations=[AsyncioIntegration()],
        # Every request goes to a third party (Slack, Prometheus, Cloudflare): none may
        # carry sentry-trace or baggage (which holds the DSN's public key).
        trace_propagation_targets=[],
        disabled_integrations=[HttpxIntegration(), StdlibIntegration()],
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
    host, port = listen_address(settings.listen)
    try:
        state_lock = acquire_state_lock(settings.state, clock.now())
    except StoreError as exc:
        log.error("cannot start", error=str(exc))
        return 1
    try:
        return await _run_locked(settings, clock, host, port)
    finally:
        if state_lock is not None:
            state_lock.release()


def _control_api(runtime: Runtime, settings: Settings, host: str) -> Router:
    """The daemon's HTTP face, with its tokens and modes."""
    return build_app(
        runtime.watchdog,
        settings.api_token,
        reload=runtime.reload,
        extra_status=runtime.status_extra,
        silences=runtime.silences,
        dry_run=settings.dry_run,
        listen_host=host,
        allowed_hosts=settings.api_hosts,
        ramps=runtime.ramps,
        push_token=settings.push_token,
    )


async def _run_locked(settings: Settings, clock: Clock, host: str, port: int) -> int:
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=20)
    report = await asyncio.to_thread(preflight.check, settings)
    if report.problems:  # every missing secret and rules problem at once
        log.error("cannot start", problems=report.problems)
        return 1
    async with httpx.AsyncClient(timeout=10.0, limits=limits, follow_redirects=False) as http:
        try:
            runtime = await Runtime.build(settings, clock, http)
        except RuleError as exc:
            log.error("rules are invalid; not starting", problems=exc.problems)
            return 1
        except (ConfigError, StoreError) as exc:
            log.error("cannot start", error=str(exc))
            return 1
        app = _control_api(runtime, settings, host)
        page = console.install(app, runtime, host)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        background: set[asyncio.Task[Any]] = set()

        def spawn(coro: Coroutine[Any, Any, Any], name: str) -> None:
            task = loop.create_task(coro, name=name)
            background.add(task)
            task.add_done_callback(background.discard)

        duration = runtime.watchdog.ruleset.silence.signal_duration
        install_signals(
            loop,
            stop,
            lambda: spawn(runtime.reload(), "reload"),
            {
                signal.SIGUSR1: lambda: spawn(silence_by_signal(runtime, duration), "silence"),
                signal.SIGUSR2: lambda: spawn(unsilence_by_signal(runtime), "unsilence"),
            },
        )
        async with serve(app, host, port, shutdown_timeout_s=2.0) as server:
            log.info(
                "listening", url=server.url, dry_run=settings.dry_run, silenced=settings.silenced
            )
            if settings.dry_run:
                log.warning("DRY RUN: decisions are made and recorded; no mutating call is sent")
            if settings.silenced:
                log.warning("SILENCED: started with --silenced; no action is taken")
            await runtime.start()
            await stop.wait()
            await page.close()
            await runtime.stop(settings.shutdown_timeout)
    log.info("stopped")
    return 0


async def silence_by_signal(runtime: Runtime, duration_s: float) -> None:
    """SIGUSR1: silence every action for the configured duration (persisted)."""
    record = await runtime.silences.add(
        [],
        duration_s=duration_s,
        created_by=f"SIGUSR1 (pid {os.getpid()})",
        comment="silenced by signal",
        origin="signal",
    )
    log.warning("silenced by signal", until=record.ends_at, id=record.id)


async def unsilence_by_signal(runtime: Runtime) -> None:
    """SIGUSR2: lift the silences that signals set (not the API's or the file's)."""
    count = await runtime.silences.expire_origin("signal")
    log.warning("signal silences lifted", count=count)
