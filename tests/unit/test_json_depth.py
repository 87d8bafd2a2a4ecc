"""``json_depth`` (the router's guard before ``json.loads``) against the byte-by-byte
scan it replaced: the same depth on bodies with brackets in strings, escapes, and
unterminated strings (a backslash outside a string, which is not JSON, aside)."""

from __future__ import annotations

import json
import random

import pytest

from watchdog.http.server import MAX_JSON_DEPTH, HTTPError, Request, json_depth


def byte_scan(body: bytes) -> int:
    """The reference: one pass, strings skipped, a backslash escapes the next byte."""
    deepest = depth = 0
    in_string = escaped = False
    for byte in body:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:
                escaped = True
            elif byte == 0x22:
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return deepest


@pytest.mark.parametrize(
    ("body", "depth"),
    [
        (b"", 0),
        (b"1", 0),
        (b"[]", 1),
        (b'[{"a": [1, {"b": []}]}]', 5),
        (b'["[[[[", "{{{"]', 1),  # brackets in strings do not count
        (b'["\\"[[[", 1]', 1),  # an escaped quote does not end the string
        (b'["\\\\", [[]]]', 3),  # an escaped backslash does not escape the quote
        (b'["unterminated [[[', 1),  # the rest is in the string
        (b'["\\', 1),  # a lone backslash at the end
        (b"]]][[", 0),  # not JSON: the scan still answers, the parser refuses it
        (b'{"a":"\xff\xfe[["}', 1),  # bytes that are not UTF-8
        (b'["a\nb[", []]', 2),  # a raw newline inside a string
    ],
)
def test_depth_of_tricky_bodies(body: bytes, depth: int) -> None:
    assert json_depth(body) == depth == byte_scan(body)


def test_depth_matches_the_byte_scan_on_random_bodies() -> None:
    """Any bytes (backslashes only inside strings: outside one it is not JSON, below)."""
    rng = random.Random(7)
    alphabet = b'[]{}" a,:\n\xff'
    for _ in range(3000):
        body = bytes(rng.choice(alphabet) for _ in range(rng.randrange(0, 40)))
        assert json_depth(body) == byte_scan(body), body


def _value(rng: random.Random, depth: int) -> object:
    if depth == 0 or rng.random() < 0.3:
        return "".join(rng.choice('[]{}"\\ab\n') for _ in range(rng.randrange(6)))
    items = [_value(rng, depth - 1) for _ in range(rng.randrange(3))]
    return items if rng.random() < 0.5 else {str(i): v for i, v in enumerate(items)}


def test_depth_matches_the_byte_scan_on_random_json() -> None:
    """Strings full of quotes, backslashes and brackets, escaped as JSON escapes them."""
    rng = random.Random(11)
    for _ in range(1000):
        body = json.dumps(_value(rng, 6)).encode()
        assert json_depth(body) == byte_scan(body), body


def test_a_backslash_outside_a_string_keeps_the_depth_before_it() -> None:
    """Not JSON: the parser stops at the backslash, so the depth before it is what counts."""
    prefix = b"[[[["
    for rest in (b'\\"]]', b"\\[[[[", b'\\\\"[[['):
        assert json_depth(prefix + rest) >= json_depth(prefix) == 4


def test_a_deep_body_is_refused_before_parsing() -> None:
    body = json.dumps([[[[0]]]]).encode()
    assert json_depth(body) == 4
    deep = b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1)
    request = Request("POST", "/", {}, {}, deep, None)
    with pytest.raises(HTTPError, match=f"nested {MAX_JSON_DEPTH + 1} levels deep"):
        request.json()
