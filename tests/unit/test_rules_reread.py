"""A reload of an edited rules file parses only the edited rules (``rules.reread``): it
must give exactly what a full parse of the new text gives (the models, every key's
line, the merged rule set and its problems), and fall back to a full parse wherever a
stretch read alone might read differently."""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import NoReturn

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from watchdog.errors import RuleError
from watchdog.rules import reread
from watchdog.rules.load import load_rules
from watchdog.rules.merge import merge
from watchdog.rules.parse import parse_tree
from watchdog.rules.ruleset import RuleSet
from watchdog.rules.splice import Last, layout_of, splice

FILE = "rules.yaml"

HEAD = """\
version: 1
sources:
  prom: {type: prometheus, url: "http://127.0.0.1:9"}
signals:
  s0: {source: prom, query: "e0", unit: ratio}
  s1: {source: prom, query: "e1", unit: ratio}
targets:
  api: {type: cloudflare-worker, script: api}
"""


def _rule(name: str, style: int, indent: str) -> str:
    """One rules item in one of several YAML styles (the items' '-' at ``indent``)."""
    inner = indent + "  "
    deep = indent + "    "  # a mapping on the lines below its '-' may sit deeper
    return [
        f"{indent}- {{name: {name}, signal: s0, above: 5%, for: 1m, severity: high}}\n",
        f"{indent}- name: {name}\n{inner}signal: s1\n{inner}below: 2%\n{inner}severity: low\n",
        f"{indent}- name: {name}\n{inner}signal: s0\n{inner}above: 1%\n{inner}severity: high\n"
        f"{inner}description: |\n{inner}  first line\n\n{inner}    more\n",
        f"{indent}- # a comment first\n{deep}name: {name}\n{deep}signal: s0\n"
        f"{deep}above: 3%\n{deep}severity: medium\n",
        f"{indent}- {{name: {name}, signal: s1, above: 4%, severity: critical,\n"
        f'{inner}description: "two\n{inner}  lines"}}\n',
        f"{indent}- &anchor{name} {{name: {name}, signal: s0, above: 6%, severity: low}}\n\n"
        f"{indent}# between rules\n",
        f"{indent}-\n{deep}name: {name}\n{deep}signal: s0\n{deep}above: 7%\n{deep}severity: low\n"
        f"{deep}rollback: [api]\n{deep}description: >-\n{deep}  folded\n{deep}  text\n",
    ][style]


def _file(styles: list[int], indent: str, tail: str, rules_first: bool = False) -> str:
    rules = "".join(_rule(f"r{i}", style, indent) for i, style in enumerate(styles))
    if rules_first:  # the signals and the rest below the list
        return "version: 1\nrules:\n" + rules + HEAD.removeprefix("version: 1\n") + tail
    return HEAD + "rules:\n" + rules + tail


def _cold(text: str) -> tuple[Last | None, list[str]]:
    parsed, problems, root = parse_tree(text, FILE)
    if parsed is None:
        return None, problems
    return Last(text, parsed, layout_of(text, root, parsed.marks)), []


def _agrees(last: Last, text: str) -> tuple[Last, bool]:
    """Splice ``text`` onto ``last``; what it gives equals a full parse's. The next
    base (the splice, the full parse, or ``last`` when the text is bad) and whether
    the splice stood in."""
    spliced = splice(last, text)
    cold, problems = _cold(text)
    if spliced is None:
        return (cold or last), False
    assert cold is not None, problems  # a splice never accepts what a full parse refuses
    assert spliced.parsed.model == cold.parsed.model
    assert spliced.parsed.marks.all_lines() == cold.parsed.marks.all_lines()
    assert spliced.layout == cold.layout
    assert merge([spliced.parsed]) == merge([cold.parsed])
    return spliced, True


TAILS = ["", "purges: {}\n", "notify: []\n# the end\n", "after_rollback: {purge: []}"]


def test_an_edited_rule_is_spliced_and_agrees() -> None:
    text = _file([0, 1, 2, 3, 4, 5, 6] * 3, "  ", "notify: []\n")
    last, _ = _cold(text)
    assert last is not None
    assert last.layout is not None
    edits = [
        text.replace("name: r9\n", "name: r9\n    min_requests: 5\n"),  # a line added
        text.replace("{name: r7, signal: s0, above: 5%", "{name: r7, signal: s1, above: 9%"),
        text.replace("\n        more\n", "\n", 1),  # a line of a block scalar gone
        text.replace(_rule("r3", 3, "  "), ""),  # a whole rule gone
        text.replace(_rule("r3", 3, "  "), _rule("r3", 3, "  ") + _rule("new", 1, "  ")),
    ]
    for edited in edits:
        assert edited != text
        assert _agrees(last, edited)[1], edited


@pytest.mark.parametrize(
    ("old", "new"),
    [
        # The edit reaches the '-' of the first edited rule: the previous one could read on.
        ("  - {name: r1, signal: s0", "  -{name: r1, signal: s0"),
        ("severity: medium\n", "severity: medium\n---\n"),  # a second document
        ("severity: medium\n", "severity: medium\n...\n"),  # the document ends
        ("name: r7\n", "name: *anchorr6\n"),  # an alias to an anchor outside the stretch
        ("{name: r1, signal: s0", '{name: r1, signal: "s0'),  # a quote left open
        ("signal: s1\n", "signal: s1\r\n"),  # another line break
        ("  - {name: r1", "  - {name: r1, bogus: 1"),  # invalid: the full parse words it
        ("  - name: r2", "  - name: r2\n    above: 1%"),  # a duplicate key
    ],
)
def test_a_stretch_that_may_read_differently_is_parsed_whole(old: str, new: str) -> None:
    text = _file([0, 0, 1, 2, 3, 4, 5, 6], "  ", "notify: []\n")
    last, _ = _cold(text)
    assert last is not None
    assert old in text
    edited = text.replace(old, new, 1)
    assert splice(last, edited) is None
    _agrees(last, edited)


def test_a_line_added_below_a_block_scalar_joins_it() -> None:
    """The stretch starts at the rule above the edit: a line deeper than its block
    scalar belongs to that scalar, alone as in the file."""
    text = _file([0, 0, 1, 2, 3, 4, 5, 6], "  ", "notify: []\n")
    last, _ = _cold(text)
    assert last is not None
    edited = text.replace("  - # a comment first\n", "          more text\n  - # a comment first\n")
    spliced, taken = _agrees(last, edited)
    assert taken
    assert spliced.parsed.model.rules[3].description == "first line\n\n  more\n    more text\n"


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ('query: "e1"', 'query: "e1 * 2"'),  # a signal above the list
        ("  s1: {", "  s2: {source: prom, query: e2}\n  s1: {"),  # one more, lines move
        ("version: 1\n", "---\nversion: 1\n"),
        ("notify: []\n", "notify: []\nguards: {}\n"),  # a key below the list
        ("notify: []\n", "notify: [] # why\n"),
    ],
)
def test_an_edit_around_the_list_keeps_the_rules(old: str, new: str) -> None:
    text = _file([0, 1, 2, 3, 4, 5, 6], "  ", "notify: []\n")
    last, _ = _cold(text)
    assert last is not None
    assert old in text
    spliced, taken = _agrees(last, text.replace(old, new, 1))
    assert taken
    assert spliced.parsed.model.rules is last.parsed.model.rules


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("rules:\n", "rules: []\n"),  # the key's line
        ("notify: []\n", " notify: []\n"),  # the first character of the key below
        ("version: 1\n", "%YAML 1.1\n---\nversion: 1\n"),  # a directive
        ("version: 1\n", "version: 1\nrules: []\n"),  # the key twice
        ("version: 1\n", "{version: 1,\n"),  # the mapping is a flow mapping now
        ("notify: []\n", "notify: []\nbogus: 1\n"),  # invalid: the full parse words it
    ],
)
def test_an_edit_around_the_list_that_may_read_differently_is_parsed_whole(
    old: str, new: str
) -> None:
    text = _file([0, 1, 2, 3, 4, 5, 6], "  ", "notify: []\n")
    last, _ = _cold(text)
    assert last is not None
    edited = text.replace(old, new, 1)
    assert splice(last, edited) is None
    _agrees(last, edited)


def test_an_alias_around_the_list_is_parsed_whole() -> None:
    """An alias added above the list could name an anchor in a rule."""
    text = _file([0, 1, 2], "  ", "notify: []\n")
    last, _ = _cold(text)
    assert last is not None
    edited = text.replace('url: "http', 'url: &u "http').replace("script: api}", "script: *u}")
    assert _cold(edited)[0] is not None
    assert splice(last, edited) is None


def test_an_anchor_used_elsewhere_stops_splicing() -> None:
    text = _file([0, 5, 1], "  ", "notify: []\n").replace(
        "signal: s1\n", "signal: s1\n    x: *anchorr1\n"
    )
    last, problems = _cold(text)
    assert last is None or last.layout is None, problems


def test_lines_below_an_inserted_rule_move(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Problems the merge finds below an inserted rule name their new lines, and the
    reload that finds them parsed the inserted rule alone."""
    path = tmp_path / "rules.yaml"
    text = _file([1, 0, 1], "  ", "notify: [nobody]\n").replace("signal: s1", "signal: nope")
    path.write_text(text)
    with pytest.raises(RuleError) as before:
        load_rules([path])
    unknown = "unknown signal 'nope' (expected one of: s0, s1)"
    nobody = "unknown notifier 'nobody' (expected one of: none defined)"
    assert before.value.problems == [
        f"{path}:11 rules[0].signal: {unknown}",
        f"{path}:16 rules[2].signal: {unknown}",
        f"{path}:19 notify[0]: {nobody}",
    ]
    path.write_text(text.replace("  - {name: r1", _rule("x", 3, "  ") + "  - {name: r1"))

    def whole(text: str, file: str) -> NoReturn:
        raise AssertionError("parsed whole")

    monkeypatch.setattr(reread, "parse_tree", whole)
    with pytest.raises(RuleError) as after:
        load_rules([path])
    assert after.value.problems == [
        f"{path}:11 rules[0].signal: {unknown}",
        f"{path}:21 rules[3].signal: {unknown}",
        f"{path}:24 notify[0]: {nobody}",
    ]


# --- any edit ------------------------------------------------------------------------

SNIPPETS = [
    "",
    "\n",
    " ",
    "  ",
    "x",
    "- ",
    "  - ",
    "#",
    " # c",
    ":",
    ": ",
    "|",
    ">",
    "'",
    '"',
    "{",
    "}",
    "[",
    "]",
    ",",
    "&a ",
    "*a",
    "!!str ",
    "---",
    "...",
    "%",
    "\t",
    "5%",
    "9",
    "name: q",
    "above: 2%",
    "  - {name: n1, signal: s0, above: 2%, severity: high}\n",
    "\n  - {name: n2, signal: s1, below: 1%, severity: low}",
    "\n    description: |\n      a\n       b\n",
    "\n- name: n3\n  signal: s0\n  above: 3%\n  severity: high\n",
    "severity: medium\n",
]


LINES = [
    "",
    "  - {name: n4, signal: s0, above: 2%, severity: high}",
    "- {name: n5, signal: s0, above: 2%, severity: high}",
    "    - {name: n6, signal: s1, below: 9%, severity: low}",
    "  # a comment",
    "    min_requests: 10",
    "  - name: n7",
    "    signal: s0",
    "    above: 50%",
    "    severity: critical",
    "      description: |",
    "        text",
    "        for: 5m",
    "notify: []",
]

Edit = tuple[float, int, str, bool]


@st.composite
def edits(draw: st.DrawFn) -> tuple[str, list[Edit]]:
    indent = draw(st.sampled_from(["", "  ", "    "]))
    styles = draw(st.lists(st.integers(min_value=0, max_value=6), min_size=1, max_size=8))
    text = _file(styles, indent, draw(st.sampled_from(TAILS)), draw(st.booleans()))
    # Characters anywhere, or whole lines cut and added.
    chars = st.tuples(
        st.floats(min_value=0.0, max_value=1.0),
        st.integers(min_value=0, max_value=12),
        st.sampled_from(SNIPPETS),
        st.just(False),
    )
    lines = st.tuples(
        st.floats(min_value=0.0, max_value=1.0),
        st.integers(min_value=0, max_value=2),
        st.lists(st.sampled_from(LINES), max_size=3).map(lambda ls: "".join(f"{x}\n" for x in ls)),
        st.just(True),
    )
    return text, draw(st.lists(st.one_of(chars, lines), min_size=1, max_size=4))


def _edit(text: str, edit: Edit) -> str:
    where, cut, snippet, whole_lines = edit
    at = min(int(where * len(text)), len(text))
    if not whole_lines:
        return text[:at] + snippet + text[at + cut :]
    at = text.rfind("\n", 0, at) + 1
    end = at
    for _ in range(cut):
        end = text.find("\n", end) + 1 or len(text)
    return text[:at] + snippet + text[end:]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(edits())
def test_any_edit_splices_to_what_a_full_parse_gives(case: tuple[str, list[Edit]]) -> None:
    """Random edits, one after another, each spliced onto the last good parse: every
    splice equals a full parse of the same text (or there is no splice)."""
    text, steps = case
    last, problems = _cold(text)
    assert last is not None, problems
    for edit in steps:
        last, taken = _agrees(last, _edit(last.text, edit))
        event("spliced" if taken else "parsed whole")


def test_random_edits_do_splice() -> None:
    """The property above is not vacuous: most single-rule edits take the splice."""
    text = _file([0, 1, 2, 3, 4, 6] * 4, "  ", "")
    last, _ = _cold(text)
    assert last is not None
    taken = 0
    for number in range(24):
        edited = text.replace(f"name: r{number}", f"name: renamed{number}", 1)
        taken += _agrees(last, edited)[1]
    assert taken == 24


def test_a_reload_after_a_bad_edit_splices_onto_the_last_good_parse(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bad edit is parsed whole and worded as a fresh load words it; the next good
    edit is spliced onto the last good parse and loads what a fresh load gives."""
    path, fresh = tmp_path / "rules.yaml", tmp_path / "fresh.yaml"
    text = _file([0, 1, 2, 3], "  ", "notify: []\n")
    path.write_text(text)
    load_rules([path])
    bad = text.replace("name: r2\n", "name: r2\n    above: 2%\n")  # a duplicate key
    path.write_text(bad)
    fresh.write_text(bad)
    with pytest.raises(RuleError) as caught:
        load_rules([path])
    with pytest.raises(RuleError) as cold:
        load_rules([fresh])
    assert caught.value.problems == [p.replace(str(fresh), str(path)) for p in cold.value.problems]
    assert caught.value.problems[0] == f"{path}:18 rules[2].above: duplicate key (first at line 16)"
    good = text.replace("name: r1\n", "name: r1\n    description: edited\n")
    path.write_text(good)
    fresh.write_text(good)
    expected = load_rules([fresh])

    def whole(text: str, file: str) -> NoReturn:
        raise AssertionError("parsed whole")

    monkeypatch.setattr(reread, "parse_tree", whole)
    ruleset = load_rules([path])
    assert ruleset.rules == expected.rules
    assert ruleset.rule("r1").description == "edited"


def _load(path: Path) -> tuple[RuleSet | None, list[str]]:
    try:
        return load_rules([path]), []
    except RuleError as exc:
        return None, exc.problems


def _unplaced(ruleset: RuleSet) -> RuleSet:
    """Without what names the file."""
    return dataclasses.replace(ruleset, files=(), summaries={})


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(edits())
def test_any_edit_reloads_as_a_cold_load(case: tuple[str, list[Edit]]) -> None:
    """Through ``load_rules``: a file reloaded after each edit (spliced when it can be)
    gives the rule set, or the problems, that a first load of the same text gives."""
    text, steps = case
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "live" / "rules.yaml"
        path.parent.mkdir()
        path.write_text(text)
        assert _load(path)[0] is not None
        for number, edit in enumerate(steps):
            text = _edit(text, edit)
            path.write_text(text)
            cold = Path(tmp) / f"cold{number}" / "rules.yaml"  # never read before
            cold.parent.mkdir()
            cold.write_text(text)
            ruleset, problems = _load(path)
            expected, expected_problems = _load(cold)
            assert problems == [p.replace(str(cold), str(path)) for p in expected_problems]
            if expected is not None:
                assert ruleset is not None
                assert [*ruleset.summaries.values()] == [*expected.summaries.values()]
                assert _unplaced(ruleset) == _unplaced(expected)
