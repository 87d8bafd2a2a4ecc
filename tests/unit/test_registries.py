"""One registry shape (issue 12): for sources, targets, purges and notifiers, a plain dict
from the rules file's ``type:`` to a factory, with written imports; the CLI's verbs are a
tuple of imported ``register`` functions."""

from __future__ import annotations

import argparse
import ast
from pathlib import Path

import pytest

from watchdog.actions.notify.registry import NOTIFIER_FACTORIES
from watchdog.actions.registry import PURGE_FACTORIES, TARGET_FACTORIES
from watchdog.cli.main import REGISTER, build_parser
from watchdog.rules.model import SOURCE_TYPES
from watchdog.rules.response import NOTIFIER_TYPES, PURGE_TYPES, TARGET_TYPES
from watchdog.sources.registry import SOURCE_TYPES as SOURCE_FACTORIES

PACKAGE = Path(__file__).resolve().parents[2] / "watchdog"


@pytest.mark.parametrize(
    ("registry", "types"),
    [
        (SOURCE_FACTORIES, SOURCE_TYPES),
        (TARGET_FACTORIES, TARGET_TYPES),
        (PURGE_FACTORIES, PURGE_TYPES),
        (NOTIFIER_FACTORIES, NOTIFIER_TYPES),
    ],
    ids=["sources", "targets", "purges", "notifiers"],
)
def test_each_registry_builds_every_type_the_rules_file_accepts(
    registry: dict[str, object], types: tuple[str, ...]
) -> None:
    assert sorted(registry) == sorted(types)
    assert all(callable(factory) for factory in registry.values())


def test_nothing_is_imported_by_a_string() -> None:
    """No ``importlib``: every module the product uses is a written import, so mypy,
    import-linter and a reader all see it."""
    users = [
        str(path.relative_to(PACKAGE))
        for path in sorted(PACKAGE.rglob("*.py"))
        if any(
            isinstance(node, ast.Import | ast.ImportFrom)
            and "importlib" in ([a.name for a in node.names] + [getattr(node, "module", "")])
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        )
    ]
    assert users == []


def test_every_verb_comes_from_a_registered_function() -> None:
    parser = build_parser()
    verbs = next(
        action.choices
        for action in parser._actions
        if isinstance(action, argparse._SubParsersAction)
    )
    assert {"run", "check", "demo", "targets", "rollback", "silence", "status"} <= set(verbs)
    assert all(callable(register) for register in REGISTER)
