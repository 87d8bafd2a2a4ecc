"""``/api/v1/ramps``: start a ramp, list ramps, and ``hold``, ``promote`` or ``abort``
one (the daemon runs them: ``watchdog/run/ramp.py``); the routes' OpenAPI entries."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from watchdog.clock import Clock
from watchdog.errors import StoreError
from watchdog.http.server import HTTPError, Request, Response, Router
from watchdog.run.ramp import Ramps, ramp_json
from watchdog.run.ramp_steps import RampError
from watchdog.units import parse_duration

JSONObject = dict[str, Any]
VERBS = ("hold", "promote", "abort")
PHASES = ["ramping", "held", "done", "aborted", "rolled-back", "superseded", "reverted", "failed"]


class RampIn(BaseModel):
    """A new ramp: ``version`` moved through ``steps`` (``10%,50%,100%`` or a list of
    numbers), each step held ``soak`` (``10m``, or seconds) while the canary rules pass."""

    model_config = ConfigDict(extra="forbid", strict=True)
    target: str | None = Field(default=None, max_length=200)
    version: str = Field(min_length=1, max_length=200)
    steps: Annotated[str, Field(max_length=200)] | list[float | int] = "10%,50%,100%"
    soak: str | float | int = "10m"
    created_by: str = Field(min_length=1, max_length=200)


class RampVerbIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    by: str = Field(min_length=1, max_length=200)


def _body(request: Request, model: type[BaseModel]) -> Any:
    try:
        return model.model_validate(request.json())
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise HTTPError(400, f"{where}: {first['msg']}") from None
    except (OverflowError, ValueError) as exc:
        raise HTTPError(400, f"body: {str(exc)[:200]}") from None


def install(router: Router, ramps: Ramps | None, clock: Clock) -> None:
    """The routes; without a daemon's ramps (``ramps`` None) they answer 503."""

    def owner() -> Ramps:
        if ramps is None:
            raise HTTPError(503, "ramps run in the daemon (rollback-watchdog run)")
        return ramps

    @router.route("GET", "/api/v1/ramps")
    async def list_ramps(_: Request, __: dict[str, str]) -> Response:
        try:
            found = await owner().store.ramps()
        except StoreError as exc:
            raise HTTPError(503, f"the ramps could not be read: {exc}") from None
        live = owner().active
        now = clock.now()
        return Response.json({"ramps": [ramp_json(live.get(r.id, r), now) for r in found]})

    @router.route("POST", "/api/v1/ramps")
    async def start(request: Request, _: dict[str, str]) -> Response:
        body: RampIn = _body(request, RampIn)
        try:
            soak = parse_duration(body.soak)
        except ValueError as exc:
            raise HTTPError(400, f"soak: {exc}") from None
        return await _answer(
            lambda: owner().start(body.target, body.version, body.steps, soak, body.created_by),
            clock,
            201,
        )

    def verb_route(verb: str) -> None:
        @router.route("POST", f"/api/v1/ramps/{{ramp_id}}/{verb}")
        async def act(request: Request, params: dict[str, str]) -> Response:
            body: RampVerbIn = _body(request, RampVerbIn)
            run = getattr(owner(), verb)
            return await _answer(lambda: run(params["ramp_id"], body.by), clock)

    for verb in VERBS:
        verb_route(verb)


async def _answer(call: Callable[[], Any], clock: Clock, status: int = 200) -> Response:
    try:
        ramp = await call()
    except RampError as exc:
        raise HTTPError(exc.status, str(exc)) from None
    except StoreError as exc:
        raise HTTPError(503, f"the store failed: {exc}") from None
    return Response.json(ramp_json(ramp, clock.now()), status)


# --- OpenAPI --------------------------------------------------------------------------


def schemas(obj: Callable[..., JSONObject], ref: str) -> dict[str, JSONObject]:
    """The ramp schemas (``obj`` builds a closed object; ``ref`` the $ref template)."""
    num, string = {"type": "number"}, {"type": "string"}
    maybe_num = {"type": ["number", "null"]}
    ramp = obj(
        {
            "id": string,
            "target": string,
            "old": string,
            "new": string,
            "steps": {"type": "array", "items": num},
            "soak_s": num,
            "created_by": string,
            "created_at": num,
            "created_at_iso": string,
            "phase": {"enum": PHASES},
            "active": {"type": "boolean"},
            "step": {"type": "integer"},
            "percentage": num,
            "soaked_s": num,
            "soak_from": maybe_num,
            "soaked": maybe_num,
            "deployment": string,
            "why": string,
            "updated_at": num,
            "updated_at_iso": string,
            # The canary's verdict once it judged the new version a regression ("" before).
            "regressed": string,
        }
    )
    ramp_list = obj({"ramps": {"type": "array", "items": {"$ref": ref.format(model="Ramp")}}})
    return {
        "Ramp": ramp,
        "RampList": ramp_list,
        "RampIn": RampIn.model_json_schema(ref_template=ref),
        "RampVerbIn": RampVerbIn.model_json_schema(ref_template=ref),
    }


def paths(
    control: Callable[..., JSONObject], answer: Callable[[str, str], JSONObject], ref: str
) -> dict[str, JSONObject]:
    """The ramp routes (``control`` adds the token and refusals; ``answer`` a JSON one)."""

    def body(model: str) -> JSONObject:
        schema = {"$ref": ref.format(model=model)}
        return {"required": True, "content": {"application/json": {"schema": schema}}}

    refused = {
        "400": answer("Error", "a bad body, steps or soak, named where it is wrong"),
        "404": answer("Error", "no single active ramp with that id (or prefix)"),
        "409": answer(
            "Error",
            "refused: the ramp has ended, the target is not at 100% of "
            "one version, a ramp is already active, or a regression is seen",
        ),
        "502": answer("Error", "Cloudflare refused the split"),
        "503": answer("Error", "not the leader, no daemon, or the store failed"),
    }
    found: dict[str, JSONObject] = {
        "/api/v1/ramps": {
            "get": control(
                {
                    "operationId": "listRamps",
                    "summary": "every ramp, active and ended",
                    "responses": {"200": answer("RampList", "the ramps"), "503": refused["503"]},
                }
            ),
            "post": control(
                {
                    "operationId": "startRamp",
                    "summary": "start a ramp of a new Worker version (the daemon moves it)",
                    "requestBody": body("RampIn"),
                    "responses": {"201": answer("Ramp", "the ramp, started"), **refused},
                },
                post=True,
            ),
        }
    }
    summaries = {
        "hold": "stop moving the split and stop the soak's count",
        "promote": "the next step now (a held ramp resumes so)",
        "abort": "back to 100% of the old version now; the ramp ends",
    }
    ramp_id = {"name": "ramp_id", "in": "path", "required": True, "schema": {"type": "string"}}
    for verb, summary in summaries.items():
        found[f"/api/v1/ramps/{{ramp_id}}/{verb}"] = {
            "post": control(
                {
                    "operationId": f"{verb}Ramp",
                    "summary": summary,
                    "parameters": [ramp_id],
                    "requestBody": body("RampVerbIn"),
                    "responses": {"200": answer("Ramp", f"the ramp, after {verb}"), **refused},
                },
                post=True,
            )
        }
    return found
