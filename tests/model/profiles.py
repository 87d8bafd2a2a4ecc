"""The history tests' hypothesis profiles: ``ci`` when CI=true (derandomized, no example
database), ``dev`` otherwise, ``long`` or any registered one by HYPOTHESIS_PROFILE. Each
machine registers its budgets under its own prefix (``ramp-ci``, ``tail-long``)."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

SHARED = ("ci", "dev", "long")


def history_settings(prefix: str, *, ci: int, dev: int, long: int, steps: int) -> settings:
    """Register ``{prefix}ci``, ``{prefix}dev`` and ``{prefix}long`` with these numbers of
    examples (of at most ``steps`` moves) and return the one this run asks for."""
    base = settings(
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        stateful_step_count=steps,
    )
    settings.register_profile(f"{prefix}ci", base, max_examples=ci, derandomize=True, database=None)
    settings.register_profile(f"{prefix}dev", base, max_examples=dev)
    settings.register_profile(f"{prefix}long", base, max_examples=long)
    ci_run = os.environ.get("CI", "").lower() == "true"
    chosen = os.environ.get("HYPOTHESIS_PROFILE", "ci" if ci_run else "dev")
    return settings.get_profile(f"{prefix}{chosen}" if chosen in SHARED else chosen)
