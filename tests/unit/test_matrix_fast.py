"""Recordings read straight into arrays are read exactly as before: the same floats
(bit for bit, NaN and ±Inf included) and, for a bad file, the same error."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from watchdog.backtest.matrix_fast import parse_decimals, read_matrix_arrays
from watchdog.backtest.recordings import read_matrix_file
from watchdog.errors import BacktestError

TEXTS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.floats(min_value=-1e6, max_value=1e6).map(lambda v: f"{v:.{abs(hash(v)) % 9}f}"),
    st.integers(min_value=-(10**18), max_value=10**18).map(str),
    st.sampled_from(["NaN", "+Inf", "-Inf", "-0", "1e-5", ".5", "1.", "-.25", "0.000001"]),
)


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or (
        a == b and math.copysign(1, a) == math.copysign(1, b)
    )


@settings(max_examples=300, deadline=None)
@given(st.lists(TEXTS, min_size=1, max_size=40))
def test_decimals_are_pythons_floats(texts: list[str]) -> None:
    parsed = parse_decimals(",".join(texts).encode())
    assert parsed is not None
    assert all(_same(float(p), float(t)) for p, t in zip(parsed, texts, strict=True))


@settings(max_examples=100, deadline=None)
@given(
    st.lists(TEXTS, min_size=0, max_size=30),
    st.sampled_from([(",", ":"), (", ", ": ")]),
)
def test_a_file_reads_as_the_careful_reader_reads_it(
    tmp_path_factory: pytest.TempPathFactory, values: list[str], separators: tuple[str, str]
) -> None:
    path = tmp_path_factory.mktemp("m") / "s.json"
    rows = [[1_790_000_000 + 15 * k, v] for k, v in enumerate(values)]
    result = [{"metric": {"job": "values"}, "values": rows}] if rows else []
    body = {"status": "success", "data": {"resultType": "matrix", "result": result}}
    path.write_text(json.dumps(body, separators=separators))
    times, got = read_matrix_arrays(path)
    expected = read_matrix_file(path)
    assert times.tolist() == [p[0] for p in expected]
    assert all(_same(a, b[1]) for a, b in zip(got.tolist(), expected, strict=True))


@pytest.mark.parametrize(
    "body",
    [
        '{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},'
        '"values":[[1,"1"],[1,"2"]]}]}}',  # duplicate timestamp
        '{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},'
        '"values":[[2,"1"],[1,"2"]]}]}}',  # not sorted
        '{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},'
        '"values":[[1,"x"]]}]}}',  # not a number
        '{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},'
        '"values":[[1,2]]}]}}',  # an unquoted value
        '{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},'
        '"values":[[1,"1 2"]]}]}}',  # a space inside a value (was read as 12)
        '{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},'
        '"values":[[1 5,"2"]]}]}}',  # a space inside a timestamp (was read as 15)
        '{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},'
        '"values":[[1,"2"]5,[3,"4"]]}]}}',  # a number between two points
        '{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},'
        '"values":[[1,5"2"]]}]}}',  # a number before a value's quote
        '{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},'
        '"values":[[01,"2"]]}]}}',  # a leading zero: not JSON
        '{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},'
        '"values":[[1,"\t2"]]}]}}',  # a raw tab inside a string: not JSON
        '{"status":"success","data":{"resultType":"vector","result":[]}}',
        '{"status":"error","error":"boom"}',
        "{nope",
    ],
)
def test_bad_files_fail_as_before(tmp_path: Path, body: str) -> None:
    path = tmp_path / "s.json"
    path.write_text(body)
    with pytest.raises(BacktestError) as careful:
        read_matrix_file(path)
    with pytest.raises(BacktestError) as fast:
        read_matrix_arrays(path)
    assert str(fast.value) == str(careful.value)


def test_a_month_of_points_reads_to_arrays(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    rows = [[1_790_000_000 + 15 * k, repr(round(0.001 * (k % 50), 3))] for k in range(20_000)]
    body = {"status": "success", "data": {"resultType": "matrix", "result": [{"values": rows}]}}
    path.write_text(json.dumps(body))
    times, values = read_matrix_arrays(path)
    assert times.dtype == np.float64
    assert values[49] == 0.049
    assert times[-1] == 1_790_000_000 + 15 * 19_999
