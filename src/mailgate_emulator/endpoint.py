"""What every emulated token endpoint does around the provider's logic.

Read the form and the client's credentials, apply an injected fault, run the provider's pure token
logic under the state lock, render its answer or error, and log the request (never the token).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from mailgate_emulator import tokens
from mailgate_emulator.credentials import ClientCredentials, read_client_credentials
from mailgate_emulator.errors import EmulatedError, MicrosoftError
from mailgate_emulator.model import Endpoint, Provider, RequestRecord
from mailgate_emulator.responses import error_response, fault_response, json_response
from mailgate_emulator.state import EmulatorState
from mailgate_emulator.urls import emulator_base

Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class TokenRequest:
    """One token-endpoint request, as the provider logic sees it."""

    provider: Provider
    path: str
    base_url: str
    form: Mapping[str, str]
    credentials: ClientCredentials
    tenant: str | None = None  # Microsoft: the `{tenant}` path segment

    def param(self, name: str) -> str | None:
        """A form parameter; an empty value counts as missing."""
        return self.form.get(name) or None


TokenLogic = Callable[[EmulatorState, TokenRequest], dict[str, Any]]


async def read_form(request: Request, *, with_query: bool = False) -> dict[str, str]:
    """The request's form fields (first value of each), and with `with_query` the query's.

    Token endpoints read the body only: a client that puts `scope` in the URL instead gets the
    provider's missing-parameter error, as it would for real.
    """
    fields: dict[str, str] = {}
    form = await request.form()
    for key, value in form.multi_items():
        if isinstance(value, str):
            fields.setdefault(key, value)
    if with_query:
        for key, value in request.query_params.multi_items():
            fields.setdefault(key, value)
    return fields


class RequestLog:
    """One request's entry in the request log, written once its outcome is known.

    It remembers the state's generation at arrival: if the state was reset while the request
    waited (an injected delay outliving its test), the request touches nothing and is not logged.
    """

    def __init__(
        self,
        state: EmulatorState,
        request: Request,
        provider: Provider | None,
        endpoint: Endpoint,
        **fields: Any,
    ) -> None:
        self.state = state
        self.provider = provider
        self.path = request.url.path
        self._generation = state.generation
        self._endpoint: Endpoint = endpoint
        self._fields = fields

    @property
    def stale(self) -> bool:
        """Whether the state was reset since the request arrived."""
        return self.state.generation != self._generation

    def __call__(self, status: int, **outcome: Any) -> None:
        """Log the outcome (unless the request is stale)."""
        entry = RequestRecord(
            at=self.state.now(),
            provider=self.provider,
            endpoint=self._endpoint,
            path=self.path,
            status=status,
            **{**self._fields, **outcome},
        )
        self.state.record(entry, generation=self._generation)


async def apply_fault(log: RequestLog, sleep: Sleep, *, token_endpoint: bool) -> Response | None:
    """Delay and/or fail this request if a fault matches (and log it); None to answer normally."""
    fault = log.state.take_fault(log.provider, log.path, token_endpoint=token_endpoint)
    if fault is None:
        return None
    if fault.delay:
        await sleep(fault.delay)
    if log.stale:
        return Response("The emulator was reset while this request waited.", 503)
    if fault.status is None:
        return None
    log(fault.status, error="fault", fault=True)
    return fault_response(log.provider, fault, log.state.now())


async def serve_token_request(
    state: EmulatorState,
    request: Request,
    provider: Provider,
    logic: TokenLogic,
    sleep: Sleep,
    *,
    tenant: str | None = None,
) -> Response:
    """Answer a token request with `logic`, applying faults and logging the outcome."""
    form = await read_form(request)
    credentials = read_client_credentials(request.headers.get("authorization"), form)
    refresh_token = form.get("refresh_token")
    log = RequestLog(
        state,
        request,
        provider,
        "token",
        tenant=tenant,
        grant_type=form.get("grant_type"),
        client_id=credentials.client_id,
        scope=form.get("scope"),
        refresh_token_id=tokens.token_id(refresh_token) if refresh_token else None,
        auth_method=credentials.method,
    )
    faulted = await apply_fault(log, sleep, token_endpoint=True)
    if faulted is not None:
        return faulted
    token_request = TokenRequest(
        provider=provider,
        path=request.url.path,
        base_url=emulator_base(request),
        form=form,
        credentials=credentials,
        tenant=tenant,
    )
    try:
        with state.lock:
            body = logic(state, token_request)
    except EmulatedError as err:
        code = err.code if isinstance(err, MicrosoftError) else None
        log(err.status, error=err.error, error_code=code)
        return error_response(err, state.now(), request.headers.get("client-request-id"))
    log(200)
    return json_response(body)
