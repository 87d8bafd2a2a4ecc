"""Reading the deploy files the way their tools would: a small Dockerfile parser, the
setting names a manifest may use (derived from ``Settings``, never a hand list), and
the external linters, which skip without their binary except under ``CI``."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from pydantic import AliasChoices

from watchdog.settings import Settings, listen_address

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"


# --- Dockerfile --------------------------------------------------------------------------


@dataclass
class Instruction:
    keyword: str  # upper case: FROM, RUN, ENV, ...
    args: str  # the rest of the (joined) line
    line: int


@dataclass
class Stage:
    base: str  # FROM's image with build ARG defaults substituted
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def one(self, keyword: str) -> Instruction:
        found = self.all(keyword)
        assert len(found) == 1, f"expected one {keyword} in stage {self.name}, got {len(found)}"
        return found[0]

    def env(self) -> dict[str, str]:
        """Every ``ENV key=value`` of the stage, later ones winning, as Docker does."""
        out: dict[str, str] = {}
        for instruction in self.all("ENV"):
            for token in shlex.split(instruction.args):
                key, sep, value = token.partition("=")
                assert sep, f"line {instruction.line}: use ENV key=value, not the legacy form"
                out[key] = value
        return out


def parse_dockerfile(text: str) -> list[Stage]:
    """Stages with their instructions: continuation lines joined, comments dropped,
    global ``ARG`` defaults substituted into ``FROM``."""
    logical: list[tuple[int, str]] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue  # a comment inside a continued instruction
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending.append(stripped[:-1].strip())
            continue
        pending.append(stripped)
        logical.append((start, " ".join(part for part in pending if part)))
        pending = []
    assert not pending, "the Dockerfile ends inside a continued instruction"

    args: dict[str, str] = {}
    stages: list[Stage] = []
    for number, line in logical:
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        rest = rest.strip()
        if keyword == "ARG" and not stages:
            name, _, default = rest.partition("=")
            args[name] = default
            continue
        if keyword == "FROM":
            words = rest.split()
            words = [w for w in words if not w.startswith("--")]
            image = re.sub(
                r"\$\{(\w+)\}|\$(\w+)", lambda m: args[m.group(1) or m.group(2)], words[0]
            )
            stage_name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            stages.append(Stage(image, stage_name))
            continue
        assert stages, f"line {number}: {keyword} before the first FROM"
        stages[-1].instructions.append(Instruction(keyword, rest, number))
    return stages


def exec_form(args: str) -> list[str]:
    """A JSON-array (exec form) argument list; fails on the shell form."""
    assert args.startswith("["), f"expected exec form (a JSON array), got {args!r}"
    value = json.loads(args)
    assert isinstance(value, list)
    assert all(isinstance(item, str) for item in value)
    return [str(item) for item in value]


def healthcheck_command(args: str) -> list[str]:
    """The command of ``HEALTHCHECK [--options] CMD [...]``."""
    _, sep, command = args.partition("CMD ")
    assert sep, f"HEALTHCHECK without CMD: {args!r}"
    return exec_form(command.strip())


def dockerfile() -> list[Stage]:
    return parse_dockerfile((ROOT / "Dockerfile").read_text())


# --- settings ----------------------------------------------------------------------------


@dataclass(frozen=True)
class SettingNames:
    exact: frozenset[str]
    prefixes: tuple[str, ...]  # nested settings: WATCHDOG_SECRETS__<NAME>

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        upper = name.upper()
        return upper in self.exact or any(
            upper.startswith(p) and len(upper) > len(p) for p in self.prefixes
        )


def setting_names() -> SettingNames:
    """Every environment variable ``Settings`` reads: each field by its alias choices
    if it has them, else by prefix + field name; dict fields take nested names."""
    config = Settings.model_config
    prefix = str(config.get("env_prefix", "")).upper()
    delimiter = str(config.get("env_nested_delimiter") or "")
    exact: set[str] = set()
    prefixes: list[str] = []
    for name, info in Settings.model_fields.items():
        alias = info.validation_alias
        if isinstance(alias, AliasChoices):
            exact.update(str(choice).upper() for choice in alias.choices)
        elif isinstance(alias, str):
            exact.add(alias.upper())
        else:
            exact.add(f"{prefix}{name.upper()}")
        if delimiter and getattr(info.annotation, "__origin__", None) is dict:
            prefixes.append(f"{prefix}{name.upper()}{delimiter}")
    return SettingNames(frozenset(exact), tuple(prefixes))


def looks_like_ours(name: str) -> bool:
    """A variable meant for the watchdog: our prefix or one of the unprefixed aliases
    (the rest, like PATH or PYTHONUNBUFFERED, is for other programs)."""
    prefix = str(Settings.model_config.get("env_prefix", "")).upper()
    ecosystem = {
        n.split("_", 1)[0] + "_" for n in setting_names().exact if not n.startswith(prefix)
    }
    return name.upper().startswith((prefix, *ecosystem))


def default_port() -> int:
    default = Settings.model_fields["listen"].default
    assert isinstance(default, str)
    return listen_address(default)[1]


# --- external tools ----------------------------------------------------------------------


def tool(name: str, install_hint: str, required_in_ci: bool = True) -> str:
    """The path of a command-line tool (on PATH or in this venv); skip without it, or
    fail when ``CI`` is set and CI is meant to have it (CI must not silently check less)."""
    venv_bin = Path(sys.executable).parent
    path = shutil.which(name) or shutil.which(name, path=str(venv_bin))
    if path is None:
        message = f"{name} is not installed ({install_hint})"
        if required_in_ci and os.environ.get("CI"):
            pytest.fail(message + "; CI must run this check")
        pytest.skip(message)
    return path
