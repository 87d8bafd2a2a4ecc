"""The container's hash-pinned locks (issue 14, reproducible images): they cover every
runtime dependency of pyproject.toml at versions its ranges allow, every pin has its
hashes, the postgres variant keeps the base pins, and the Dockerfile installs from them
with ``--require-hashes`` and the project with ``--no-deps``. Offline; the integration
test tests/integration/test_container_lock.py has pip resolve them for the image."""

from __future__ import annotations

import re

import pytest

from tests.deploy_support import ROOT, dockerfile
from tests.lock_support import (
    BASE_LOCK,
    BUILD_LOCK,
    coverage_problems,
    extra_locks,
    parse_lock,
    pyproject,
)


def image_python() -> str:
    """The image's Python, like ``3.12``, from the runtime stage's base."""
    found = re.fullmatch(r"python:(3\.\d+)-slim(-\w+)?", dockerfile()[-1].base)
    assert found, dockerfile()[-1].base
    return found.group(1)


def test_the_base_lock_covers_every_runtime_dependency() -> None:
    pins = parse_lock(BASE_LOCK.read_text(), BASE_LOCK.name)
    needed = pyproject()["project"]["dependencies"]
    assert coverage_problems(needed, pins, image_python(), BASE_LOCK.name) == []


def test_each_extra_lock_covers_its_extra_with_the_base_pins() -> None:
    """``requirements-postgres.lock``: the runtime dependencies, the extra's, and the
    very same pins and hashes as the base lock for what they share."""
    project = pyproject()["project"]
    base = parse_lock(BASE_LOCK.read_text(), BASE_LOCK.name)
    locks = extra_locks()
    assert "postgres" in locks
    for extra, path in locks.items():
        assert extra in project["optional-dependencies"], f"{path.name}: no such extra"
        pins = parse_lock(path.read_text(), path.name)
        needed = project["dependencies"] + project["optional-dependencies"][extra]
        assert coverage_problems(needed, pins, image_python(), path.name) == []
        for name, pin in base.items():
            assert name in pins, f"{path.name} drops {name}"
            assert (pins[name].version, pins[name].hashes) == (pin.version, pin.hashes), name


def test_the_build_lock_covers_the_build_system() -> None:
    pins = parse_lock(BUILD_LOCK.read_text(), BUILD_LOCK.name)
    needed = pyproject()["build-system"]["requires"]
    assert coverage_problems(needed, pins, image_python(), BUILD_LOCK.name) == []


def test_the_dockerfile_installs_from_the_locks_with_hashes() -> None:
    builder = dockerfile()[0]
    copied = " ".join(c.args for c in builder.all("COPY"))
    for path in (BASE_LOCK, BUILD_LOCK, *extra_locks().values()):
        assert path.name in copied, f"the builder does not COPY {path.name}"
    runs = [r.args for r in builder.all("RUN") if "pip install" in r.args]
    commands = [part.strip() for run in runs for part in run.split("&&")]
    installs = [c for c in commands if re.search(r"\bpip install\b", c)]
    from_locks = [c for c in installs if "--requirement" in c or " -r " in c]
    assert len(from_locks) == 2  # the app's venv, and the build venv
    for command in from_locks:
        assert "--require-hashes" in command, command
        assert "--only-binary=:all:" in command, command
    # The lock an EXTRAS build picks, and the build lock.
    assert "requirements${EXTRAS:+-$EXTRAS}.lock" in " ".join(runs)
    assert any("requirements-build.lock" in c for c in from_locks)
    # Everything else is the project's own wheel, without dependencies.
    (project,) = [c for c in installs if c not in from_locks]
    assert "--no-deps" in project, project
    wheel = next(c for c in commands if "pip wheel" in c)
    assert "--no-deps" in wheel
    assert "--no-build-isolation" in wheel  # hatchling from the build lock, not the index


@pytest.mark.parametrize(
    ("lock", "problem"),
    [
        ("pyyaml==6.0.1 \\\n    --hash=sha256:" + "a" * 64 + "\n", "outside pyproject"),
        ("uvicorn==0.55.0 \\\n    --hash=sha256:" + "b" * 64 + "\n", "is not locked"),
    ],
)
def test_the_coverage_check_finds_what_is_wrong(lock: str, problem: str) -> None:
    """Held to pyyaml>=6.1: 6.0.1 is outside; a lock without pyyaml lacks it."""
    problems = coverage_problems(["pyyaml>=6.1"], parse_lock(lock), "3.12", "test.lock")
    assert len(problems) == 1
    assert problem in problems[0]
    assert "bash scripts/lock" in problems[0]


@pytest.mark.parametrize(
    ("lock", "message"),
    [
        ("pyyaml>=6.0 \\\n    --hash=sha256:" + "a" * 64 + "\n", "not pinned with =="),
        ("pyyaml==6.0.1\n", "has no --hash"),
        ("pyyaml==6.0.1 \\\n    --hash=sha256:abc\n", "not a sha256 hash"),
        ("-e .\n", "option"),
    ],
)
def test_a_lock_that_is_not_fully_pinned_is_refused(lock: str, message: str) -> None:
    with pytest.raises(AssertionError, match=message):
        parse_lock(lock)


def test_contributing_says_how_to_regenerate_the_locks() -> None:
    text = (ROOT / "CONTRIBUTING.md").read_text()
    assert "bash scripts/lock" in text
    assert (ROOT / "scripts" / "lock").is_file()
