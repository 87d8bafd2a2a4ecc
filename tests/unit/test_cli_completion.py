"""``rollback-watchdog completion bash|zsh`` (issue 14): scripts generated from the argparse
parser, loaded by the real shells and asked to complete as they would on a Tab."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from watchdog.cli.completion import script, tables
from watchdog.cli.main import build_parser, main


def generated(shell: str, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> Path:
    assert main(["completion", shell]) == 0
    path = tmp_path / f"completion.{shell}"
    path.write_text(capsys.readouterr().out)
    return path


def bash_complete(path: Path, *words: str) -> list[str]:
    """What bash's completion function offers with the cursor on the last word."""
    program = (
        f'source "{path}"\n'
        f"COMP_WORDS=({' '.join(repr(w) for w in words)}); COMP_CWORD={len(words) - 1}\n"
        "_rollback_watchdog\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    done = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", program],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return [line for line in done.stdout.splitlines() if line]


def test_bash_completes_verbs_subverbs_flags_and_choices(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = generated("bash", capsys, tmp_path)
    assert bash_complete(path, "rollback-watchdog", "st") == ["status"]
    assert bash_complete(path, "rollback-watchdog", "sil") == ["silence"]
    assert bash_complete(path, "rollback-watchdog", "silence", "")[:3] == [
        "add",
        "query",
        "expire",
    ]
    assert "--comment" in bash_complete(path, "rollback-watchdog", "silence", "add", "--c")
    assert bash_complete(path, "rollback-watchdog", "status", "--url", "u", "-o", "j") == ["json"]
    assert bash_complete(path, "rollback-watchdog", "completion", "z") == ["zsh"]
    assert bash_complete(path, "rollback-watchdog", "demo", "--scenario", "fl") == ["flapping"]
    # A flag with a free value offers nothing itself: `complete -o default` lists files.
    assert bash_complete(path, "rollback-watchdog", "backtest", "--rules", "") == []
    registered = subprocess.run(
        ["bash", "--norc", "-c", f'source "{path}"; complete -p rollback-watchdog'],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert registered.strip() == "complete -o default -F _rollback_watchdog rollback-watchdog"


def test_the_script_is_generated_from_the_parser() -> None:
    """A verb, sub-verb, flag or choice added to the parser completes with no other edit;
    every verb of the real parser is in the tables."""
    parser = argparse.ArgumentParser(prog="rollback-watchdog")
    verbs = parser.add_subparsers(dest="command")
    fresh = verbs.add_parser("frobnicate")
    fresh.add_argument("--level", choices=("low", "high"))
    fresh.add_argument("--file")
    found = tables(parser)
    assert found.subs[""] == ["frobnicate"]
    assert found.values["frobnicate|--level"] == ["low", "high"]
    assert "frobnicate|--file" in found.takes_value
    assert "frobnicate|--level" not in found.takes_value
    assert "'frobnicate|--level') echo 'low high' ;;" in script("bash", parser)
    real = tables(build_parser())
    assert {"status", "silence", "check", "completion", "version"} <= set(real.subs[""])
    assert real.subs["silence"] == ["add", "query", "expire"]
    assert real.values["status|--output"] == ["text", "json", "simple"]


@pytest.fixture
def zsh() -> str:
    found = shutil.which("zsh")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("zsh is missing in CI (.ci/run installs it)")
        pytest.skip("no zsh here: the bash test and the tables test cover the generator")
    return found


def test_zsh_loads_the_script_and_completes(
    zsh: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """zsh parses the script (``zsh -n``); sourced, it registers itself with compdef and
    offers, through compadd, the words for the verb path typed so far."""
    path = generated("zsh", capsys, tmp_path)
    assert path.read_text().startswith("#compdef rollback-watchdog\n")
    syntax = subprocess.run([zsh, "-n", str(path)], capture_output=True, text=True, check=False)
    assert syntax.returncode == 0, syntax.stderr
    # compdef, compadd and _files exist only inside the completion system: here each
    # prints what it was given, so the test reads what zsh would offer.
    program = f"""
compdef() {{ print -r -- "compdef $*" }}
compadd() {{ [[ $1 == -- ]] && shift; print -r -- "offer: $*" }}
_files() {{ print -r -- "offer: FILES" }}
source "{path}"
ask() {{ words=("$@"); CURRENT=$#; _rollback_watchdog }}
ask rollback-watchdog ''
ask rollback-watchdog silence ''
ask rollback-watchdog status -o ''
ask rollback-watchdog backtest --rules ''
"""
    done = subprocess.run([zsh, "-f", "-c", program], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "compdef _rollback_watchdog rollback-watchdog"
    assert lines[1].startswith("offer: run check demo ")
    assert lines[2] == "offer: add query expire -h --help"
    assert lines[3] == "offer: text json simple"
    assert lines[4] == "offer: FILES"
