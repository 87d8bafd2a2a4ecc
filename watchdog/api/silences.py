"""``/api/v1/silences``: create, list and expire silences over HTTP (amtool's model)."""

from __future__ import annotations

import asyncio
import math
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from watchdog import strict_json
from watchdog.errors import StoreError
from watchdog.http.server import HTTPError, Request, Response, Router
from watchdog.incidents.matchers import (
    Matcher,
    SilenceError,
    check_matchers,
    make_matcher,
    parse_matcher,
)
from watchdog.incidents.silence import Silences
from watchdog.store.base import SilenceRecord
from watchdog.units import iso, parse_duration


class MatcherIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    name: str = Field(max_length=20)
    op: str = Field(default="=", max_length=2)
    value: str = Field(max_length=300)


class SilenceIn(BaseModel):
    """A new silence: ``duration`` (like ``2h``) or ``ends_at`` (unix seconds).
    ``all``: no matchers on purpose (every action); ``force``: keep matchers that meet
    no loaded rule, target or severity. Strict types: ``true`` is not a duration."""

    model_config = ConfigDict(extra="forbid", strict=True)
    matchers: list[Annotated[str, Field(max_length=300)] | MatcherIn] = Field(
        default_factory=list, max_length=20
    )
    duration: str | float | int | None = None
    starts_at: float | int | None = None
    ends_at: float | int | None = None
    created_by: str = Field(min_length=1, max_length=200)
    comment: str = Field(min_length=1, max_length=2000)
    all: bool = False
    force: bool = False

    @field_validator("duration", "starts_at", "ends_at", mode="before")
    @classmethod
    def _not_bool(cls, value: object, info: ValidationInfo) -> object:
        # JSON true is not 1 second: say what was expected instead of a union's errors.
        allowed = (str, int, float) if info.field_name == "duration" else (int, float)
        if value is not None and (isinstance(value, bool) or not isinstance(value, allowed)):
            expected = (
                "a duration like 2h or a number of seconds"
                if info.field_name == "duration"
                else "a number (Unix seconds)"
            )
            raise ValueError(f"expected {expected}, got {strict_json.dumps(value)[:40]}")
        return value

    @field_validator("duration")
    @classmethod
    def _duration(cls, value: str | float | None) -> str | float | None:
        if value is not None:
            parse_duration(value)
        return value


def silence_json(record: SilenceRecord, now: float) -> dict[str, Any]:
    if (record.expired_at is not None and record.expired_at <= now) or record.ends_at <= now:
        state = "expired"
    elif record.starts_at > now:
        state = "pending"
    else:
        state = "active"
    return {
        "id": record.id,
        "matchers": record.matchers,
        "starts_at": record.starts_at,
        "ends_at": None if math.isinf(record.ends_at) else record.ends_at,
        "ends_at_iso": "never" if math.isinf(record.ends_at) else iso(record.ends_at),
        "created_by": record.created_by,
        "comment": record.comment,
        "origin": record.origin,
        "state": state,
    }


def install(router: Router, silences: Silences) -> None:
    @router.route("GET", "/api/v1/silences")
    async def list_silences(request: Request, _: dict[str, str]) -> Response:
        now = silences.clock.now()
        expired = request.arg("expired", "false") == "true"
        records = silences.all() + [s for s in silences.active() if s.origin in ("flag", "file")]
        shown = [silence_json(r, now) for r in records]
        if not expired:
            shown = [s for s in shown if s["state"] != "expired"]
        return Response.json({"silences": shown})

    @router.route("POST", "/api/v1/silences")
    async def create(request: Request, _: dict[str, str]) -> Response:
        try:
            body = SilenceIn.model_validate(request.json())
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "body"
            raise HTTPError(400, f"{where}: {first['msg']}") from None
        except (OverflowError, ValueError) as exc:  # a number too big for a float
            raise HTTPError(400, f"body: {str(exc)[:200]}") from None
        try:
            matchers: list[Matcher] = [
                parse_matcher(m) if isinstance(m, str) else make_matcher(m.name, m.op, m.value)
                for m in body.matchers
            ]
            # Off the loop: judging a pattern against thousands of rule names takes time.
            await asyncio.to_thread(
                check_matchers, matchers, silences.known, everything=body.all, force=body.force
            )
            duration = parse_duration(body.duration) if body.duration is not None else None
            record = await silences.add(
                matchers,
                duration_s=duration,
                ends_at=body.ends_at,
                starts_at=body.starts_at,
                created_by=body.created_by,
                comment=body.comment,
                origin="api",
            )
        except (SilenceError, ValueError, OverflowError) as exc:
            raise HTTPError(400, str(exc)) from None
        except StoreError as exc:  # not the request's fault: say the silence is not saved
            raise HTTPError(503, f"the silence was not saved: {exc}") from None
        return Response.json(silence_json(record, silences.clock.now()), 201)

    @router.route("DELETE", "/api/v1/silences/{silence_id}")
    async def expire(_: Request, params: dict[str, str]) -> Response:
        try:
            record = await silences.expire(params["silence_id"])
        except SilenceError as exc:
            raise HTTPError(404, str(exc)) from None
        except StoreError as exc:
            raise HTTPError(503, f"the silence was not expired: {exc}") from None
        return Response.json(silence_json(record, silences.clock.now()))
