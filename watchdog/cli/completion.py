"""``rollback-watchdog completion bash|zsh``: a shell completion script generated from the
argparse parser itself, so a new verb, flag or choice completes without editing a script.

The script holds three tables keyed by the verb path typed so far (``""``, ``"silence"``,
``"silence add"``): the sub-verbs, every word that may come next (sub-verbs and flags),
and the values of a flag with ``choices`` (``-o`` → ``text json``). A flag that takes a
free value (``--rules FILE``) completes file names."""

from __future__ import annotations

import argparse
import shlex
from dataclasses import dataclass, field

from watchdog.cli.output import add_output, emit, wants_json

SHELLS = ("bash", "zsh")
PROG = "rollback-watchdog"


@dataclass
class Tables:
    """What completes after each verb path."""

    subs: dict[str, list[str]] = field(default_factory=dict)
    words: dict[str, list[str]] = field(default_factory=dict)
    values: dict[str, list[str]] = field(default_factory=dict)  # "path|flag" → choices
    takes_value: dict[str, None] = field(default_factory=dict)  # "path|flag" (free value)


def tables(parser: argparse.ArgumentParser) -> Tables:
    found = Tables()
    _walk(parser, "", found)
    return found


def _walk(parser: argparse.ArgumentParser, path: str, found: Tables) -> None:
    subs: list[str] = []
    flags: list[str] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                subs.append(name)
                _walk(child, f"{path} {name}".strip(), found)
            continue
        if not action.option_strings:  # a positional: its choices complete (``bash``)
            flags += [str(choice) for choice in action.choices or ()]
            continue
        if action.help == argparse.SUPPRESS:
            continue
        flags += action.option_strings
        for flag in action.option_strings:
            if action.choices is not None:
                found.values[f"{path}|{flag}"] = [str(choice) for choice in action.choices]
            elif action.nargs != 0:
                found.takes_value[f"{path}|{flag}"] = None
    found.subs[path] = subs
    found.words[path] = subs + flags


def _case(table: dict[str, list[str]] | dict[str, None], indent: str) -> str:
    """A shell ``case`` over the keys, echoing each one's words (bash and zsh agree)."""
    arms = []
    for key, words in table.items():
        text = " ".join(words) if words is not None else "1"
        arms.append(f"{indent}{shlex.quote(key)}) echo {shlex.quote(text)} ;;")
    return "\n".join(arms)


def _functions(found: Tables) -> str:
    pad = " " * 8
    return f"""\
_rollback_watchdog_subs() {{
    case "$1" in
{_case(found.subs, pad)}
    esac
}}
_rollback_watchdog_words() {{
    case "$1" in
{_case(found.words, pad)}
    esac
}}
_rollback_watchdog_values() {{
    case "$1" in
{_case(found.values, pad)}
    esac
}}
_rollback_watchdog_takes_value() {{
    case "$1" in
{_case(found.takes_value, pad)}
    esac
}}
"""


# The verb path: the words typed so far that are sub-verbs of the path before them.
_BASH_MAIN = """\
_rollback_watchdog() {
    local cur="${COMP_WORDS[COMP_CWORD]}" prev="" cmdpath="" word i values
    (( COMP_CWORD > 0 )) && prev="${COMP_WORDS[COMP_CWORD-1]}"
    for (( i = 1; i < COMP_CWORD; i++ )); do
        word="${COMP_WORDS[i]}"
        [[ "$word" == -* ]] && continue
        [[ " $(_rollback_watchdog_subs "$cmdpath") " == *" $word "* ]] \\
            && cmdpath="${cmdpath:+$cmdpath }$word"
    done
    values="$(_rollback_watchdog_values "$cmdpath|$prev")"
    if [[ -n "$values" ]]; then
        COMPREPLY=( $(compgen -W "$values" -- "$cur") )
    elif [[ -n "$(_rollback_watchdog_takes_value "$cmdpath|$prev")" ]]; then
        COMPREPLY=()  # a file name or free text: -o default completes file names
    else
        COMPREPLY=( $(compgen -W "$(_rollback_watchdog_words "$cmdpath")" -- "$cur") )
    fi
}
complete -o default -F _rollback_watchdog rollback-watchdog
"""

# zsh: ``words`` is 1-based and ``path`` is PATH's array, hence ``cmdpath``.
_ZSH_MAIN = """\
_rollback_watchdog() {
    local cur="${words[CURRENT]}" prev="${words[CURRENT-1]}" cmdpath="" word i values
    for (( i = 2; i < CURRENT; i++ )); do
        word="${words[i]}"
        [[ "$word" == -* ]] && continue
        [[ " $(_rollback_watchdog_subs "$cmdpath") " == *" $word "* ]] \\
            && cmdpath="${cmdpath:+$cmdpath }$word"
    done
    values="$(_rollback_watchdog_values "$cmdpath|$prev")"
    if [[ -n "$values" ]]; then
        compadd -- ${=values}
    elif [[ -n "$(_rollback_watchdog_takes_value "$cmdpath|$prev")" ]]; then
        _files
    else
        compadd -- ${=$(_rollback_watchdog_words "$cmdpath")}
    fi
}
if [[ "${zsh_eval_context[-1]}" == loadautofunc ]]; then
    _rollback_watchdog "$@"
else
    compdef _rollback_watchdog rollback-watchdog
fi
"""


def script(shell: str, parser: argparse.ArgumentParser) -> str:
    found = tables(parser)
    usage = {
        "bash": f'# eval "$({PROG} completion bash)"   (or save it in /etc/bash_completion.d/)',
        "zsh": f'# {PROG} completion zsh > "${{fpath[1]}}/_{PROG}"   '
        f"(or: source <({PROG} completion zsh) after compinit)",
    }[shell]
    head = "#compdef rollback-watchdog\n" if shell == "zsh" else ""
    body = _BASH_MAIN if shell == "bash" else _ZSH_MAIN
    return (
        f"{head}# {shell} completion for {PROG}, generated from its parser by "
        f"`{PROG} completion {shell}`\n{usage}\n{_functions(found)}{body}"
    )


def cmd_completion(args: argparse.Namespace) -> int:
    # The whole command line's parser: ``build_parser`` sets it as a default on every
    # namespace (importing cli.main here would be a cycle).
    root: argparse.ArgumentParser = args.root_parser
    text = script(args.shell, root)
    if wants_json(args):
        emit({"shell": args.shell, "script": text})
    else:
        print(text, end="")
    return 0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    completion = commands.add_parser(
        "completion", help="print a bash or zsh completion script for rollback-watchdog"
    )
    completion.add_argument("shell", choices=SHELLS)
    add_output(completion)
    completion.set_defaults(func=cmd_completion)
