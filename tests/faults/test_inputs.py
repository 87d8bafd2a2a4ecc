"""Fault matrix, bad input: property-based tests (hypothesis) of everything that
reads outside input. The rules loader raises only ``RuleError``, the exposition
parser only ``ParseError``, the Prometheus answer reader only ``SourceError``, and
the control API answers every request with a status below 500 (a 4xx carrying a
JSON message when it refuses). Nothing else, whatever the input."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.factories import MINIMAL_RULES
from watchdog.api.app import build_app
from watchdog.clock import FakeClock
from watchdog.errors import ParseError, RuleError, SourceError
from watchdog.http.server import Router
from watchdog.rules.load import load_rules
from watchdog.run.runtime import Runtime
from watchdog.settings import load_settings
from watchdog.sources.expfmt import parse_families
from watchdog.sources.prometheus import parse_instant

PROPERTY = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

# --- the rules loader ------------------------------------------------------------------

VALID_RULES = {
    "version": 1,
    "defaults": {"interval": "15s", "blind_after": "5m"},
    "sources": {"prom": {"type": "prometheus", "url": "http://127.0.0.1:9090"}},
    "signals": {"error_rate": {"source": "prom", "query": "x", "unit": "ratio"}},
    "targets": {"worker": {"type": "cloudflare-worker", "script": "api"}},
    "rules": [
        {
            "name": "error-rate",
            "signal": "error_rate",
            "above": "5%",
            "for": "5m",
            "severity": "critical",
            "rollback": ["worker"],
        }
    ],
}

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(["5m", "5%", "500ms", "critical", "prometheus", "worker", "1e999", "-1s"]),
)
structures = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.text(max_size=12), children, max_size=5),
    ),
    max_leaves=25,
)


def mutations(base: Any) -> st.SearchStrategy[Any]:
    """The valid file with one value somewhere replaced by anything."""

    def paths(node: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
        yield prefix
        if isinstance(node, dict):
            for key, value in node.items():
                yield from paths(value, (*prefix, key))
        elif isinstance(node, list):
            for index, value in enumerate(node):
                yield from paths(value, (*prefix, index))

    def replace(node: Any, path: tuple[Any, ...], value: Any) -> Any:
        if not path:
            return value
        copy = json.loads(json.dumps(node))
        parent = copy
        for part in path[:-1]:
            parent = parent[part]
        parent[path[-1]] = value
        return copy

    return st.builds(replace, st.just(base), st.sampled_from(list(paths(base))), structures)


@pytest.fixture(scope="module")
def rules_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("rules")


def load_text(directory: Path, text: str) -> None:
    path = directory / "rules.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    problems = rule_problems(path)
    assert all(problem.startswith(str(path)) for problem in problems), problems


def rule_problems(path: Path) -> list[str]:
    """The loader's problems ([] when the file loads): only ``RuleError`` is caught."""
    try:
        load_rules([path])
    except RuleError as exc:
        return exc.problems or ["(a RuleError without problems)"]
    return []


YAML_NASTIES = [
    "a: !!python/object:os.system {}",
    "version: !custom 1",
    "version: !!bool maybe",
    "version: !!float nope",
    "version: !!int 0x",
    "version: !!timestamp 2020-13-45",
    "version: !!binary '%%%'",
    "a: &a [*a]",
    "version: 1\nrules: &r [*r]",
    "[" * 5000 + "]" * 5000,
    "{a: " * 3000 + "1" + "}" * 3000,
    "x: &a [1,2,3,4,5,6,7,8,9]\ny: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
    "z: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nw: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
    "v: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nu: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n"
    "t: [*f,*f,*f,*f,*f,*f,*f,*f,*f]",
    "version: 1\nsources: {p: {type: scrape, url: x, max_bytes: 1e999}}",
    "version: 1\nsignals: {s: {source: p, error_status: '(' }}",
    "\x00",
    "\ufeffversion: 1",
    "? [a, b]\n: c",
]


@PROPERTY
@given(text=st.text(max_size=300))
@example(text="version: 1\nrules: [{name: x}]")
def test_rules_loader_arbitrary_text(rules_dir: Path, text: str) -> None:
    """Any text at all: a ``RuleError`` naming the file, or a rule set."""
    load_text(rules_dir, text)


@pytest.mark.parametrize("text", YAML_NASTIES)
def test_rules_loader_hostile_yaml(rules_dir: Path, text: str) -> None:
    """Tags, recursive aliases, deep nesting, alias bombs, NUL, odd keys: each is a
    ``RuleError`` that names the file, never another exception or a hang."""
    load_text(rules_dir, text)


@PROPERTY
@given(data=structures)
def test_rules_loader_arbitrary_structures(rules_dir: Path, data: Any) -> None:
    """Any YAML document shape: ``RuleError`` or a rule set."""
    load_text(rules_dir, yaml.safe_dump(data, allow_unicode=True))


@PROPERTY
@given(data=mutations(VALID_RULES))
def test_rules_loader_near_valid_files(rules_dir: Path, data: Any) -> None:
    """A valid file with any one value replaced by anything: ``RuleError`` or a rule set."""
    load_text(rules_dir, yaml.safe_dump(data, allow_unicode=True))


# --- the exposition parser ---------------------------------------------------------------

FAMILIES = ["http_requests_total", "http_request_duration_seconds", "up"]
pieces = st.sampled_from(
    [
        *FAMILIES,
        "http_request_duration_seconds_bucket",
        "http_requests",
        "{",
        "}",
        '"',
        "\\",
        "=",
        ",",
        " ",
        "\t",
        "\n",
        "\r",
        "# TYPE ",
        "# HELP ",
        'le="+Inf"',
        'code="5\\"00"',
        "NaN",
        "+Inf",
        "-Inf",
        "1e999",
        "1_000",
        "0x10",
        "12345678901234567890123",
        "-9223372036854775809",
        "1.5",
        "\x00",
        "é",
    ]
)
exposition = st.one_of(
    st.text(max_size=300),
    st.lists(pieces, max_size=60).map("".join),
)


@PROPERTY
@given(text=exposition, wanted=st.lists(st.sampled_from(FAMILIES), max_size=3))
def test_exposition_parser_only_raises_parse_error(text: str, wanted: list[str]) -> None:
    """Any page: the wanted families' samples, or a ``ParseError`` saying which line."""
    try:
        result = parse_families(text, wanted)
    except ParseError as exc:
        error = str(exc)
    else:
        error = ""
    if error:
        assert error.startswith("line ")
        return
    assert set(result) == set(wanted)
    for samples in result.values():
        for sample in samples:
            assert isinstance(sample.value, float)


# --- a Prometheus answer -----------------------------------------------------------------

json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(10**400), max_value=10**400),
        st.floats(),
        st.text(max_size=10),
        st.sampled_from(["NaN", "+Inf", "1", "success", "error", "vector", "scalar"]),
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.dictionaries(
            st.sampled_from(["status", "data", "resultType", "result", "metric", "value", "x"]),
            children,
            max_size=4,
        ),
    ),
    max_leaves=15,
)


@PROPERTY
@given(body=json_values)
@example(body={"status": "success", "data": {"resultType": "scalar", "result": [10**400, "1"]}})
def test_prometheus_answer_only_raises_source_error(body: Any) -> None:
    """Any JSON where an instant query's answer should be: a sample, or ``SourceError``."""
    try:
        sample = parse_instant(body, None, 1_790_000_000.0)
    except SourceError:
        return
    assert sample.kind.value in ("value", "no_data", "error")


# --- the control API ---------------------------------------------------------------------

TOKEN = "api-token-fault-matrix"
SILENCE_RULES = MINIMAL_RULES


@dataclass
class ControlApi:
    runner: asyncio.Runner
    client: httpx.AsyncClient
    runtime: Runtime
    app: Router

    def raw(
        self,
        method: str,
        path: str,
        query: bytes = b"",
        headers: list[tuple[bytes, bytes]] | None = None,
        body: bytes = b"",
    ) -> tuple[int, Any]:
        """Call the ASGI app with a scope no HTTP client would build (any path, any
        header bytes), as a server hands it over; the status and the JSON body."""
        given = headers if headers is not None else [(b"authorization", f"Bearer {TOKEN}".encode())]
        scope = {
            "type": "http",
            "method": method,
            "path": path,
            "raw_path": path.encode("utf-8", errors="surrogatepass"),
            "query_string": query,
            "headers": given,
            "client": ("127.0.0.1", 40000),
        }
        incoming = [{"type": "http.request", "body": body, "more_body": False}]
        sent: list[MutableMapping[str, Any]] = []

        async def receive() -> MutableMapping[str, Any]:
            return incoming.pop(0) if incoming else {"type": "http.disconnect"}

        async def send(message: MutableMapping[str, Any]) -> None:
            sent.append(message)

        self.runner.run(self.app(scope, receive, send))
        status = int(sent[0]["status"])
        return status, json.loads(b"".join(m.get("body", b"") for m in sent[1:]) or b"null")

    def request(
        self, method: str, path: str, content: bytes = b"", headers: dict[str, str] | None = None
    ) -> httpx.Response:
        given = {"authorization": f"Bearer {TOKEN}", **(headers or {})}
        coro = self.client.request(method, path, content=content, headers=given)
        return self.runner.run(coro)


@pytest.fixture(scope="module")
def control_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlApi]:
    """The real app (auth, router, silences, SQLite store) in-process, one event loop
    for all examples (a sync fixture: hypothesis drives the examples)."""
    tmp = tmp_path_factory.mktemp("api")
    (tmp / "rules.yaml").write_text(SILENCE_RULES)
    env = {
        "WATCHDOG_RULES": str(tmp / "rules.yaml"),
        "WATCHDOG_STATE": str(tmp / "state.db"),
        "WATCHDOG_SECRETS_DIR": str(tmp / "no-secrets"),
        "WATCHDOG_API_TOKEN": TOKEN,
    }
    with asyncio.Runner() as runner:
        http = httpx.AsyncClient()
        runtime = runner.run(Runtime.build(load_settings(env), FakeClock(), http))
        app: Router = build_app(
            runtime.watchdog, runtime.settings.api_token, silences=runtime.silences
        )
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
        client = httpx.AsyncClient(transport=transport, base_url="http://watchdog")
        try:
            yield ControlApi(runner, client, runtime, app)
        finally:
            runner.run(client.aclose())
            runner.run(runtime.stop())
            runner.run(http.aclose())


def refused_with_message(answer: httpx.Response) -> None:
    assert answer.status_code < 500, (answer.status_code, answer.text)
    if answer.status_code >= 400:
        error = answer.json()["error"]
        assert isinstance(error, str)
        assert error


GOOD = {"matchers": ["rule=error-rate"], "duration": "2h", "created_by": "a", "comment": "b"}
silence_fields = st.fixed_dictionaries(
    {},
    optional={
        "matchers": st.one_of(
            json_values,
            st.lists(
                st.one_of(
                    st.text(max_size=20),
                    st.dictionaries(st.sampled_from(["name", "op", "value"]), json_values),
                ),
                max_size=3,
            ),
        ),
        "duration": st.one_of(json_values, st.sampled_from(["2h", "0s", "1e999d", "-5m"])),
        "starts_at": st.one_of(json_values, st.floats(), st.sampled_from([1e300, -1e300])),
        "ends_at": st.one_of(json_values, st.floats(), st.sampled_from([1e300, 2e9])),
        "created_by": st.one_of(json_values, st.text(max_size=30)),
        "comment": st.one_of(json_values, st.text(max_size=30)),
        "extra": json_values,
    },
)


def dumps(body: Any) -> bytes:
    """JSON as Python writes it (NaN and Infinity included: clients do send them)."""
    return json.dumps(body, allow_nan=True).encode("utf-8", errors="surrogatepass")


@PROPERTY
@given(body=st.one_of(silence_fields, json_values))
@example(body={**GOOD, "starts_at": float("nan")})
@example(body={**GOOD, "starts_at": 1e300})
@example(body={**GOOD, "duration": None, "ends_at": float("inf")})
@example(body={**GOOD, "created_by": "\ud800"})
@example(body={**GOOD, "duration": "99999999999999999999w"})
def test_silence_api_arbitrary_json(control_api: ControlApi, body: Any) -> None:
    """Any JSON body to POST /api/v1/silences: created (201), or refused with a 4xx
    and a message; never a 5xx."""
    answer = control_api.request("POST", "/api/v1/silences", dumps(body))
    refused_with_message(answer)
    if answer.status_code == 201:
        created = answer.json()
        assert math.isfinite(created["starts_at"])
        listed = control_api.request("GET", "/api/v1/silences")
        assert listed.status_code == 200


@PROPERTY
@given(body=st.binary(max_size=200))
def test_silence_api_arbitrary_bytes(control_api: ControlApi, body: bytes) -> None:
    """Any bytes as the body: a 4xx with a message (or 201 if they happen to be a
    valid silence); never a 5xx."""
    refused_with_message(control_api.request("POST", "/api/v1/silences", body))


def refused(status: int, body: Any) -> None:
    assert status < 500, (status, body)
    if status >= 400:
        assert isinstance(body, dict)
        assert isinstance(body["error"], str)
        assert body["error"]


@PROPERTY
@given(
    method=st.sampled_from(["GET", "POST", "DELETE", "PUT", "PATCH", "HEAD", "BREW"]),
    tail=st.text(max_size=40),
    query=st.binary(max_size=40),
    body=st.binary(max_size=40),
)
@example(method="DELETE", tail="%", query=b"expired=true", body=b"")
@example(method="GET", tail="", query=b"expired=\xff\xfe", body=b"")
def test_control_api_arbitrary_paths(
    control_api: ControlApi, method: str, tail: str, query: bytes, body: bytes
) -> None:
    """Any method, path and query string under /api/v1/silences, /api/ and /-/ (as a
    server hands them over, however odd): never a 5xx."""
    for prefix in ("/api/v1/silences/", "/api/v1/silences", "/api/", "/-/"):
        refused(*control_api.raw(method, prefix + tail, query, body=body))


@PROPERTY
@given(
    authorization=st.binary(max_size=60),
    other=st.lists(st.tuples(st.binary(max_size=20), st.binary(max_size=60)), max_size=4),
)
@example(authorization=b"Bearer \xff", other=[])
@example(authorization=b"bearer  " + TOKEN.encode(), other=[])
def test_control_api_arbitrary_headers(
    control_api: ControlApi, authorization: bytes, other: list[tuple[bytes, bytes]]
) -> None:
    """Any Authorization header bytes other than the token: 401 with a message; any
    other header bytes: never a 5xx."""
    headers = [*other, (b"authorization", authorization)]
    status, body = control_api.raw("POST", "/api/v1/silences", headers=headers, body=dumps(GOOD))
    refused(status, body)
    if authorization.strip() != f"Bearer {TOKEN}".encode():
        assert status == 401, body
        assert "bearer token" in body["error"]


def test_control_api_refusals(control_api: ControlApi) -> None:
    """The guard and the body checks: no token and a wrong token are 401, a body over
    64 KiB is 413, a body that is not JSON is 400; each says why."""
    no_token = control_api.runner.run(
        control_api.client.post("/api/v1/silences", content=dumps(GOOD))
    )
    assert no_token.status_code == 401
    assert no_token.json() == {"error": "missing bearer token"}
    wrong = control_api.request(
        "POST", "/api/v1/silences", dumps(GOOD), {"authorization": "Bearer nope"}
    )
    assert wrong.status_code == 401
    assert wrong.json() == {"error": "wrong bearer token"}
    huge = control_api.request("POST", "/api/v1/silences", b"{" + b" " * 70_000 + b"}")
    assert huge.status_code == 413
    assert "over 65536 bytes" in huge.json()["error"]
    bad = control_api.request("POST", "/api/v1/silences", b"{nope")
    assert bad.status_code == 400
    assert "not valid JSON" in bad.json()["error"]
