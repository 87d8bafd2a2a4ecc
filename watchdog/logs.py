"""structlog set-up: JSON for machines, console for people, UTC, no frame locals.

The httpx logger is held at WARNING: its INFO lines carry full URLs, and a Slack or
webhook URL is itself a secret.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from typing import Any, Literal

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from watchdog.redact import redact_urls

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


def _redacted(value: Any) -> Any:
    if isinstance(value, str):
        return redact_urls(value)
    if isinstance(value, dict):
        return {key: _redacted(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_redacted(item) for item in value]
    return value


def redact_processor(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """No URL's password in any log line (a PostgreSQL state URL, a library's error)."""
    return {
        key: value if key == "exc_info" else _redacted(value) for key, value in event_dict.items()
    }


def configure(
    fmt: Literal["json", "console"] = "json",
    level: str = "info",
    cache: bool = True,
) -> None:
    numeric = _LEVELS.get(level, logging.INFO)
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact_processor,
    ]
    renderer: Processor
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer()
        tracebacks: list[Processor] = [
            structlog.processors.ExceptionRenderer(
                structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
            ),
            redact_processor,  # exception messages may quote a URL
        ]
    else:
        renderer = structlog.dev.ConsoleRenderer(exception_formatter=structlog.dev.plain_traceback)
        tracebacks = []
    structlog.configure(
        processors=[*shared, *tracebacks, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=cache,
    )
    # stdlib loggers (uvicorn, sentry, httpx) through the same pipeline.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(numeric)
    for noisy in ("httpx", "httpcore", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


_PROBLEM_LEVELS = ("error", "critical", "exception")


class ProblemTap:
    """Records every error-level log line and every traceback (structlog and stdlib),
    so a run can be judged by what it logged: the demo's verdict fails on any."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, _: WrappedLogger, method: str, event_dict: EventDict) -> EventDict:
        traceback = bool(event_dict.get("exc_info")) or method == "exception"
        if method in _PROBLEM_LEVELS or traceback:
            self._add(method, str(event_dict.get("event", "")), event_dict, traceback)
        return event_dict

    def _add(self, level: str, event: str, context: Any, traceback: bool) -> None:
        where = ""
        if isinstance(context, dict):
            where = " ".join(
                f"{k}={v}" for k, v in context.items() if k in ("source", "rule", "incident")
            )
        mark = " (with a traceback)" if traceback else ""
        self.lines.append(f"{level}: {event}{mark}" + (f" [{where}]" if where else ""))

    def handler(self) -> logging.Handler:
        tap = self

        class _Handler(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                traceback = record.exc_info is not None
                if record.levelno >= logging.ERROR or traceback:
                    tap._add(record.levelname.lower(), record.getMessage(), record.name, traceback)

        return _Handler(level=logging.DEBUG)


@contextlib.contextmanager
def tap_problems() -> Iterator[ProblemTap]:
    """Install a ``ProblemTap`` in front of the current structlog pipeline and on the
    root logger for the duration of the block."""
    tap = ProblemTap()
    processors = list(structlog.get_config()["processors"])
    structlog.configure(processors=[tap, *processors])
    handler = tap.handler()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield tap
    finally:
        root.removeHandler(handler)
        structlog.configure(processors=processors)
