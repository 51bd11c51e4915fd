"""The test control API under `/_emulator/`: JSON in, JSON out, one route per state operation.

Invalid JSON answers 422 with pydantic's error list; an unknown client or account 404; a request
the state refuses (e.g. scopes the app is not configured for) 400.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route

from mailgate_emulator.model import PROVIDERS, Provider, RequestRecord
from mailgate_emulator.responses import json_response
from mailgate_emulator.schema import (
    AccountIn,
    AccountRevocation,
    AdminConsentIn,
    AuthorizationCompletion,
    ClientIn,
    ClientUpdate,
    ClockAdvance,
    CodeIn,
    DeviceApproval,
    FaultIn,
    GrantIn,
    LifetimesIn,
    RefreshTokenRevocation,
    ResourceServerIn,
    TenantIn,
)
from mailgate_emulator.state import EmulatorState

PREFIX = "/_emulator"

Model = TypeVar("Model", bound=BaseModel)
Handler = Callable[[Request], Awaitable[Response]]


class _BadInput(Exception):
    def __init__(self, status: int, detail: Any) -> None:
        super().__init__(str(detail))
        self.status = status
        self.detail = detail


async def _body(request: Request, model: type[Model]) -> Model:
    try:
        payload = await request.json() if await request.body() else {}
        return model.model_validate(payload)
    except json.JSONDecodeError as err:
        raise _BadInput(400, f"the body is not JSON: {err}") from err
    except ValidationError as err:
        raise _BadInput(422, json.loads(err.json(include_url=False))) from err


def _guarded(handler: Handler) -> Handler:
    async def guarded(request: Request) -> Response:
        try:
            return await handler(request)
        except _BadInput as err:
            return json_response({"detail": err.detail}, err.status)
        except KeyError as err:
            return json_response({"detail": str(err.args[0] if err.args else err)}, 404)
        except ValueError as err:
            return json_response({"detail": str(err)}, 400)

    return guarded


def _provider(request: Request) -> Provider:
    name = request.path_params["provider"]
    for provider in PROVIDERS:
        if provider == name:
            return provider
    raise KeyError(f"unknown provider {name!r}")


def _criteria(query: dict[str, str]) -> dict[str, object]:
    # Query strings are text; the log's numbers and flags are not.
    criteria: dict[str, object] = dict(query)
    try:
        for name in ("status", "error_code"):
            if name in query:
                criteria[name] = int(query[name])
    except ValueError as err:
        raise _BadInput(400, f"not a number: {err}") from err
    if "fault" in query:
        criteria["fault"] = query["fault"].lower() in ("1", "true", "yes")
    return criteria


def record_view(entry: RequestRecord) -> dict[str, Any]:
    """A request-log entry as JSON."""
    return dataclasses.asdict(entry)


def routes(state: EmulatorState) -> list[BaseRoute]:
    """The control API, mounted at `/_emulator`."""

    async def add_tenant(request: Request) -> Response:
        return json_response((await _body(request, TenantIn)).apply(state), 201)

    async def add_client(request: Request) -> Response:
        return json_response((await _body(request, ClientIn)).apply(state), 201)

    async def update_client(request: Request) -> Response:
        change = await _body(request, ClientUpdate)
        return json_response(
            change.apply(state, _provider(request), request.path_params["client_id"])
        )

    async def add_resource_server(request: Request) -> Response:
        return json_response((await _body(request, ResourceServerIn)).apply(state), 201)

    async def add_grant(request: Request) -> Response:
        return json_response((await _body(request, GrantIn)).apply(state), 201)

    async def add_code(request: Request) -> Response:
        return json_response((await _body(request, CodeIn)).apply(state), 201)

    async def add_account(request: Request) -> Response:
        return json_response((await _body(request, AccountIn)).apply(state), 201)

    async def add_admin_consent(request: Request) -> Response:
        return json_response((await _body(request, AdminConsentIn)).apply(state), 201)

    async def approve_device_code(request: Request) -> Response:
        return json_response((await _body(request, DeviceApproval)).apply(state))

    async def complete_authorization(request: Request) -> Response:
        return json_response((await _body(request, AuthorizationCompletion)).apply(state))

    async def revoke_account(request: Request) -> Response:
        body = await _body(request, AccountRevocation)
        valid_from = state.revoke_account(
            body.provider, body.account, revoke_access_tokens=body.revoke_access_tokens
        )
        return json_response({"tokens_valid_from": valid_from})

    async def revoke_refresh_token(request: Request) -> Response:
        body = await _body(request, RefreshTokenRevocation)
        return json_response({"revoked": state.revoke_refresh_token(body.refresh_token)})

    async def clock(request: Request) -> Response:
        if request.method == "POST":
            state.advance((await _body(request, ClockAdvance)).seconds)
        return json_response({"now": state.now(), "offset": state.clock.offset})

    async def lifetimes(request: Request) -> Response:
        if request.method == "PUT":
            (await _body(request, LifetimesIn)).apply(state)
        return json_response(dataclasses.asdict(state.lifetimes))

    async def faults(request: Request) -> Response:
        if request.method == "POST":
            fault = (await _body(request, FaultIn)).apply(state)
            return json_response(dataclasses.asdict(fault), 201)
        if request.method == "DELETE":
            state.clear_faults()
        with state.lock:
            return json_response({"faults": [dataclasses.asdict(f) for f in state.faults]})

    async def requests(request: Request) -> Response:
        if request.method == "DELETE":
            state.clear_request_log()
            return json_response({"requests": [], "count": 0})
        criteria = _criteria(dict(request.query_params))
        entries = [record_view(entry) for entry in state.requests(**criteria)]
        return json_response({"requests": entries, "count": len(entries)})

    async def reset(request: Request) -> Response:
        state.reset()
        return json_response({"reset": True})

    table: list[tuple[str, Handler, list[str]]] = [
        ("/tenants", add_tenant, ["POST"]),
        ("/clients", add_client, ["POST"]),
        ("/clients/{provider}/{client_id}", update_client, ["PATCH"]),
        ("/resource-servers", add_resource_server, ["POST"]),
        ("/grants", add_grant, ["POST"]),
        ("/codes", add_code, ["POST"]),
        ("/accounts", add_account, ["POST"]),
        ("/admin-consents", add_admin_consent, ["POST"]),
        ("/device-codes/approve", approve_device_code, ["POST"]),
        ("/authorizations/complete", complete_authorization, ["POST"]),
        ("/accounts/revoke", revoke_account, ["POST"]),
        ("/refresh-tokens/revoke", revoke_refresh_token, ["POST"]),
        ("/clock", clock, ["GET"]),
        ("/clock/advance", clock, ["POST"]),
        ("/lifetimes", lifetimes, ["GET", "PUT"]),
        ("/faults", faults, ["GET", "POST", "DELETE"]),
        ("/requests", requests, ["GET", "DELETE"]),
        ("/reset", reset, ["POST"]),
    ]
    return [
        Mount(
            PREFIX,
            routes=[
                Route(path, _guarded(handler), methods=methods) for path, handler, methods in table
            ],
        )
    ]
