"""The OpenAPI 3.1 document of the control API, served at ``/api/v1/openapi.json``.

What it must describe: every route under ``/api/`` and ``/-/`` (the control API, behind
the bearer token or the loopback guard), each with its methods;
tests/unit/test_openapi.py holds the router to it both ways. The probes and
``/metrics`` are described as well; the web console's pages are not API and are left
out. The silence request schema is the one the handler validates with (``SilenceIn``),
so the two cannot drift apart."""

from __future__ import annotations

from typing import Any

from watchdog import __version__
from watchdog.api import ramps as ramps_api
from watchdog.api.openapi_push import push_paths
from watchdog.api.silences import SilenceIn
from watchdog.core.decision import DecisionKind
from watchdog.core.evaluator import State

# The prefixes of the control API: a route under them is in the document (or the test fails).
CONTROL_PREFIXES = ("/api/", "/-/")

_REF = "#/components/schemas/{model}"
JSONObject = dict[str, Any]


def _ref(name: str) -> JSONObject:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(kind: str) -> JSONObject:
    return {"type": [kind, "null"]}


def _object(
    required: dict[str, JSONObject],
    optional: dict[str, JSONObject] | None = None,
    *,
    extra: bool = False,
) -> JSONObject:
    return {
        "type": "object",
        "required": sorted(required),
        "properties": {**required, **(optional or {})},
        "additionalProperties": extra,
    }


STR: JSONObject = {"type": "string"}
NUM: JSONObject = {"type": "number"}
INT: JSONObject = {"type": "integer"}
BOOL: JSONObject = {"type": "boolean"}
STRINGS: JSONObject = {"type": "array", "items": STR}


def _rule_schema() -> JSONObject:
    return _object(
        {
            "rule": STR,
            "severity": STR,
            "signal": STR,
            "state": {"enum": [state.value for state in State]},
            # null while blind: inside the process it is NaN, which JSON has not.
            "value": _nullable("number"),
            "value_text": STR,
            "comparison": {"enum": ["above", "below"]},
            "threshold": NUM,
            "threshold_text": STR,
            "for": STR,
            "active_since": _nullable("string"),
            "blind_reason": _nullable("string"),
            "targets": STRINGS,
            "dry_run": BOOL,
        },
        {"evidence": {"type": "object"}, "evidence_text": STR},
    )


def _decision_schema() -> JSONObject:
    return _object(
        {
            "kind": {"enum": [kind.value for kind in DecisionKind]},
            "rule": STR,
            "severity": STR,
            "signal": STR,
            "targets": STRINGS,
            "observed": _nullable("number"),
            "observed_text": STR,
            "threshold": NUM,
            "threshold_text": STR,
            "comparison": {"enum": ["above", "below"]},
            "decided_at": NUM,
            "decided_at_iso": STR,
            "why": STR,
            "dry_run": BOOL,
        },
        extra=True,  # the evidence behind a counted rule's verdict, by rule kind
    )


def _status_schema() -> JSONObject:
    return _object(
        {
            "version": STR,
            "ready": BOOL,
            "ready_reason": STR,
            "rules_files": STRINGS,
            "last_reload_error": _nullable("string"),
            "rules": {"type": "array", "items": _ref("RuleStatus")},
            "decisions": {"type": "array", "items": _ref("Decision")},
            "dry_run": BOOL,
            "dry_run_rules": STRINGS,
            "silenced": BOOL,
            "silences_active": INT,
        },
        {
            "silences": {"type": "array", "items": _ref("Silence")},
            "leadership": {"type": "object", "required": ["leader"]},
            "incidents": {"type": "array", "items": _ref("OpenIncident")},
        },
        extra=True,  # a runtime may add what it knows (StatusExtra)
    )


def _schemas() -> dict[str, JSONObject]:
    silence_in = SilenceIn.model_json_schema(ref_template=_REF)
    defs = silence_in.pop("$defs", {})
    matcher = _object({"name": STR, "op": {"enum": ["=", "!=", "=~", "!~"]}, "value": STR})
    silence = _object(
        {
            "id": STR,
            "matchers": {"type": "array", "items": _ref("Matcher")},
            "starts_at": NUM,
            "ends_at": _nullable("number"),  # null: never (a flag file's silence)
            "ends_at_iso": STR,
            "created_by": STR,
            "comment": STR,
            "origin": {"enum": ["api", "signal", "file", "flag"]},
            "state": {"enum": ["active", "pending", "expired"]},
        }
    )
    return {
        "Status": _status_schema(),
        "RuleStatus": _rule_schema(),
        "Decision": _decision_schema(),
        "OpenIncident": _object(
            {
                "id": STR,
                "rule": STR,
                "severity": STR,
                "phase": STR,
                "targets": STRINGS,
                "opened_at": NUM,
            },
            extra=True,
        ),
        "Matcher": matcher,
        "Silence": silence,
        "SilenceList": _object({"silences": {"type": "array", "items": _ref("Silence")}}),
        "SilenceIn": silence_in,
        **defs,
        "Reloaded": _object({"status": {"const": "reloaded"}, "rules": INT}),
        "ReloadFailed": _object({"status": {"const": "failed"}, "error": _nullable("string")}),
        "Error": _object({"error": STR}, extra=True),
        **ramps_api.schemas(_object, _REF),
    }


def _json(schema: str, description: str) -> JSONObject:
    return {"description": description, "content": {"application/json": {"schema": _ref(schema)}}}


def _text(description: str) -> JSONObject:
    return {"description": description, "content": {"text/plain": {"schema": STR}}}


_REFUSED = {
    "401": _json("Error", "missing or wrong bearer token (WATCHDOG_API_TOKEN is set)"),
    "403": _json("Error", "no token configured and not loopback, or a cross-site request"),
}


_NOT_JSON = {
    "415": _json(
        "Error",
        "without a token, a POST must say Content-Type: application/json (a web page "
        "cannot send that cross-site without a CORS preflight)",
    )
}


def _control(operation: JSONObject, *, post: bool = False) -> JSONObject:
    """An operation of the control API: the token, and the refusals it can meet."""
    refusals = {**_REFUSED, **(_NOT_JSON if post else {})}
    return {
        **operation,
        "security": [{"bearer": []}],
        "responses": {**operation["responses"], **refusals},
    }


def _silence_paths() -> dict[str, JSONObject]:
    expired = {
        "name": "expired",
        "in": "query",
        "required": False,
        "schema": {"enum": ["true", "false"], "default": "false"},
        "description": "include expired silences",
    }
    silence_id = {"name": "silence_id", "in": "path", "required": True, "schema": STR}
    return {
        "/api/v1/silences": {
            "get": _control(
                {
                    "operationId": "listSilences",
                    "summary": "silences (active and pending; expired ones on request)",
                    "parameters": [expired],
                    "responses": {"200": _json("SilenceList", "the silences")},
                }
            ),
            "post": _control(
                {
                    "operationId": "createSilence",
                    "summary": "add a silence (a matcher required unless all is true)",
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref("SilenceIn")}},
                    },
                    "responses": {
                        "201": _json("Silence", "the silence, saved"),
                        "400": _json("Error", "a bad body or matcher, named where it is wrong"),
                        "503": _json("Error", "the store failed: the silence is not saved"),
                    },
                },
                post=True,
            ),
        },
        "/api/v1/silences/{silence_id}": {
            "delete": _control(
                {
                    "operationId": "expireSilence",
                    "summary": "expire a silence now",
                    "parameters": [silence_id],
                    "responses": {
                        "200": _json("Silence", "the silence, expired"),
                        "404": _json("Error", "no such silence"),
                        "503": _json("Error", "the store failed: the silence is not expired"),
                    },
                }
            )
        },
    }


def _other_paths() -> dict[str, JSONObject]:
    return {
        "/api/v1/status": {
            "get": _control(
                {
                    "operationId": "status",
                    "summary": "rules against thresholds, states, modes, silences, decisions",
                    "responses": {"200": _json("Status", "the watchdog's status")},
                }
            )
        },
        "/-/reload": {
            "post": _control(
                {
                    "operationId": "reload",
                    "summary": "reload the rules files (as SIGHUP does)",
                    "responses": {
                        "200": _json("Reloaded", "the new rules are live"),
                        "422": _json("ReloadFailed", "the files are invalid; the old rules stay"),
                    },
                },
                post=True,
            )
        },
        "/api/v1/openapi.json": {
            "get": _control(
                {
                    "operationId": "openapi",
                    "summary": "this document",
                    "responses": {
                        "200": {
                            "description": "OpenAPI 3.1",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        }
                    },
                }
            )
        },
        "/healthz": {"get": {"operationId": "healthz", "responses": {"200": _text("alive")}}},
        "/readyz": {
            "get": {
                "operationId": "readyz",
                "responses": {"200": _text("ready, and why"), "503": _text("not ready, and why")},
            }
        },
        "/metrics": {
            "get": {
                "operationId": "metrics",
                "responses": {"200": _text("Prometheus text exposition format")},
            }
        },
    }


def document() -> JSONObject:
    """The whole OpenAPI 3.1 document (strict JSON: no NaN anywhere)."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "rollback-watchdog control API",
            "version": __version__,
            "description": "Bearer token (WATCHDOG_API_TOKEN) on every route under /api/ "
            "and /-/; without a token the control API answers only on loopback.",
        },
        "paths": {
            **_other_paths(),
            **_silence_paths(),
            **push_paths(_control, _json),
            **ramps_api.paths(_control, _json, _REF),
        },
        "components": {
            "schemas": _schemas(),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
