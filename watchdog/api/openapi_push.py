"""The OpenAPI operations of the push routes: what other systems send the watchdog
(Alertmanager's webhook, a Tail Worker's events). ``openapi`` hands in its helpers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

JSONObject = dict[str, Any]
Part = Callable[..., JSONObject]  # openapi._control: an operation behind the token
Response = Callable[[str, str], JSONObject]  # openapi._json: a JSON response
STR: JSONObject = {"type": "string"}


def push_paths(control: Part, error: Response) -> dict[str, JSONObject]:
    return {**_alertmanager(control, error), **_tail(control, error)}


def _alertmanager(control: Part, error: Response) -> dict[str, JSONObject]:
    accepted = {
        "type": "object",
        "required": ["status", "source", "alerts", "firing"],
        "properties": {
            "status": {"const": "accepted"},
            "source": STR,
            "alerts": {"type": "integer"},
            "firing": {"type": "integer"},
        },
    }
    return {
        "/api/v1/alertmanager/{source}": {
            "post": control(
                {
                    "operationId": "alertmanagerWebhook",
                    "summary": "an Alertmanager webhook notification (version 4) for the "
                    "`alertmanager` source of that name",
                    "parameters": [
                        {"name": "source", "in": "path", "required": True, "schema": STR}
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    },
                    "responses": {
                        "200": {
                            "description": "accepted: how many alerts, how many firing",
                            "content": {"application/json": {"schema": accepted}},
                        },
                        "400": error("Error", "not a version 4 notification, the field named"),
                        "404": error("Error", "no alertmanager source of that name"),
                    },
                },
                post=True,
            )
        }
    }


def _tail(control: Part, error: Response) -> dict[str, JSONObject]:
    accepted = {
        "type": "object",
        "required": ["status", "source", "events", "counted", "ignored"],
        "properties": {
            "status": {"const": "accepted"},
            "source": STR,
            "events": {"type": "integer"},
            "counted": {"type": "integer"},
            "ignored": {"type": "object", "additionalProperties": {"type": "integer"}},
        },
    }
    return {
        "/api/v1/tail/{source}": {
            "post": control(
                {
                    "operationId": "tailEvents",
                    "summary": "a Tail Worker's events (the TraceItem array tail() receives) "
                    "for the `cloudflare-tail` source of that name",
                    "parameters": [
                        {"name": "source", "in": "path", "required": True, "schema": STR}
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": {"type": "array"}}},
                    },
                    "responses": {
                        "200": {
                            "description": "accepted: events counted, ignored ones by reason",
                            "content": {"application/json": {"schema": accepted}},
                        },
                        "400": error("Error", "not an array of TraceItems, the place named"),
                        "404": error("Error", "no cloudflare-tail source of that name"),
                    },
                },
                post=True,
            )
        }
    }
