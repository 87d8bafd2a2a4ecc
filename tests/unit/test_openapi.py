"""The OpenAPI 3.1 document at ``/api/v1/openapi.json`` (issue 14), held to the real
router both ways and to real answers.

The rule (``CONTROL_PREFIXES``): every route under ``/api/`` and ``/-/`` (the control
API) is in the document with its methods, and every documented path is a real route.
Pages outside those prefixes (the web console's ``/``, ``/incidents/...``, static files)
need no entry. The status, silences and reload answers, and the silence request body,
validate against the document's own schemas (JSON Schema 2020-12, as OpenAPI 3.1 says)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator

from tests.helpers import T0
from watchdog.api.app import build_app
from watchdog.api.openapi import CONTROL_PREFIXES
from watchdog.clock import FakeClock
from watchdog.http.server import Router, serve
from watchdog.incidents.silence import Silences
from watchdog.metrics import Metrics
from watchdog.model import Sample
from watchdog.rules.load import load_rules
from watchdog.run.daemon import Watchdog
from watchdog.sources.base import SourceDeps
from watchdog.store.sqlite import SQLiteStore

RULES = """
version: 1
sources:
  prom: {type: prometheus, url: "http://127.0.0.1:9"}
signals:
  error_rate: {source: prom, query: "e", unit: ratio}
  p95: {source: prom, query: "p", unit: seconds}
rules:
  - {name: error-rate, signal: error_rate, above: 5%, for: 1m, severity: low}
  - {name: slow, signal: p95, above: 2s, for: 1m, severity: low}
"""

METHODS = {"get", "put", "post", "delete", "patch", "head", "options"}


@dataclass
class Api:
    http: httpx.AsyncClient
    router: Router
    doc: dict[str, Any]
    rules: Path
    answered: list[tuple[str, str, int]]  # (method, documented path, status)

    def validate(self, schema: str, instance: Any) -> None:
        """``instance`` against ``#/components/schemas/<schema>`` of the served document."""
        root = {"$ref": f"#/components/schemas/{schema}", "components": self.doc["components"]}
        errors = sorted(Draft202012Validator(root).iter_errors(instance), key=str)
        assert not errors, [f"{list(e.absolute_path)}: {e.message}" for e in errors[:5]]

    async def call(self, method: str, path: str, route: str, **kwargs: Any) -> httpx.Response:
        response = await self.http.request(method, path, **kwargs)
        self.answered.append((method.lower(), route, response.status_code))
        return response


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    clock = FakeClock(T0)
    store = SQLiteStore(tmp_path / "state.db")
    await store.open()
    async with httpx.AsyncClient() as client:
        deps = SourceDeps(http=client, clock=clock)
        watchdog = Watchdog(load_rules([rules]), deps, Metrics(), rules_paths=[str(rules)])
        # A breach held for its for: → a decision; p95 is never sampled → its value is
        # NaN inside, null on the wire.
        for step in range(6):
            watchdog.observe("error_rate", Sample.of(T0 + 15 * step, 0.2), "prom")
        assert watchdog.decisions
        router = build_app(watchdog, None, silences=Silences(store, clock))
        async with serve(router) as srv, httpx.AsyncClient(base_url=srv.url) as http:
            doc = (await http.get("/api/v1/openapi.json")).json()
            yield Api(http, router, doc, rules, [])
    await store.close()


def _prefixed(path: str) -> bool:
    return path.startswith(CONTROL_PREFIXES)


def test_the_document_is_openapi_3_1_with_valid_schemas(api: Api) -> None:
    doc = api.doc
    assert doc["openapi"] == "3.1.0"
    assert doc["info"]["title"]
    assert doc["info"]["version"]
    for schema in doc["components"]["schemas"].values():
        Draft202012Validator.check_schema(schema)  # raises, naming the fault
    ids = [op["operationId"] for item in doc["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids)), "operationId must be unique"
    # Strict JSON: no NaN or Infinity anywhere in it.
    json.dumps(doc, allow_nan=False)


def test_every_control_route_is_documented_and_every_documented_path_is_real(
    api: Api,
) -> None:
    routed = {(method.lower(), path) for method, path in api.router.declared}
    documented = {
        (method, path)
        for path, item in api.doc["paths"].items()
        for method in item
        if method in METHODS
    }
    control = {route for route in routed if _prefixed(route[1])}
    missing = control - documented
    assert not missing, f"add these control routes to watchdog/api/openapi.py: {missing}"
    stale = documented - routed
    assert not stale, f"documented but not routed: {stale}"
    for path, item in api.doc["paths"].items():
        if _prefixed(path):
            for operation in item.values():
                assert {"bearer": []} in operation["security"], path
                assert {"401", "403"} <= set(operation["responses"]), path
    posts = [item["post"] for path, item in api.doc["paths"].items() if "post" in item]
    assert all("415" in operation["responses"] for operation in posts)


async def test_real_answers_match_the_documented_schemas(api: Api) -> None:
    status = await api.call("GET", "/api/v1/status", "/api/v1/status")
    api.validate("Status", status.json())
    assert status.json()["rules"][1]["value"] is None  # NaN inside is null on the wire
    assert status.json()["decisions"], "a decision is there to be validated"

    body = {"matchers": ["rule=error-rate"], "duration": "1h", "created_by": "a", "comment": "c"}
    api.validate("SilenceIn", body)
    created = await api.call("POST", "/api/v1/silences", "/api/v1/silences", json=body)
    assert created.status_code == 201
    api.validate("Silence", created.json())
    structured = {**body, "matchers": [{"name": "rule", "op": "=~", "value": "error-.*"}]}
    api.validate("SilenceIn", structured)
    assert (
        await api.call("POST", "/api/v1/silences", "/api/v1/silences", json=structured)
    ).is_success
    # What the handler refuses, the schema refuses too.
    bad = {**body, "duration": True}
    refused = await api.call("POST", "/api/v1/silences", "/api/v1/silences", json=bad)
    assert refused.status_code == 400
    api.validate("Error", refused.json())
    with pytest.raises(AssertionError):
        api.validate("SilenceIn", {**body, "surprise": 1})

    listed = await api.call("GET", "/api/v1/silences?expired=true", "/api/v1/silences")
    api.validate("SilenceList", listed.json())
    api.validate("Status", (await api.http.get("/api/v1/status")).json())  # with silences
    sid = created.json()["id"]
    route = "/api/v1/silences/{silence_id}"
    expired = await api.call("DELETE", f"/api/v1/silences/{sid}", route)
    api.validate("Silence", expired.json())
    assert expired.json()["state"] == "expired"
    unknown = await api.call("DELETE", "/api/v1/silences/nope", route)
    assert unknown.status_code == 404

    not_json = await api.call("POST", "/-/reload", "/-/reload")
    assert not_json.status_code == 415
    api.validate("Error", not_json.json())
    as_json = {"content-type": "application/json"}
    reloaded = await api.call("POST", "/-/reload", "/-/reload", headers=as_json)
    api.validate("Reloaded", reloaded.json())
    api.rules.write_text("version: 1\nrules: [{name: broken}]\n")
    failed = await api.call("POST", "/-/reload", "/-/reload", headers=as_json)
    assert failed.status_code == 422
    api.validate("ReloadFailed", failed.json())

    for method, path, code in api.answered:  # every status met is a documented one
        assert str(code) in api.doc["paths"][path][method]["responses"], (method, path, code)
