"""Reading the container's hash-pinned locks (``requirements*.lock``, written by
``bash scripts/lock``) and holding them to ``pyproject.toml``."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.deploy_support import ROOT

BASE_LOCK = ROOT / "requirements.lock"
BUILD_LOCK = ROOT / "requirements-build.lock"
HASH = re.compile(r"--hash=sha256:([0-9a-f]{64})")


@dataclass
class Pin:
    name: str  # canonical: psycopg-binary
    version: str
    marker: Marker | None
    hashes: list[str] = field(default_factory=list)


def parse_lock(text: str, where: str = "lock") -> dict[str, Pin]:
    """``name==version [; marker]`` entries with their ``--hash`` lines; anything else
    (a range, a URL, an editable, a hash-less pin) is an error naming its line."""
    pins: dict[str, Pin] = {}
    current: Pin | None = None
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip().rstrip("\\").strip()
        if not line:
            continue
        if line.startswith("--hash="):
            found = HASH.fullmatch(line)
            assert found, f"{where}:{number}: not a sha256 hash: {line}"
            assert current is not None, f"{where}:{number}: a hash before any requirement"
            current.hashes.append(found.group(1))
            continue
        assert not line.startswith("-"), f"{where}:{number}: option {line!r} in a lock"
        requirement = Requirement(line)
        specs = list(requirement.specifier)
        assert len(specs) == 1, f"{where}:{number}: {line!r} is not one exact pin"
        assert specs[0].operator == "==", f"{where}:{number}: {line!r} is not pinned with =="
        assert requirement.url is None, f"{where}:{number}: {line!r} is a URL"
        name = canonicalize_name(requirement.name)
        assert name not in pins, f"{where}:{number}: {name} pinned twice"
        current = pins[name] = Pin(name, specs[0].version, requirement.marker)
    for pin in pins.values():
        assert pin.hashes, f"{where}: {pin.name}=={pin.version} has no --hash"
    return pins


def image_environment(python: str) -> dict[str, str]:
    """Marker values of the image: Debian on Linux, CPython ``python`` (like 3.12)."""
    return {
        "python_version": python,
        "python_full_version": f"{python}.0",
        "sys_platform": "linux",
        "platform_system": "Linux",
        "os_name": "posix",
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
        "platform_machine": "x86_64",
    }


def coverage_problems(
    requirements: list[str], pins: dict[str, Pin], python: str, where: str
) -> list[str]:
    """What ``requirements`` (pyproject's strings) need that the lock lacks: an absent
    package, or a pin outside the range pyproject allows."""
    problems = []
    env = image_environment(python)
    for text in requirements:
        requirement = Requirement(text)
        if requirement.marker is not None and not requirement.marker.evaluate(env):
            continue
        name = canonicalize_name(requirement.name)
        pin = pins.get(name)
        if pin is None:
            problems.append(f"{where}: {text!r} is not locked (run: bash scripts/lock)")
            continue
        if not requirement.specifier.contains(Version(pin.version), prereleases=True):
            problems.append(
                f"{where}: {name}=={pin.version} is outside pyproject's {text!r} "
                "(run: bash scripts/lock)"
            )
    return problems


def pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def extra_locks() -> dict[str, Path]:
    """``requirements-EXTRA.lock`` files: the image variants ``--build-arg EXTRAS=``."""
    return {
        path.name.removeprefix("requirements-").removesuffix(".lock"): path
        for path in sorted(ROOT.glob("requirements-*.lock"))
        if path != BUILD_LOCK
    }
