"""The project's error hierarchy: callers can catch ``WatchdogError`` at the edges."""

from __future__ import annotations


class WatchdogError(Exception):
    """Root of every error this package raises on purpose."""


class ConfigError(WatchdogError):
    """A process setting (environment, secrets directory, CLI flag) is wrong."""


class RuleError(WatchdogError):
    """A rules file is wrong. Carries every problem found, each with its location."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


class SourceError(WatchdogError):
    """A metrics source could not give evidence (down, slow, bad payload)."""


class ParseError(SourceError):
    """A payload (exposition text, JSON) could not be parsed."""


class ActionError(WatchdogError):
    """An action against a remote API failed."""


class RetryableActionError(ActionError):
    """A failure that may go away on retry (429, 5xx, connection error)."""

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class PermanentActionError(ActionError):
    """A failure that retrying will not fix (4xx, refused rollback)."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class StoreError(WatchdogError):
    """The state store could not read or write."""


class BacktestError(WatchdogError):
    """Recorded series or backtest arguments are unusable."""
