"""The image builds from its locks (issue 14, reproducible images), as far as that can be
done without a Docker engine: pip resolves each lock the Dockerfile installs from, with
the Dockerfile's own flags (``--require-hashes --only-binary=:all:``), for the image's
Python on amd64 and arm64 Linux, downloading every wheel and checking its hash; a changed
hash fails. Then the project's wheel is built, with the build lock's hatchling and no
build isolation (the Dockerfile's command), from exactly the files the builder stage
COPYs. Needs the package index: skipped without it, except in CI."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.deploy_support import ROOT, dockerfile
from tests.lock_support import BASE_LOCK, BUILD_LOCK, extra_locks

pytestmark = pytest.mark.integration

GLIBC_MINOR = 36  # Debian bookworm, the slim image's base
ARCHES = ("x86_64", "aarch64")


def image_python() -> str:
    found = re.fullmatch(r"python:(3\.\d+)-slim(-\w+)?", dockerfile()[-1].base)
    assert found, dockerfile()[-1].base
    return found.group(1)


def platforms(arch: str) -> list[str]:
    """Every manylinux tag a glibc 2.36 machine runs: pip takes ``--platform`` literally."""
    tags = [f"manylinux_2_{minor}_{arch}" for minor in range(GLIBC_MINOR, 16, -1)]
    return [*tags, f"manylinux2014_{arch}", "linux_" + arch]


def pip(*argv: str, cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | env
    return subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", *argv],
        capture_output=True,
        text=True,
        check=False,
        cwd=cwd,
        env=clean,
    )


def dockerfile_pip_flags() -> list[str]:
    """The flags of the Dockerfile's lock installs (the same for every lock)."""
    runs = " ".join(r.args for r in dockerfile()[0].all("RUN"))
    flags = sorted(set(re.findall(r"--require-hashes|--only-binary=\S+", runs)))
    assert flags == ["--only-binary=:all:", "--require-hashes"], flags
    return flags


def resolve(lock: Path, arch: str, target: Path) -> subprocess.CompletedProcess[str]:
    """``pip install -r lock`` for the image, as a dry run: resolve, download, hash."""
    platform_flags = [flag for tag in platforms(arch) for flag in ("--platform", tag)]
    return pip(
        "install",
        "--dry-run",
        "--ignore-installed",
        "--target",
        str(target),
        "--python-version",
        image_python(),
        *platform_flags,
        *dockerfile_pip_flags(),
        "--requirement",
        str(lock),
    )


@pytest.fixture(scope="module")
def index() -> None:
    """The package index answers (one locked wheel, downloaded), or the test skips."""
    probe = pip("download", "--no-deps", "--only-binary=:all:", "-d", "/tmp", "pip")
    if probe.returncode != 0:
        if os.environ.get("CI"):
            pytest.fail(f"the package index is needed in CI: {probe.stderr[-400:]}")
        pytest.skip("no package index here")


@pytest.mark.parametrize("arch", ARCHES)
@pytest.mark.usefixtures("index")
def test_each_lock_resolves_for_the_image_with_every_hash(arch: str, tmp_path: Path) -> None:
    for lock in (BASE_LOCK, BUILD_LOCK, *extra_locks().values()):
        done = resolve(lock, arch, tmp_path / "target")
        assert done.returncode == 0, f"{lock.name} on {arch}: {done.stderr[-1500:]}"
        assert "Would install" in done.stdout, done.stdout[-500:]


@pytest.mark.usefixtures("index")
def test_a_changed_hash_fails_the_install(tmp_path: Path) -> None:
    """pip checks the downloaded bytes: a lock whose hashes for PyYAML are not the
    published ones fails, naming the package."""
    text = BASE_LOCK.read_text()
    start = text.index("\npyyaml==")
    end = text.index("\n    # via", start)
    tampered_entry = re.sub(r"sha256:[0-9a-f]{64}", "sha256:" + "0" * 64, text[start:end])
    lock = tmp_path / "tampered.lock"
    lock.write_text(tampered_entry.strip() + "\n")
    done = resolve(lock, "x86_64", tmp_path / "target")
    assert done.returncode != 0
    assert "DO NOT MATCH THE HASHES" in done.stderr
    assert "pyyaml" in done.stderr.lower()


def builder_context(tmp_path: Path) -> Path:
    """The builder stage's COPY sources, and nothing else, laid out as Docker would."""
    context = tmp_path / "context"
    context.mkdir()
    for copy in dockerfile()[0].all("COPY"):
        *sources, dest = copy.args.split()
        for source in sources:
            target = context / (source if dest in ("./", ".") else dest.removeprefix("./"))
            target.parent.mkdir(parents=True, exist_ok=True)
            if (ROOT / source).is_dir():
                shutil.copytree(ROOT / source, target, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(ROOT / source, target)
    return context


@pytest.mark.usefixtures("index")
def test_the_wheel_builds_from_the_dockerfile_context_with_the_locked_hatchling(
    tmp_path: Path,
) -> None:
    """The Dockerfile's ``pip wheel --no-deps --no-build-isolation .`` with hatchling from
    requirements-build.lock, in a context of the COPYed files only: a file the build needs
    but the Dockerfile forgets (rules/demo.yaml once) fails here, not in a release."""
    build = tmp_path / "build"
    installed = pip(
        "install", "--target", str(build), *dockerfile_pip_flags(), "-r", str(BUILD_LOCK)
    )
    assert installed.returncode == 0, installed.stderr[-1500:]
    context = builder_context(tmp_path)
    built = pip(
        "wheel",
        "--no-deps",
        "--no-build-isolation",
        "--wheel-dir",
        str(tmp_path / "dist"),
        ".",
        cwd=context,
        PYTHONPATH=str(build),
    )
    assert built.returncode == 0, built.stderr[-1500:]
    (wheel,) = (tmp_path / "dist").glob("rollback_watchdog-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "watchdog/_rules/demo.yaml" in names
    assert "watchdog/cli/main.py" in names


def test_scripts_lock_reproduces_the_committed_locks(tmp_path: Path) -> None:
    """``bash scripts/lock`` on this pyproject.toml writes the committed locks again, byte
    for byte (uv keeps the pins a lock already has): a dependency changed in pyproject
    without ``bash scripts/lock`` shows here as a diff."""
    uv = shutil.which("uv") or str(Path(sys.executable).with_name("uv"))
    if not Path(uv).is_file():
        if os.environ.get("CI"):
            pytest.fail("uv is missing in CI (the dev extra has it)")
        pytest.skip("no uv here")
    copy = tmp_path / "repo"
    (copy / "scripts").mkdir(parents=True)
    locks = [BASE_LOCK, BUILD_LOCK, *extra_locks().values()]
    for path in [ROOT / "pyproject.toml", ROOT / "scripts" / "lock", *locks]:
        shutil.copy2(path, copy / path.relative_to(ROOT))
    done = subprocess.run(
        ["bash", str(copy / "scripts" / "lock")],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "UV": uv, "PYTHON": sys.executable},
    )
    if done.returncode != 0 and "error sending request" in done.stderr and not os.environ.get("CI"):
        pytest.skip("no package index here")
    assert done.returncode == 0, done.stderr[-1500:]
    for lock in locks:
        assert (copy / lock.name).read_text() == lock.read_text(), f"{lock.name} is stale"
