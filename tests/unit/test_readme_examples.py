"""Examples are tests (issue 10, defect 11): every command and file the README shows is
run or checked here, so an example that fails when copied fails the suite.

- A ```yaml block starts with a comment naming a real file of the repo (``# path``) and
  is that file, byte for byte; rules files are checked, rule unit test files are run.
- Every command of a ```sh block is parsed by the real CLI parser; the ones that need
  nothing but the repo (``check rules``, ``test rules``) are run and must succeed;
  scripts (``bash scripts/demo``) exist and are valid bash; no command holds an
  unquoted shell operator (a ``|`` in a matcher would pipe).
- Every inline ``rollback-watchdog ...`` command (prose and the CLI table) parses.
- An output block (``` without a language) is reproduced by the command it illustrates.
- Every relative link and every ``watchdog.`` dotted name points at something real.
- The quick start is exactly two commands.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import itertools
import json
import re
import shlex
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from watchdog.backtest.ruletest import run_rule_tests
from watchdog.cli.main import build_parser, main
from watchdog.rules.load import check_files

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"


@dataclass(frozen=True)
class Block:
    lang: str
    text: str
    line: int  # of the opening fence
    section: str  # the nearest heading above

    @property
    def where(self) -> str:
        return f"README.md:{self.line} ({self.section})"


def blocks() -> list[Block]:
    out: list[Block] = []
    section = ""
    lines = README.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("#"):
            section = line.lstrip("# ").strip()
        fence = re.match(r"^```(\w*)\s*$", line)
        if fence:
            end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
            body = "\n".join(lines[i + 1 : end]) + "\n"
            out.append(Block(fence.group(1), body, i + 1, section))
            i = end
        i += 1
    return out


def prose() -> str:
    """The README without its fenced blocks."""
    return re.sub(r"^```.*?^```", "", README.read_text(encoding="utf-8"), flags=re.S | re.M)


def shell_commands(block: Block) -> Iterator[str]:
    """Commands of a sh block: continuation lines joined, comments dropped."""
    joined = block.text.replace("\\\n", " ")
    for line in joined.splitlines():
        command = _strip_comment(line).strip()
        if command:
            yield re.sub(r"\s+", " ", command)


def _strip_comment(line: str) -> str:
    """The line without a trailing ``# comment`` (README commands quote no ``#``)."""
    if line.lstrip().startswith("#"):
        return ""
    return re.split(r"\s#\s", line, maxsplit=1)[0]


# --- the quick start ---------------------------------------------------------------------


def test_the_quick_start_is_exactly_two_commands() -> None:
    quick = [b for b in blocks() if b.section == "Quick start"]
    assert len(quick) == 1
    assert list(shell_commands(quick[0])) == ["bash scripts/demo", "bash .ci/run"]


def test_the_quick_start_scripts_exist_and_are_valid_bash() -> None:
    for script in ("scripts/demo", ".ci/run", "scripts/setup"):
        path = ROOT / script
        assert path.is_file(), script
        assert subprocess.run(["bash", "-n", str(path)], check=False).returncode == 0, script
    # The demo script runs the command test_demo.py runs (the demo, judged strictly).
    assert 'exec .venv/bin/rollback-watchdog demo "$@"' in (ROOT / "scripts/demo").read_text()


# --- files ------------------------------------------------------------------------------


def yaml_blocks() -> list[Block]:
    return [b for b in blocks() if b.lang in ("yaml", "yml")]


@pytest.mark.parametrize("block", yaml_blocks(), ids=lambda b: f"line{b.line}")
def test_a_yaml_block_is_a_real_file(block: Block) -> None:
    first = block.text.splitlines()[0]
    named = re.fullmatch(r"# (\S+\.ya?ml)(?:\s.*)?", first)
    assert named, f"{block.where}: the first line must name the file it shows (# path)"
    path = ROOT / named.group(1)
    assert path.is_file(), f"{block.where}: {named.group(1)} is not a file of the repo"
    assert path.read_text(encoding="utf-8") == block.text, (
        f"{block.where}: differs from {named.group(1)}"
    )


@pytest.mark.parametrize("block", yaml_blocks(), ids=lambda b: f"line{b.line}")
def test_a_yaml_block_works(block: Block) -> None:
    name = block.text.splitlines()[0].split()[1]
    if name.endswith(".test.yaml"):
        code, lines = run_rule_tests([str(ROOT / name)])
        assert code == 0, "\n".join(lines)
    else:
        _, problems = check_files([str(ROOT / name)])
        assert problems == []


# --- commands ---------------------------------------------------------------------------

# Placeholders of the README's synopses, with a value the parser accepts.
PLACEHOLDERS = {
    "P": "rules/example.yaml",
    "H:P": "127.0.0.1:9464",
    "S": "bad-deploy",
    "TARGET...": "worker",
    "TEXT": "why",
    "PATH...": "rules/example.yaml",
    "ID...": "0123abcd",
    "INCIDENT": "0123abcd",
    "FILE": "draft.md",
    "REGEX": "spike",
    "MATCHER...": "rule=error-rate",
    "URL": "http://127.0.0.1:9464",
}


def variants(command: str) -> Iterator[list[str]]:
    """The argument lists a synopsis stands for: optional parts ``[...]`` included, and
    each alternative of ``a|b`` (``a\\|b`` in a table) once."""
    command = command.replace("\\|", "|")
    command = re.sub(r"\[([^\[\]]*)\]", r"\1", command)
    words = command.split()
    choices = [_alternatives(word) for word in words]
    for combo in itertools.product(*choices):
        yield [PLACEHOLDERS.get(word, word) for word in combo]


def _alternatives(word: str) -> list[str]:
    if "|" in word and "=" not in word and not word.startswith("-"):
        return word.split("|")
    return [word]


def cli_args(command: str) -> list[str] | None:
    """The arguments after ``rollback-watchdog`` (env assignments before it allowed)."""
    words = command.split()
    while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=\S*", words[0]):
        words = words[1:]
    if not words or words[0] != "rollback-watchdog":
        return None
    return words[1:]


def parse_error(args: list[str]) -> str | None:
    """The CLI parser's complaint about ``args``, or None when it accepts them."""
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            build_parser().parse_args(args)
    except SystemExit:
        return err.getvalue().strip().splitlines()[-1]
    return None


def parses(args: list[str], synopsis: bool = False) -> bool:
    """``synopsis``: the README names a command without its required arguments (the
    CLI table's ``silence add|query|expire``): the command must exist."""
    error = parse_error(args)
    if error is None:
        return True
    return synopsis and "the following arguments are required" in error


def sh_commands() -> list[tuple[Block, str]]:
    return [(b, c) for b in blocks() if b.lang in ("sh", "bash") for c in shell_commands(b)]


@pytest.mark.parametrize(("block", "command"), sh_commands(), ids=lambda x: str(x)[:60])
def test_a_shell_command_is_valid(block: Block, command: str) -> None:
    lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
    operators = [t for t in lexer if t in ("|", "||", "&", "&&", ";", ">", "<")]
    assert operators == [], f"{block.where}: {command!r} has shell operators {operators}"
    assert "[" not in command, f"{block.where}: {command!r}: a synopsis, not a command"
    words = command.split()
    if words[0] == "bash":
        assert (ROOT / words[1]).is_file(), f"{block.where}: no script {words[1]}"
        return
    args = cli_args(command)
    assert args is not None, f"{block.where}: not a rollback-watchdog command: {command!r}"
    for variant in variants(" ".join(args)):
        assert parses(variant), f"{block.where}: {variant}: {parse_error(variant)}"


def runnable() -> list[tuple[Block, str]]:
    """Commands that need nothing but the repo: run them."""
    out = []
    for block, command in sh_commands():
        args = cli_args(command)
        if args and args[:2] in (["check", "rules"], ["test", "rules"]):
            out.append((block, command))
    return out


@pytest.mark.parametrize(("block", "command"), runnable(), ids=lambda x: str(x)[:60])
def test_a_runnable_command_succeeds(
    block: Block, command: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(ROOT)
    args = cli_args(re.sub(r"\[[^\]]*\]", "", command))
    assert args is not None
    expanded = [str(p.relative_to(ROOT)) for a in args for p in _glob(a)] if args else []
    code = main(expanded)
    out = capsys.readouterr()
    assert code == 0, f"{block.where}: {command!r} exited {code}\n{out.out}\n{out.err}"
    if args[:2] == ["check", "rules"]:  # "a line per file"
        assert len(out.out.strip().splitlines()) == len(args) - 2


def _glob(arg: str) -> list[Path]:
    if any(c in arg for c in "*?"):
        found = sorted(ROOT.glob(arg))
        assert found, arg
        return found
    return [ROOT / arg] if (ROOT / arg).exists() else [Path(ROOT / arg)]


def inline_commands() -> list[str]:
    spans = re.findall(r"`([^`\n]*rollback-watchdog [^`\n]*)`", prose())
    return [s for s in spans if cli_args(s) is not None]


def test_the_readme_shows_inline_commands() -> None:
    assert len(inline_commands()) >= 15


@pytest.mark.parametrize("command", inline_commands())
def test_an_inline_command_parses(command: str) -> None:
    args = cli_args(command)
    assert args is not None
    for variant in variants(" ".join(args)):
        assert parses(variant, synopsis=True), (
            f"the CLI refuses {variant}: {parse_error(variant)} (README: `{command}`)"
        )


# --- output examples, links, names ----------------------------------------------------


def test_the_check_rules_output_example_is_what_check_rules_prints(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The plain block under "Checking rules" is reproduced: a typo on line 12."""
    [example] = [b.text.strip() for b in blocks() if b.lang == "" and "promethus" in b.text]
    match = re.match(r"(\S+):(\d+) ", example)
    assert match, example
    path, line = match.group(1), int(match.group(2))
    text = "version: 1\n" + "# padding\n" * (line - 3) + "sources:\n  prom: {type: promethus}\n"
    (tmp_path / Path(path).parent).mkdir(parents=True)
    (tmp_path / path).write_text(text)
    monkeypatch.chdir(tmp_path)
    _, problems = check_files([path])
    assert example in problems, problems


def test_every_relative_link_exists() -> None:
    links = re.findall(r"\]\(([^)#\s]+)\)", README.read_text(encoding="utf-8"))
    local = [link for link in links if "://" not in link]
    assert local
    missing = [link for link in local if not (ROOT / link).exists()]
    assert missing == []


def test_every_dotted_watchdog_name_exists() -> None:
    names = set(re.findall(r"`(watchdog(?:\.\w+)+)\(", README.read_text(encoding="utf-8")))
    assert names
    for dotted in names:
        module, _, attr = dotted.rpartition(".")
        assert hasattr(importlib.import_module(module), attr), dotted


def inline_json() -> list[dict[str, object]]:
    """Inline JSON objects the README shows (a line break inside one is a space)."""
    spans = re.findall(r"`(\{\"[^`]*\})`", prose())
    return [json.loads(" ".join(span.split())) for span in spans]


def test_inline_json_examples_are_accepted() -> None:
    """The silence API body and ``deployments.json`` examples are what the code takes."""
    from watchdog.api.silences import SilenceIn
    from watchdog.backtest.times import parse_deployments
    from watchdog.incidents.matchers import parse_matcher

    shown = inline_json()
    silences = [s for s in shown if "matchers" in s]
    deployments = [s for s in shown if "matchers" not in s]
    assert silences
    assert deployments
    for body in silences:
        silence = SilenceIn.model_validate(body)
        for matcher in silence.matchers:
            assert isinstance(matcher, str)
            parse_matcher(matcher)
    for data in deployments:
        assert parse_deployments(data, "README deployments.json")


@pytest.mark.parametrize("command", inline_commands())
def test_an_inline_regex_matcher_is_quoted(command: str) -> None:
    """``target=~worker|frontend`` pasted into a shell is a pipe into ``frontend``."""
    lexer = shlex.shlex(command.replace("\\|", "|"), posix=True, punctuation_chars=True)
    tokens = list(lexer)
    for before, token in itertools.pairwise(tokens):
        assert not (token == "|" and ("=~" in before or "!~" in before)), (
            f"quote the regex matcher {before}|...: `{command}`"
        )
