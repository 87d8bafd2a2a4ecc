"""The selective exposition parser: what it finds, what it skips, how it fails."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from watchdog.errors import ParseError
from watchdog.sources.expfmt import ExpSample, parse_families, spellings

PAGE = """\
# HELP http_requests_total Requests.
# TYPE http_requests_total counter
http_requests_total{method="GET",code="200"} 1027 1395066363000
http_requests_total{method="POST",code="500"} 3 1395066363000

# A comment, then a histogram.
# HELP http_request_duration_seconds Latency.
# TYPE http_request_duration_seconds histogram
http_request_duration_seconds_bucket{le="0.05"} 24054
http_request_duration_seconds_bucket{le="0.1"} 33444
http_request_duration_seconds_bucket{le="+Inf"} 144320
http_request_duration_seconds_sum 53423
http_request_duration_seconds_count 144320
# TYPE other_metric gauge
other_metric{x="this line is never parsed" 12 garbage
error_rate 0.25
"""


def test_finds_only_wanted_families_in_text_order() -> None:
    """Each wanted family gets its samples in order; other families (even malformed
    ones), comments and blank lines are skipped; an absent family maps to []."""
    found = parse_families(PAGE, ["http_request_duration_seconds", "error_rate", "absent"])
    assert [s.name for s in found["http_request_duration_seconds"]] == [
        *["http_request_duration_seconds_bucket"] * 3,
        "http_request_duration_seconds_sum",
        "http_request_duration_seconds_count",
    ]
    assert [s.labels.get("le") for s in found["http_request_duration_seconds"]] == [
        "0.05", "0.1", "+Inf", None, None,
    ]  # fmt: skip
    assert found["error_rate"] == [ExpSample("error_rate", {}, 0.25)]
    assert found["absent"] == []


def test_counter_found_under_either_spelling() -> None:
    """Asking for ``X_total`` or ``X`` finds a counter written either way."""
    text = 'jobs_total{q="a"} 5\njobs{q="b"} 7\n'
    for wanted in ("jobs_total", "jobs"):
        found = parse_families(text, [wanted])[wanted]
        assert [(s.name, s.value) for s in found] == [("jobs_total", 5.0), ("jobs", 7.0)]


def test_timestamps_become_seconds() -> None:
    """A millisecond timestamp is returned in Unix seconds; no timestamp is None."""
    found = parse_families(PAGE, ["http_requests_total"])["http_requests_total"]
    assert found[0] == ExpSample(
        "http_requests_total", {"method": "GET", "code": "200"}, 1027.0, 1395066363.0
    )
    assert parse_families("x 1 -1500\n", ["x"])["x"][0].timestamp == -1.5
    assert parse_families("x 1\n", ["x"])["x"][0].timestamp is None


def test_special_values() -> None:
    """NaN, +Inf, -Inf and exponent notation parse as floats."""
    text = "a NaN\na +Inf\na -Inf\na 1.5e3\na -0\n"
    values = [s.value for s in parse_families(text, ["a"])["a"]]
    assert math.isnan(values[0])
    assert values[1:] == [math.inf, -math.inf, 1500.0, 0.0]


def test_label_escapes_and_braces_in_values() -> None:
    r"""``\\``, ``\"`` and ``\n`` are unescaped; ``{``, ``}``, ``,`` and ``=`` inside a
    quoted value are just characters; other backslash pairs stay as written."""
    text = 'h{path="/u/{id}",q="a=1,b}",esc="back\\\\slash \\"q\\" nl\\n tab\\t"} 1\n'
    (sample,) = parse_families(text, ["h"])["h"]
    assert sample.labels == {
        "path": "/u/{id}",
        "q": "a=1,b}",
        "esc": 'back\\slash "q" nl\n tab\\t',
    }


def test_crlf_blanks_and_odd_spacing() -> None:
    """CRLF line ends, leading blanks, tabs, blanks inside braces, a trailing comma and
    an empty label set are all accepted; the first line can be a wanted sample."""
    text = 'm{a="1"} 1\r\n  m { a = "2" , b="3", } 2\r\n\tm{} 3 \r\nm\t4\t5\r\n'
    found = parse_families(text, ["m"])["m"]
    assert [(s.labels, s.value, s.timestamp) for s in found] == [
        ({"a": "1"}, 1.0, None),
        ({"a": "2", "b": "3"}, 2.0, None),
        ({}, 3.0, None),
        ({}, 4.0, 0.005),
    ]


def test_names_sharing_a_prefix_are_not_confused() -> None:
    """``error_rate`` does not pick up ``error_rate_5m`` or ``error_rate:sum``, and a
    histogram's parts are not taken for a longer family's."""
    text = "error_rate_5m 1\nerror_rate:sum 2\nerror_rate 3\nerror_rate_total_x 4\n"
    assert [s.value for s in parse_families(text, ["error_rate"])["error_rate"]] == [3.0]


def test_spellings() -> None:
    """A ``_total`` name also finds the bare counter; another name finds its parts."""
    assert spellings("a_total") == ("a_total", "a")
    assert spellings("a") == ("a", "a_total", "a_bucket", "a_count", "a_sum")


def test_no_wanted_families_parses_nothing() -> None:
    """An empty wanted set returns an empty result without scanning."""
    assert parse_families("garbage {{{\n", []) == {}


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ('x{a="b} 1', "line 3, column 5: label 'a': unterminated value"),
        ("x 1 2 3", "line 3: unexpected text after the timestamp: '3'"),
        ("x", "line 3: no value after the metric name"),
        ('x{a="1"}', "line 3: no value after the metric name"),
        ('x{a="1",a="2"} 3', "line 3: duplicate label name"),
        ("x abc", "line 3: value 'abc' is not a number"),
        ("x 1_000", "line 3: value '1_000' is not a number"),
        ("x 1 1.5", "line 3: timestamp '1.5' is not an integer"),
        ("x 1 99999999999999999999", "line 3: timestamp 99999999999999999999 is outside"),
        ("x=4", "line 3, column 2: metric name followed by '='"),
        ("x{a b} 1", "line 3, column 5: expected '=' after label name 'a'"),
        ('x{a="1" b="2"} 1', "line 3, column 9: expected ',' or '}' between labels"),
        ('x{="1"} 1', "line 3, column 3: expected a label name, found '='"),
        ('x{a="1",,} 1', "line 3, column 9: expected a label name, found ','"),
        ("x{a=1} 1", "line 3, column 5: label 'a': value must be in double quotes"),
        ('x{a="1"', "line 3, column 8: label set not closed with '}'"),
        ('  x {a="1\\"} 2', "line 3, column 8: label 'a': unterminated value"),
    ],
)
def test_malformed_wanted_line_names_line_and_problem(line: str, problem: str) -> None:
    """A malformed line of a wanted family raises ParseError saying where and what."""
    with pytest.raises(ParseError) as raised:
        parse_families(f"# HELP x X.\nok 1\n{line}\nx 2\n", ["x"])
    assert str(raised.value).startswith(problem)
    assert str(raised.value).endswith(f": {line!r}")


def test_error_on_first_line_and_crlf() -> None:
    """Line numbers count from 1, and the quoted line has no CR."""
    with pytest.raises(ParseError, match=r"^line 1: value 'zz' is not a number: 'x zz'$"):
        parse_families("x zz\r\nx 1\r\n", ["x"])


def test_long_bad_line_is_shortened() -> None:
    """The line quoted in the error is cut to about 120 characters."""
    with pytest.raises(ParseError) as raised:
        parse_families("x " + "9" * 500 + " y z\n", ["x"])
    assert len(str(raised.value)) < 220


# --- properties ------------------------------------------------------------------------

FRAGMENTS = st.sampled_from(
    ["x", "x_total", "x_bucket", "y", "{", "}", '"', "=", ",", " ", "\t", "\n", "\r", "\\",
     "1", "-2", "1e3", "NaN", "+Inf", "le", "#", "a", "_", ":", "9" * 25, "é", "\x00"]
)  # fmt: skip


@settings(max_examples=400)
@given(st.one_of(st.text(), st.lists(FRAGMENTS, max_size=60).map("".join)))
def test_any_input_parses_or_raises_parse_error(text: str) -> None:
    """Arbitrary text either parses or raises ParseError; nothing else escapes."""
    try:
        found = parse_families(text, ["x", "y_total"])
    except ParseError:
        return
    assert set(found) == {"x", "y_total"}
    for sample in found["x"]:
        assert sample.name in spellings("x")


NAMES = st.sampled_from(["x", "x_total", "x_bucket", "x_count", "x_sum", "y", "y_total", "z"])
LABEL_NAMES = st.sampled_from(["a", "le", "code", "_b", "Path9"])
LABEL_VALUES = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12)
VALUES = st.one_of(
    st.floats(allow_nan=False).map(repr),
    st.integers(-(10**12), 10**12).map(str),
    st.sampled_from(["NaN", "+Inf", "-Inf"]),
)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


@st.composite
def exposition_lines(draw: st.DrawFn) -> str:
    name = draw(NAMES)
    labels = draw(st.dictionaries(LABEL_NAMES, LABEL_VALUES, max_size=3))
    body = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
    braces = bool(labels) or draw(st.booleans())
    line = name + ("{" + body + "}" if braces else "")
    line += " " + draw(VALUES)
    if draw(st.booleans()):
        line += " " + str(draw(st.integers(-(10**15), 10**15)))
    return line


def _key(name: str, labels: dict[str, str], value: float, ts: object) -> tuple[object, ...]:
    return (name, sorted(labels.items()), "NaN" if math.isnan(value) else float(value), ts)


@settings(max_examples=300)
@given(st.lists(st.one_of(exposition_lines(), st.just("# HELP z some help")), max_size=25))
def test_agrees_with_prometheus_client_on_valid_text(lines: list[str]) -> None:
    """On valid text, the wanted families' samples equal prometheus_client's."""
    text = "\n".join(lines) + "\n"
    wanted = ["x", "y_total"]
    ours = parse_families(text, wanted)
    theirs = [s for family in text_string_to_metric_families(text) for s in family.samples]
    for family in wanted:
        names = spellings(family)
        assert [_key(*s) for s in ours[family]] == [
            _key(s.name, s.labels, s.value, s.timestamp) for s in theirs if s.name in names
        ]
