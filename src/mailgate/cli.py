"""The `mailgate` command. Thin: parse arguments, call a service function, print the result.

Standard output carries only the result (with --json, only the JSON); logs and warnings go to
standard error. Exit status: 0 success, 1 the operation failed, 2 bad usage or input.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import sys
from collections.abc import Awaitable, Callable
from datetime import date
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from typer.exceptions import TyperException

from mailgate import __version__
from mailgate.config import load_settings
from mailgate.context import Context, parser_pool
from mailgate.errors import BadInput, MailgateError
from mailgate.logs import configure_logging, redact_text

T = TypeVar("T")

app = typer.Typer(
    help="mailgate: email to issues, with OAuth 2.0 for IMAP, POP3 and SMTP.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
integration_app = typer.Typer(
    help="OAuth 2.0 clients registered at a provider.", no_args_is_help=True
)
credential_app = typer.Typer(help="Authorized accounts and their tokens.", no_args_is_help=True)
keys_app = typer.Typer(help="Encryption keys of stored secrets.", no_args_is_help=True)
mailbox_app = typer.Typer(
    help="Incoming mail servers (IMAP, POP3) read with OAuth 2.0.", no_args_is_help=True
)
app.add_typer(integration_app, name="integration")
app.add_typer(credential_app, name="credential")
project_app = typer.Typer(help="Projects of the built-in tracker.", no_args_is_help=True)
issue_app = typer.Typer(help="Issues of the built-in tracker.", no_args_is_help=True)
quarantine_app = typer.Typer(help="Messages that could not be processed.", no_args_is_help=True)
app.add_typer(mailbox_app, name="mailbox")
app.add_typer(project_app, name="project")
app.add_typer(issue_app, name="issue")
app.add_typer(quarantine_app, name="quarantine")
app.add_typer(keys_app, name="keys")
smtp_app = typer.Typer(help="Outgoing mail servers (SMTP) with OAuth 2.0.", no_args_is_help=True)
outbox_app = typer.Typer(help="Notifications waiting to be sent, and sent.", no_args_is_help=True)
app.add_typer(smtp_app, name="smtp")
app.add_typer(outbox_app, name="outbox")

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON and nothing else.")]


def fail(error: MailgateError) -> None:
    typer.echo(f"mailgate: {redact_text(str(error))}", err=True)
    raise typer.Exit(error.exit_code)


def run(work: Callable[[Context], Awaitable[T]]) -> T:
    """Open the context (migrating on first use), run `work`, close, map errors to exits."""
    configure_logging(os.environ.get("MAILGATE_LOG_LEVEL", "warning"))

    async def main() -> T:
        ctx = Context.open()
        try:
            return await work(ctx)
        finally:
            await ctx.close()

    try:
        return asyncio.run(main())
    except MailgateError as error:
        fail(error)
        raise AssertionError("unreachable") from None


def emit(data: Any, as_json: bool, text: Callable[[], str]) -> None:
    if as_json:
        typer.echo(json.dumps(data, indent=None, sort_keys=False))
    else:
        typer.echo(text())


def warn(messages: list[str]) -> None:
    for message in messages:
        typer.echo(f"warning: {message}", err=True)


def same_options(
    template: Callable[..., None],
) -> Callable[[Callable[[dict[str, Any]], None]], Callable[..., None]]:
    """A `set` command takes every option of its `add`: the signature is written once (on
    `add`); the decorated body receives the given values as a dict."""

    def decorate(body: Callable[[dict[str, Any]], None]) -> Callable[..., None]:
        @functools.wraps(template)
        def command(**values: Any) -> None:
            body(values)

        command.__doc__ = body.__doc__
        command.__name__ = command.__qualname__ = body.__name__
        return command

    return decorate


def key_values(data: dict[str, Any]) -> str:
    width = max(len(k) for k in data)
    lines = []
    for key, value in data.items():
        if isinstance(value, list):
            value = " ".join(str(v) for v in value) if value else "-"
        elif value is None:
            value = "-"
        lines.append(f"{key.ljust(width)}  {value}")
    return "\n".join(lines)


def table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    if not rows:
        return "(none)"
    cells = [[_cell(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(line.rstrip() for line in lines)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "-"
    return str(value)


# -- top-level commands ----------------------------------------------------------------------


@app.callback(invoke_without_command=True)
def main_callback(
    version: Annotated[bool, typer.Option("--version", help="Print the version.")] = False,
) -> None:
    if version:
        typer.echo(__version__)
        raise typer.Exit(0)


@app.command()
def migrate() -> None:
    """Apply database migrations (every command also does this on first use)."""
    from mailgate.store.db import ensure_home
    from mailgate.store.db import migrate as apply

    settings = load_settings()
    try:
        ensure_home(settings)  # private from the start (0700), as every command makes it
        applied = apply(settings.database_url)
    except MailgateError as error:
        fail(error)
    typer.echo("migrations applied" if applied else "database is up to date")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="HTTPS port.")] = 8443,
    demo: Annotated[bool, typer.Option(help="Also serve the provider emulator (demo).")] = False,
) -> None:
    """Web UI, REST API and mail workers in one process, over HTTPS."""
    import uvicorn

    from mailgate.store.db import ensure_home
    from mailgate.web.app import create_app
    from mailgate.web.tls import ensure_dev_certificate

    configure_logging(os.environ.get("MAILGATE_LOG_LEVEL", "info"))
    settings = load_settings()
    try:
        ensure_home(settings)
        # The database first: a broken one stops here, before anything is written beside it.
        ctx = Context.open(settings)
    except MailgateError as error:
        fail(error)
    try:
        settings.require_https_base_url()
    except BadInput as error:
        typer.echo(f"warning: {error}", err=True)  # the web UI works; OAuth sign-ins will not
    try:
        cert, key = ensure_dev_certificate(settings.home)
    except MailgateError as error:
        fail(error)
    except OSError as exc:
        fail(
            BadInput(
                f"The development certificate under {settings.home / 'tls'} cannot be made "
                f"({exc.strerror}): let mailgate write to its data folder."
            )
        )
    typer.echo(
        f"mailgate {__version__} serving https://{host}:{port} (base URL "
        f"{ctx.settings.base_url}); data in {ctx.settings.home}",
        err=True,
    )
    if demo:
        typer.echo(
            "demo: integration 'demo' signs in at the emulator mounted on /demo-idp; run "
            "`mailgate integration authorize demo --login-hint alice@contoso.example` and sign "
            "in with the password 'demo'",
            err=True,
        )
    uvicorn.run(
        create_app(ctx, demo=demo),
        host=host,
        port=port,
        ssl_certfile=str(cert),
        ssl_keyfile=str(key),
        log_level="warning",
        lifespan="on",
    )


@app.command()
def worker(
    name: Annotated[str | None, typer.Option(help="Worker name shown in leases.")] = None,
) -> None:
    """Mail workers only, no web server (run many, on many hosts)."""
    from mailgate.runtime.supervisor import Supervisor

    configure_logging(os.environ.get("MAILGATE_LOG_LEVEL", "info"))

    async def main(ctx: Context) -> None:
        supervisor = Supervisor(ctx)
        if name:
            # The name helps an admin read leases; the suffix keeps two workers given the
            # same name from sharing a lease.
            supervisor.keeper.owner = f"{name[:100]}:{supervisor.keeper.owner}"[:200]
        loop = asyncio.get_running_loop()
        import signal

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, supervisor.stop)
        await supervisor.run()

    run(main)


# -- integrations ------------------------------------------------------------------------------


def _read_secret(secret_file: Path | None, secret_env: str | None) -> str | None:
    if secret_file is not None and secret_env is not None:
        raise BadInput("Give the client secret once: --client-secret-file or --client-secret-env.")
    if secret_file is not None:
        try:
            return secret_file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise BadInput(
                f"The client secret file {secret_file} cannot be read ({reason}): give a "
                "readable text file holding the secret's value."
            ) from None
    if secret_env is not None:
        value = os.environ.get(secret_env)
        if not value:
            raise BadInput(
                f"The environment variable {secret_env} is not set or empty: export the client "
                "secret in it, or use --client-secret-file."
            )
        return value.strip()
    return None


def _parse_date(value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise BadInput(
            f"--client-secret-expires {value!r} is not a date: use YYYY-MM-DD, as shown in "
            "the provider's console."
        ) from None


ProviderOpt = Annotated[
    str | None, typer.Option("--provider", help="microsoft, google or generic.")
]
ClientIdOpt = Annotated[str | None, typer.Option("--client-id", help="Application (client) ID.")]
SecretFileOpt = Annotated[
    Path | None,
    typer.Option("--client-secret-file", help="File holding the client secret's value."),
]
SecretEnvOpt = Annotated[
    str | None,
    typer.Option("--client-secret-env", help="Environment variable holding the client secret."),
]
TenantOpt = Annotated[
    str | None,
    typer.Option(
        "--tenant", help="Microsoft: common, organizations, consumers or a tenant ID/domain."
    ),
]
CloudOpt = Annotated[str | None, typer.Option("--cloud", help="Microsoft: global, usgov or china.")]
AccountTypeOpt = Annotated[
    str | None, typer.Option("--account-type", help="Microsoft: work or personal.")
]
UseOpt = Annotated[
    list[str] | None, typer.Option("--use", help="Microsoft: imap, pop, smtp (repeatable).")
]
AuthorityOpt = Annotated[
    str | None,
    typer.Option(
        "--authority",
        help="Microsoft/Google: base URL of the login host, when not the cloud's default.",
    ),
]
DiscoveryOpt = Annotated[
    str | None,
    typer.Option("--discovery-url", help="Generic: OpenID Connect / RFC 8414 discovery URL."),
]
AuthzOpt = Annotated[str | None, typer.Option("--authorization-endpoint")]
TokenOpt = Annotated[str | None, typer.Option("--token-endpoint")]
DeviceOpt = Annotated[str | None, typer.Option("--device-authorization-endpoint")]
ScopeOpt = Annotated[
    list[str] | None, typer.Option("--scope", help="Scope (repeatable); replaces the preset's.")
]
AppScopeOpt = Annotated[
    list[str] | None, typer.Option("--app-scope", help="Scope for client credentials (repeatable).")
]
TokenAuthOpt = Annotated[
    str | None, typer.Option("--token-auth", help="client_secret_basic or client_secret_post.")
]
ExpiresOpt = Annotated[
    str | None,
    typer.Option("--client-secret-expires", help="YYYY-MM-DD; warned about 14 days ahead."),
]


def _options(values: dict[str, Any]) -> Any:
    """IntegrationOptions from an `integration add|set` command's arguments."""
    from mailgate.oauth.integrations import IntegrationOptions

    renamed = {"use": "uses", "scope": "scopes", "app_scope": "app_scopes"}
    given = {
        renamed.get(k, k): (v or None if k in renamed else v)
        for k, v in values.items()
        if k not in ("name", "as_json", "client_secret_file", "client_secret_env")
    }
    given["client_secret"] = _read_secret(values["client_secret_file"], values["client_secret_env"])
    given["client_secret_expires"] = _parse_date(given["client_secret_expires"])
    return IntegrationOptions(**given)


async def _save_integration(
    ctx: Context, name: str, values: dict[str, Any], *, new: bool
) -> tuple[dict[str, Any], list[str]]:
    from mailgate.oauth.integrations import add_integration, set_integration

    save = add_integration if new else set_integration
    await save(ctx, name, _options(values))
    return await _integration_data(ctx, name)


async def _integration_data(ctx: Context, name: str) -> tuple[dict[str, Any], list[str]]:
    from mailgate.oauth.integrations import (
        integration_view,
        integration_warnings,
        list_integrations,
    )

    for row, count in await list_integrations(ctx):
        if row.name == name:
            now = ctx.clock()
            view = integration_view(row, ctx.settings.redirect_url, now, count)
            return view, integration_warnings(row, now)
    raise AssertionError("integration vanished")


@integration_app.command("add")
def integration_add(
    name: str,
    provider: ProviderOpt = None,
    client_id: ClientIdOpt = None,
    client_secret_file: SecretFileOpt = None,
    client_secret_env: SecretEnvOpt = None,
    tenant: TenantOpt = None,
    cloud: CloudOpt = None,
    account_type: AccountTypeOpt = None,
    use: UseOpt = None,
    authority: AuthorityOpt = None,
    discovery_url: DiscoveryOpt = None,
    authorization_endpoint: AuthzOpt = None,
    token_endpoint: TokenOpt = None,
    device_authorization_endpoint: DeviceOpt = None,
    scope: ScopeOpt = None,
    app_scope: AppScopeOpt = None,
    token_auth: TokenAuthOpt = None,
    client_secret_expires: ExpiresOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Register an OAuth 2.0 client (an app registration at the provider)."""
    values = dict(locals())
    view, warnings = run(lambda ctx: _save_integration(ctx, name, values, new=True))
    warn(warnings)
    emit(
        view,
        as_json,
        lambda: (
            key_values(view)
            + (f"\n\nRegister this redirect URL at the provider:\n  {view['redirect_url']}")
        ),
    )


@integration_app.command("set")
@same_options(integration_add)
def integration_set(values: dict[str, Any]) -> None:
    """Change an integration (e.g. a new client secret); credentials and mailboxes stay."""
    view, warnings = run(lambda ctx: _save_integration(ctx, values["name"], values, new=False))
    warn(warnings)
    emit(view, values["as_json"], lambda: key_values(view))


@integration_app.command("list")
def integration_list(as_json: JsonFlag = False) -> None:
    """List integrations."""
    from mailgate.oauth.integrations import (
        integration_view,
        integration_warnings,
        list_integrations,
    )

    async def work(ctx: Context) -> tuple[list[dict[str, Any]], list[str]]:
        now = ctx.clock()
        rows = await list_integrations(ctx)
        views = [integration_view(r, ctx.settings.redirect_url, now, n) for r, n in rows]
        return views, [w for r, _ in rows for w in integration_warnings(r, now)]

    views, warnings = run(work)
    warn(warnings)
    emit(
        views,
        as_json,
        lambda: table(
            views, ["name", "provider", "client_id", "status", "credentials", "redirect_url"]
        ),
    )


@integration_app.command("show")
def integration_show(name: str, as_json: JsonFlag = False) -> None:
    """Show an integration, with the redirect URL to register at the provider."""
    from mailgate.oauth.integrations import get_integration

    async def work(ctx: Context) -> tuple[dict[str, Any], list[str]]:
        async with ctx.db.session() as session:
            await get_integration(session, name)
        return await _integration_data(ctx, name)

    view, warnings = run(work)
    warn(warnings)
    emit(view, as_json, lambda: key_values(view))


@integration_app.command("delete")
def integration_delete(
    name: str,
    force: Annotated[bool, typer.Option("--force", help="Also delete its credentials.")] = False,
) -> None:
    """Delete an integration."""
    from mailgate.oauth.integrations import delete_integration

    async def work(ctx: Context) -> None:
        await delete_integration(ctx, name, force=force)

    run(work)
    typer.echo(f"deleted integration {name}")


@integration_app.command("test")
def integration_test(name: str, as_json: JsonFlag = False) -> None:
    """Check the endpoints and that the provider accepts the client ID and secret."""
    from mailgate.oauth.check import CheckResult, check_integration

    async def work(ctx: Context) -> CheckResult:
        return await check_integration(ctx, name)

    result = run(work)

    def text() -> str:
        lines = [f"{'ok  ' if s.ok else 'FAIL'}  {s.step}: {s.detail}" for s in result.steps]
        if result.diagnosis:
            lines.append(f"\n{result.diagnosis}")
        return "\n".join(lines)

    emit(result.as_json(), as_json, text)
    raise typer.Exit(0 if result.ok else 1)


@integration_app.command("authorize")
def integration_authorize(
    name: str,
    login_hint: Annotated[
        str | None, typer.Option("--login-hint", help="The account to sign in.")
    ] = None,
    prompt: Annotated[
        str | None, typer.Option("--prompt", help="login, consent, select_account or none.")
    ] = None,
    device: Annotated[
        bool, typer.Option("--device", help="Device flow: enter a code on another device.")
    ] = False,
    client_credentials: Annotated[
        bool, typer.Option("--client-credentials", help="App-only token, no user.")
    ] = False,
    no_wait: Annotated[
        bool, typer.Option("--no-wait", help="Print the sign-in link and exit.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Authorize an account: print a sign-in link (default), show a device code (--device), or
    get an app-only token (--client-credentials)."""
    from mailgate.oauth.credentials import credential_view

    if device and client_credentials:
        raise BadInput("Choose one flow: --device or --client-credentials.")

    def say(text: str) -> None:
        # The link and the code are what the user needs: stdout, unless stdout is JSON.
        typer.echo(text, err=as_json)

    async def work(ctx: Context) -> dict[str, Any] | None:
        ctx.settings.require_https_base_url()
        if client_credentials:
            from mailgate.oauth.flows import authorize_client_credentials

            cred = await authorize_client_credentials(ctx, name)
        elif device:
            from mailgate.oauth.device import poll_for_approval, request_device_code

            integration, code = await request_device_code(ctx, name)
            say(code.message or f"Open {code.verification_uri} and enter the code {code.user_code}")
            typer.echo("Waiting for approval...", err=True)
            cred = await poll_for_approval(ctx, integration, code)
        else:
            from mailgate.oauth.signin import begin, wait_for

            started = await begin(ctx, name, login_hint=login_hint, prompt=prompt)
            if no_wait:
                emit(
                    {
                        "request": started.request_id,
                        "url": started.start_url,
                        "expires_at": started.expires_at.isoformat(),
                    },
                    as_json,
                    lambda: started.start_url,
                )
                return None
            say(
                f"Open this link in a browser and sign in (valid 10 minutes):\n  {started.start_url}"
            )
            typer.echo(
                f"Waiting for the sign-in (mailgate serve must be reachable at "
                f"{ctx.settings.base_url})...",
                err=True,
            )
            cred = await wait_for(ctx, started)
        return credential_view(cred, name)

    view = run(work)
    if view is None:
        return
    emit(
        view,
        as_json,
        lambda: (
            f"Connected as {view['account']} under {name}: credential {view['id']}, "
            f"token valid until {view['expires_at']}"
        ),
    )


# -- credentials ---------------------------------------------------------------------------------


def _credential_id(value: str) -> int:
    return _number(value, "Credential ID", "`mailgate credential list` shows the IDs")


def _number(value: str, what: str, where: str) -> int:
    """An ID the user typed: a positive number, else bad input saying where to find one."""
    try:
        number = int(value)
        if not 1 <= number < 2**31:
            raise ValueError(value)
        return number
    except ValueError:
        raise BadInput(f"{what} {value!r} is not a number: {where}.") from None


@credential_app.command("list")
def credential_list(
    integration: Annotated[
        str | None, typer.Option("--integration", help="Only this integration's.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """List credentials with their status."""
    from mailgate.oauth.credentials import credential_view, list_credentials

    async def work(ctx: Context) -> list[dict[str, Any]]:
        return [credential_view(c, n) for c, n in await list_credentials(ctx, integration)]

    views = run(work)
    emit(
        views,
        as_json,
        lambda: table(
            views, ["id", "integration", "account", "status", "expires_at", "last_error"]
        ),
    )


@credential_app.command("show")
def credential_show(credential_id: str, as_json: JsonFlag = False) -> None:
    """Show a credential and its history."""
    from mailgate.oauth.credentials import credential_view, get_credential

    cid = _credential_id(credential_id)

    async def work(ctx: Context) -> dict[str, Any]:
        cred, integration, events = await get_credential(ctx, cid)
        view = credential_view(cred, integration.name)
        view["history"] = [
            {"at": e.at.isoformat(), "event": e.kind, "detail": e.detail} for e in events
        ]
        return view

    view = run(work)

    def text() -> str:
        head = {k: v for k, v in view.items() if k != "history"}
        lines = [key_values(head), "", "history:"]
        lines += [
            f"  {e['at']}  {e['event']}  {e['detail'] or ''}".rstrip() for e in view["history"]
        ]
        return "\n".join(lines)

    emit(view, as_json, text)


@credential_app.command("refresh")
def credential_refresh(credential_id: str, as_json: JsonFlag = False) -> None:
    """Refresh a credential's access token now."""
    from mailgate.oauth.credentials import credential_view, get_credential
    from mailgate.oauth.tokens import TokenKeeper

    cid = _credential_id(credential_id)

    async def work(ctx: Context) -> dict[str, Any]:
        await get_credential(ctx, cid)
        failure: MailgateError | None = None
        try:
            await TokenKeeper(ctx).refresh(cid)
        except MailgateError as error:
            if isinstance(error, BadInput):
                raise
            failure = error
        cred, integration, _ = await get_credential(ctx, cid)
        view = credential_view(cred, integration.name)
        view["ok"] = failure is None
        if failure is not None:
            view["error"] = str(failure)
        return view

    view = run(work)
    emit(
        view,
        as_json,
        lambda: (
            f"refreshed credential {cid}: token valid until {view['expires_at']}"
            if view["ok"]
            else f"refresh failed: {view['error']}"
        ),
    )
    raise typer.Exit(0 if view["ok"] else 1)


@credential_app.command("revoke")
def credential_revoke(credential_id: str) -> None:
    """Revoke a credential (at the provider when it offers revocation) and forget its tokens."""
    from mailgate.oauth.credentials import revoke_credential

    cid = _credential_id(credential_id)

    async def work(ctx: Context) -> bool:
        return await revoke_credential(ctx, cid)

    remote = run(work)
    typer.echo(
        f"revoked credential {cid}" + (" at the provider" if remote else " (tokens forgotten)")
    )


# -- mailboxes -----------------------------------------------------------------------------------

MbProtocolOpt = Annotated[str | None, typer.Option("--protocol", help="imap or pop3.")]
MbHostOpt = Annotated[str | None, typer.Option("--host", help="The mail server's host name.")]
MbPortOpt = Annotated[
    int | None, typer.Option("--port", help="Default: 993/143 (IMAP), 995/110 (POP3).")
]
MbSecurityOpt = Annotated[
    str | None, typer.Option("--security", help="ssl (default), starttls, or none (loopback only).")
]
MbUserOpt = Annotated[
    str | None, typer.Option("--username", help="The server's login, usually the mailbox address.")
]
MbCredentialOpt = Annotated[
    str | None, typer.Option("--credential", help="Credential ID (OAuth 2.0).")
]
MbPasswordOpt = Annotated[
    Path | None,
    typer.Option(
        "--password-file", help="File holding a password (deprecated for Microsoft and Google)."
    ),
]
MbFolderOpt = Annotated[str | None, typer.Option("--folder", help="IMAP folder (default INBOX).")]
MbCaOpt = Annotated[
    str | None, typer.Option("--ca-file", help="PEM file of a private CA to trust.")
]
MbProjectOpt = Annotated[str | None, typer.Option("--project", help="Project key mail lands in.")]
MbHandlerOpt = Annotated[
    str | None, typer.Option("--handler", help="create-or-comment (default), create or comment.")
]
MbAfterOpt = Annotated[
    str | None, typer.Option("--after", help="seen (default), delete or move:FOLDER.")
]
MbPollOpt = Annotated[
    int | None, typer.Option("--poll", help="Poll interval in seconds (default 60).")
]
MbIdleOpt = Annotated[
    bool | None, typer.Option("--idle/--no-idle", help="Use IMAP IDLE when offered (default on).")
]
MbBacklogOpt = Annotated[
    str | None, typer.Option("--backlog", help="Mail already there: unseen (default), all or none.")
]
MbSaslOpt = Annotated[
    str | None, typer.Option("--sasl", help="auto (default), OAUTHBEARER or XOAUTH2.")
]
MbBulkOpt = Annotated[
    str | None,
    typer.Option(
        "--bulk",
        help="Automated mail (auto-replies, bounces, lists): ignore (default: left on the "
        "server with the post-action), accept (handled like a person's), delete, or "
        "forward:ADDRESS.",
    ),
]
MbNonParticipantsOpt = Annotated[
    str | None,
    typer.Option(
        "--non-participants",
        help="Mail about an issue from someone who is not its reporter or a watcher: "
        "new-issue (default), hold (for an agent: `quarantine retry ID --as-comment`) or comment.",
    ),
]
MbParticipantsOpt = Annotated[
    bool | None,
    typer.Option(
        "--comments-from-participants-only/--comments-from-anyone",
        help="Same as --non-participants new-issue / comment.",
    ),
]
MbCcOpt = Annotated[
    bool | None,
    typer.Option(
        "--cc-watchers/--no-cc-watchers", help="Cc'd addresses become watchers (default on)."
    ),
]
MbMaxCcOpt = Annotated[
    int | None,
    typer.Option(
        "--max-cc-watchers",
        help="At most this many Cc'd addresses of one message become watchers (default 10; "
        "0: none); the issue names the others.",
    ),
]
MbOtherKeysOpt = Annotated[
    bool | None,
    typer.Option(
        "--keys-of-other-projects/--own-project-keys-only",
        help="An issue key of another project in the subject comments there (default: only "
        "the mailbox's own project's keys count).",
    ),
]
MbCommentRateOpt = Annotated[
    int | None,
    typer.Option(
        "--max-comments-per-issue-hour",
        help="More comments from one sender on one issue within an hour are held for an agent "
        "(default 5; 0: off).",
    ),
]
MbCatchOpt = Annotated[
    str | None, typer.Option("--catch-address", help="Only mail addressed to this address.")
]
MbCustomersOpt = Annotated[
    bool | None,
    typer.Option(
        "--create-customers/--no-create-customers",
        help="Unknown senders become customers (default on); else the project's default reporter.",
    ),
]
MbWholeOpt = Annotated[
    bool | None,
    typer.Option(
        "--whole-body/--reply-only",
        help="Comments keep the quoted history (default: the reply only).",
    ),
]
MbSplitOpt = Annotated[
    str | None, typer.Option("--split-regex", help="Cut comments at the first match.")
]
MbDmarcOpt = Annotated[
    bool | None,
    typer.Option(
        "--quarantine-dmarc-fail/--accept-dmarc-fail",
        help="Quarantine mail whose DMARC check failed.",
    ),
]
MbFloodOpt = Annotated[
    int | None,
    typer.Option(
        "--max-per-sender-hour", help="Quarantine floods from one sender (default 30; 0: off)."
    ),
]
MbMaxOpt = Annotated[
    int | None,
    typer.Option("--max-message-bytes", help="Larger messages are quarantined (default 25 MB)."),
]
MbAttachmentOpt = Annotated[
    int | None,
    typer.Option(
        "--max-attachment-bytes",
        help="A larger attachment is not kept; the issue says so (default 10 MB).",
    ),
]
MbAttachmentsOpt = Annotated[
    int | None,
    typer.Option(
        "--max-attachments-bytes",
        help="Attachments of one message kept up to this total (default 25 MB).",
    ),
]


def _read_password(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        return path.read_text(encoding="utf-8").rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise BadInput(
            f"The password file {path} cannot be read ({reason}): give a readable text file."
        ) from None


def _mailbox_options(values: dict[str, Any]) -> Any:
    from mailgate.mail.mailboxes import MailboxOptions

    credential = values["credential"]
    return MailboxOptions(
        protocol=values["protocol"],
        host=values["host"],
        port=values["port"],
        security=values["security"],
        username=values["username"],
        credential_id=_credential_id(credential) if credential is not None else None,
        password=_read_password(values["password_file"]),
        folder=values["folder"],
        ca_file=values["ca_file"],
        project=values["project"],
        handler=values["handler"],
        after=values["after"],
        poll_seconds=values["poll"],
        idle=values["idle"],
        backlog=values["backlog"],
        sasl_mechanism=values["sasl"],
        max_message_bytes=values["max_message_bytes"],
        route={name: values[name] for name in ROUTE_FLAGS if values[name] is not None},
    )


ROUTE_FLAGS = (
    "bulk",
    "non_participants",
    "comments_from_participants_only",
    "cc_watchers",
    "max_cc_watchers",
    "keys_of_other_projects",
    "max_comments_per_issue_hour",
    "catch_address",
    "create_customers",
    "whole_body",
    "split_regex",
    "quarantine_dmarc_fail",
    "max_per_sender_hour",
    "max_attachment_bytes",
    "max_attachments_bytes",
)


Save = Callable[..., Awaitable[tuple[dict[str, Any], list[str]]]]


def _save_and_show(save: Save, values: dict[str, Any], *, new: bool) -> None:
    """`add` and `set` of a server: save, print the warnings, show what is stored."""
    view, warnings = run(lambda ctx: save(ctx, values["name"], values, new=new))
    warn(warnings)
    emit(view, values["as_json"], lambda: key_values(view))


async def _save_mailbox(
    ctx: Context, name: str, values: dict[str, Any], *, new: bool
) -> tuple[dict[str, Any], list[str]]:
    from mailgate.mail.mailboxes import add_mailbox, mailbox_view, set_mailbox

    save = add_mailbox if new else set_mailbox
    row, warnings = await save(ctx, name, _mailbox_options(values))
    return mailbox_view(row), warnings


@mailbox_app.command("add")
def mailbox_add(
    name: str,
    protocol: MbProtocolOpt = None,
    host: MbHostOpt = None,
    port: MbPortOpt = None,
    security: MbSecurityOpt = None,
    username: MbUserOpt = None,
    credential: MbCredentialOpt = None,
    password_file: MbPasswordOpt = None,
    folder: MbFolderOpt = None,
    ca_file: MbCaOpt = None,
    project: MbProjectOpt = None,
    handler: MbHandlerOpt = None,
    after: MbAfterOpt = None,
    poll: MbPollOpt = None,
    idle: MbIdleOpt = None,
    backlog: MbBacklogOpt = None,
    sasl: MbSaslOpt = None,
    max_message_bytes: MbMaxOpt = None,
    bulk: MbBulkOpt = None,
    non_participants: MbNonParticipantsOpt = None,
    comments_from_participants_only: MbParticipantsOpt = None,
    cc_watchers: MbCcOpt = None,
    max_cc_watchers: MbMaxCcOpt = None,
    keys_of_other_projects: MbOtherKeysOpt = None,
    max_comments_per_issue_hour: MbCommentRateOpt = None,
    catch_address: MbCatchOpt = None,
    create_customers: MbCustomersOpt = None,
    whole_body: MbWholeOpt = None,
    split_regex: MbSplitOpt = None,
    quarantine_dmarc_fail: MbDmarcOpt = None,
    max_per_sender_hour: MbFloodOpt = None,
    max_attachment_bytes: MbAttachmentOpt = None,
    max_attachments_bytes: MbAttachmentsOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Add an incoming mail server (IMAP or POP3)."""
    _save_and_show(_save_mailbox, dict(locals()), new=True)


@mailbox_app.command("set")
@same_options(mailbox_add)
def mailbox_set(values: dict[str, Any]) -> None:
    """Change a mailbox; it keeps its UID state, so no mail is taken twice."""
    _save_and_show(_save_mailbox, values, new=False)


@mailbox_app.command("import")
def mailbox_import(
    file: Annotated[
        Path,
        typer.Argument(
            help="A JSON array of objects whose keys are the long options of `mailbox add` "
            'without dashes: [{"name": "support", "protocol": "imap", "host": …}, …].'
        ),
    ],
    as_json: JsonFlag = False,
) -> None:
    """Add or change many mailboxes at once, all or nothing: an existing name is changed as by
    `mailbox set`; every entry is checked as `mailbox add` checks it (one error line per bad
    entry, and nothing stored)."""
    from mailgate.mail.mailboxes import import_mailboxes, mailbox_view

    entries = _import_entries(file)

    async def work(ctx: Context) -> tuple[list[dict[str, Any]], list[str]]:
        saved = await import_mailboxes(ctx, entries)
        return [mailbox_view(row) for row, _ in saved], [w for _, ws in saved for w in ws]

    views, warnings = run(work)
    warn(warnings)
    emit(
        views,
        as_json,
        lambda: f"imported {len(views)} mailbox(es): " + ", ".join(v["name"] for v in views),
    )


def _import_entries(file: Path) -> list[Any]:
    """The entries (`ImportEntry`) of an import file, each with its options or with why it
    cannot be read as options."""
    from mailgate.mail.mailboxes import ImportEntry

    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except OSError as exc:
        fail(BadInput(f"The file {file} cannot be read ({exc.strerror}): give a readable file."))
    except (UnicodeDecodeError, ValueError, RecursionError):  # the last: nested too deep
        fail(BadInput(f"{file} is not JSON: give a JSON array of mailboxes, one object each."))
    if not isinstance(data, list) or not data:
        fail(BadInput(f'{file} holds no JSON array of mailboxes: give [{{"name": …}}, …].'))
    entries: list[ImportEntry] = []
    names: set[str] = set()
    for number, entry in enumerate(data, 1):
        name = entry.get("name") if isinstance(entry, dict) else None
        label = f"entry {number}" + (f" ({name})" if isinstance(name, str) else "")
        try:
            values = _import_values(entry)
            if values["name"] in names:
                raise BadInput(f"the name {values['name']!r} is given twice in the file.")
            names.add(values["name"])
            entries.append(ImportEntry(label, values["name"], _mailbox_options(values)))
        except BadInput as error:
            entries.append(ImportEntry(label, problem=str(error)))
    return entries


def _import_values(entry: object) -> dict[str, Any]:
    """An import entry as the arguments `mailbox add` would get, each of the option's type."""
    import typing

    if not isinstance(entry, dict):
        raise BadInput("not a JSON object: give one object per mailbox.")
    hints = typing.get_type_hints(mailbox_add)
    values: dict[str, Any] = {name: None for name in hints if name not in ("return", "as_json")}
    for key, value in entry.items():
        name = str(key).replace("-", "_")
        if name not in values:
            raise BadInput(
                f"unknown key {key!r}: use the long options of `mailbox add` without dashes "
                "(name, protocol, host, port, username, credential, project, …)."
            )
        values[name] = _import_value(name, value, hints[name])
    if not isinstance(values["name"], str):
        raise BadInput('no "name": give each mailbox its name.')
    return {**values, "as_json": False}


def _import_value(name: str, value: object, hint: Any) -> Any:
    """`value` as the type of the option `name` (`hint`: its annotation)."""
    import typing

    kinds = [k for k in typing.get_args(hint) if k is not type(None)] or [hint]
    kind = kinds[0]
    if value is None:
        return None
    if name == "credential" and isinstance(value, int) and not isinstance(value, bool):
        return str(value)  # an ID given as a number
    if kind is bool and isinstance(value, bool):
        return value
    if kind is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if kind in (str, Path) and isinstance(value, str):
        return kind(value)
    wanted = {bool: "true or false", int: "a number"}.get(kind, "a string")
    raise BadInput(f'"{name}" must be {wanted}, not {json.dumps(value)[:40]}.')


@mailbox_app.command("list")
def mailbox_list(as_json: JsonFlag = False) -> None:
    """List mailboxes with their status."""
    from mailgate.mail.mailboxes import list_mailboxes, mailbox_view

    async def work(ctx: Context) -> list[dict[str, Any]]:
        return [mailbox_view(row) for row in await list_mailboxes(ctx)]

    views = run(work)
    emit(
        views,
        as_json,
        lambda: table(
            views,
            ["name", "protocol", "host", "username", "auth", "project", "status", "last_error"],
        ),
    )


@mailbox_app.command("show")
def mailbox_show(name: str, as_json: JsonFlag = False) -> None:
    """Show a mailbox."""
    from mailgate.mail.mailboxes import get_mailbox, mailbox_view

    async def work(ctx: Context) -> dict[str, Any]:
        async with ctx.db.session() as session:
            return mailbox_view(await get_mailbox(session, name))

    view = run(work)
    warn(view["warnings"])
    emit(view, as_json, lambda: key_values(view))


@mailbox_app.command("test")
def mailbox_test(name: str, as_json: JsonFlag = False) -> None:
    """Test connection: resolve, connect, TLS, greeting, token, authenticate, select, count."""
    from mailgate.runtime.probe import ProbeResult, probe

    async def work(ctx: Context) -> ProbeResult:
        return await probe(ctx, name)

    result = run(work)
    emit(result.as_json(), as_json, lambda: _steps_text(result))
    raise typer.Exit(0 if result.ok else 1)


@mailbox_app.command("poll")
def mailbox_poll(
    name: str,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List what would be taken; change nothing.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Take everything there now (finishing post-actions a crash left pending), then exit."""
    from mailgate.mail.mailboxes import get_mailbox
    from mailgate.runtime import imap_mailbox, pop3_mailbox
    from mailgate.runtime.imap_mailbox import PollReport

    async def work(ctx: Context) -> PollReport:
        async with ctx.db.session() as session:
            mailbox = await get_mailbox(session, name)
        if mailbox.protocol == "imap":
            return await imap_mailbox.poll_once(ctx, name, dry_run=dry_run)
        return await pop3_mailbox.poll_once(ctx, name, dry_run=dry_run)

    report = run(work)
    data = {
        "taken": report.taken,
        "skipped": report.skipped,
        "quarantined": report.quarantined,
        "post_actions_finished": report.post_actions_finished,
    }
    if dry_run:
        data = {"would_take": report.would_take}
    emit(
        data,
        as_json,
        lambda: (
            f"would take {len(report.would_take)} message(s): UIDs {report.would_take}"
            if dry_run
            else f"took {len(report.taken)} message(s), quarantined {len(report.quarantined)}, "
            f"finished {report.post_actions_finished} pending post-action(s)"
        ),
    )


@mailbox_app.command("delete")
def mailbox_delete(name: str) -> None:
    """Delete a mailbox (the mail on the server is not touched)."""
    from mailgate.mail.mailboxes import delete_mailbox

    run(lambda ctx: delete_mailbox(ctx, name))
    typer.echo(f"deleted mailbox {name}")


# -- projects and issues --------------------------------------------------------------------------


@project_app.command("add")
def project_add(
    key: str,
    name: Annotated[str, typer.Option("--name", help="The project's name.")],
    smtp: Annotated[
        str | None,
        typer.Option(
            "--smtp", help="SMTP server its notifications use (default: the only one there is)."
        ),
    ] = None,
) -> None:
    """Add a project (issues are KEY-1, KEY-2, …; KEY: 2 to 50 capital letters, digits, _)."""
    from mailgate.tracker.service import add_project

    run(lambda ctx: add_project(ctx, key, name, smtp=smtp))
    typer.echo(f"added project {key}")


@project_app.command("set")
def project_set(
    key: str,
    name: Annotated[str | None, typer.Option("--name")] = None,
    smtp: Annotated[
        str | None,
        typer.Option("--smtp", help='SMTP server its notifications use ("" for the default).'),
    ] = None,
    notify: Annotated[bool | None, typer.Option("--notify/--no-notify")] = None,
    default_reporter: Annotated[
        str | None,
        typer.Option(
            "--default-reporter",
            help="The reporter of mail from unknown senders when a mailbox has "
            '--no-create-customers (an address; "" for none).',
        ),
    ] = None,
) -> None:
    """Change a project."""
    from mailgate.tracker.service import set_project

    run(
        lambda ctx: set_project(
            ctx, key, name=name, smtp=smtp, notify=notify, default_reporter=default_reporter
        )
    )
    typer.echo(f"changed project {key}")


@project_app.command("list")
def project_list(as_json: JsonFlag = False) -> None:
    """List projects."""
    from mailgate.tracker.service import list_projects

    async def work(ctx: Context) -> list[dict[str, Any]]:
        return [
            {
                "key": p.key,
                "name": p.name,
                "smtp": p.smtp,
                "notify": p.notify,
                "default_reporter": p.default_reporter,
            }
            for p in await list_projects(ctx)
        ]

    views = run(work)
    emit(views, as_json, lambda: table(views, ["key", "name", "smtp", "notify"]))


@issue_app.command("list")
def issue_list(
    project: Annotated[str | None, typer.Option("--project", help="Only this project's.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """List issues."""
    from mailgate.tracker.issues import list_issues

    views = run(lambda ctx: list_issues(ctx, project))
    emit(views, as_json, lambda: table(views, ["key", "status", "reporter", "comments", "summary"]))


def _issue_text(view: dict[str, Any]) -> str:
    head = {k: v for k, v in view.items() if k not in ("comments", "attachments", "description")}
    lines = [key_values(head), "", view["description"] or "(no description)"]
    for attachment in view["attachments"]:
        lines.append(f"[attachment] {attachment['filename']} ({attachment['size']} bytes)")
    for comment in view["comments"]:
        lines += ["", f"— {comment['author']}, {comment['created_at']}", comment["body"]]
    return "\n".join(lines)


@issue_app.command("show")
def issue_show(key: str, as_json: JsonFlag = False) -> None:
    """Show an issue with its comments and attachments."""
    from mailgate.tracker.issues import show_issue

    view = run(lambda ctx: show_issue(ctx, key))
    emit(view, as_json, lambda: _issue_text(view))


@issue_app.command("comment")
def issue_comment(
    key: str,
    body: Annotated[str, typer.Option("--body", help="The comment's text.")],
    author: Annotated[
        str | None, typer.Option("--author", help="Author's address; default: the local admin.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Comment on an issue (without --author: an agent's comment by the local admin)."""
    from mailgate.tracker.issues import comment_as_agent

    view = run(lambda ctx: comment_as_agent(ctx, key, body, author))
    emit(view, as_json, lambda: _issue_text(view))


@issue_app.command("close")
def issue_close(key: str, as_json: JsonFlag = False) -> None:
    """Close an issue (the reporter and watchers are told)."""
    from mailgate.tracker.issues import set_status

    view = run(lambda ctx: set_status(ctx, key, "closed"))
    emit(view, as_json, lambda: _issue_text(view))


@issue_app.command("reopen")
def issue_reopen(key: str, as_json: JsonFlag = False) -> None:
    """Reopen an issue (the reporter and watchers are told)."""
    from mailgate.tracker.issues import set_status

    view = run(lambda ctx: set_status(ctx, key, "open"))
    emit(view, as_json, lambda: _issue_text(view))


@quarantine_app.command("list")
def quarantine_list(as_json: JsonFlag = False) -> None:
    """List quarantined messages with the reason."""
    from mailgate.inbound.quarantine import list_quarantine

    views = run(list_quarantine)
    columns = ["id", "mailbox", "project", "issue", "message_id", "reason"]
    emit(views, as_json, lambda: table(views, columns))


@quarantine_app.command("retry")
def quarantine_retry(
    receipt_id: str,
    as_comment: Annotated[
        bool,
        typer.Option(
            "--as-comment",
            help="Accept a message held for an agent as a comment on its issue (notified like "
            "any comment).",
        ),
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Run a quarantined message through the pipeline again (after fixing the cause), or
    accept a held one as a comment."""
    from mailgate.inbound.quarantine import retry

    number = _number(receipt_id, "Message ID", "`mailgate quarantine list` shows them")
    view = run(lambda ctx: retry(ctx, number, as_comment=as_comment))
    emit(
        view,
        as_json,
        lambda: (
            f"message {view['id']}: {view['status']}"
            + (f" ({view['reason']})" if view.get("reason") else "")
        ),
    )
    raise typer.Exit(0 if view["status"] != "quarantined" else 1)


@app.command()
def parse(
    files: Annotated[list[Path], typer.Argument(help="Message files (.eml).")],
    as_json: JsonFlag = False,
) -> None:
    """Parse messages exactly as a mailbox would (with the same limits); store nothing."""
    configure_logging(os.environ.get("MAILGATE_LOG_LEVEL", "warning"))
    failed = asyncio.run(_parse_files(files, as_json))
    if failed:
        raise typer.Exit(2)


async def _parse_files(files: list[Path], as_json: bool) -> bool:
    """Print each file's fields (or why there are none); True when any file failed."""
    from mailgate.inbound.ingest import Unreadable, parse_files
    from mailgate.inbound.parsers import Unparsable

    failed = False
    try:
        parsers = parser_pool(load_settings())
    except MailgateError as error:
        fail(error)
    try:
        async for path, parsed in parse_files(files, parsers):
            if isinstance(parsed, Unreadable | Unparsable):
                failed = True
                reason = (
                    f"cannot read: {parsed.reason}"
                    if isinstance(parsed, Unreadable)
                    else parsed.reason
                )
                if as_json:
                    typer.echo(json.dumps({"file": str(path), "error": reason}))
                else:
                    typer.echo(f"mailgate: {path}: {reason}.", err=True)
                continue
            data = parsed.as_json(str(path))
            if as_json:
                typer.echo(json.dumps(data, ensure_ascii=False))
            else:
                sender = data["from"]
                typer.echo(
                    f"{path}: {data['subject']!r} from {sender['address'] or '(unknown)'}, "
                    f"{len(data['attachments'])} attachment(s)"
                    + (f", automated: {data['automated']}" if data["automated"] else "")
                    + (f", keys: {' '.join(data['issue_keys'])}" if data["issue_keys"] else "")
                )
    finally:
        await parsers.close()
    return failed


@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help=".eml files, mbox files, Maildir folders.")],
    project: Annotated[str, typer.Option("--project", help="Project key.")],
    handler: Annotated[
        str, typer.Option("--handler", help="create-or-comment, create or comment.")
    ] = "create-or-comment",
    max_attachment_bytes: MbAttachmentOpt = None,
    max_attachments_bytes: MbAttachmentsOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Bring in mail from files through the same pipeline as a mailbox."""
    limits = {
        "max_attachment_bytes": max_attachment_bytes,
        "max_attachments_bytes": max_attachments_bytes,
    }
    from mailgate.inbound.ingest import SUMMARY_ORDER
    from mailgate.inbound.ingest import ingest as run_ingest

    async def work(ctx: Context) -> dict[str, int]:
        if sys.stderr.isatty() and not as_json:
            from rich.progress import Progress

            with Progress(transient=True) as progress:
                task = progress.add_task("ingesting", total=None)
                summary = await run_ingest(
                    ctx, paths, project, handler, lambda _o, _s: progress.advance(task), limits
                )
        else:
            summary = await run_ingest(ctx, paths, project, handler, limits=limits)
        return {name: summary.get(name, 0) for name in SUMMARY_ORDER if name in summary}

    counts = run(work)
    emit(
        counts,
        as_json,
        lambda: ", ".join(f"{n} {name}" for name, n in counts.items()) or "no messages",
    )


# -- SMTP servers and the outbox -------------------------------------------------------------------

SmHostOpt = Annotated[
    str | None,
    typer.Option(
        "--host",
        help="The SMTP server (default with a Microsoft or Google credential: "
        "smtp.office365.com / smtp.gmail.com).",
    ),
]
SmPortOpt = Annotated[
    int | None, typer.Option("--port", help="Default: 587 (starttls), 465 (ssl).")
]
SmSecurityOpt = Annotated[
    str | None,
    typer.Option("--security", help="starttls (provider default), ssl, or none (loopback only)."),
]
SmUserOpt = Annotated[
    str | None,
    typer.Option("--username", help="The login (default: the credential's account)."),
]
SmFromOpt = Annotated[
    str | None, typer.Option("--from", help="The address mail is sent as (default: the login).")
]
SmFromNameOpt = Annotated[
    str | None, typer.Option("--from-name", help="The display name (default: the project's name).")
]


@smtp_app.command("add")
def smtp_add(
    name: str,
    host: SmHostOpt = None,
    port: SmPortOpt = None,
    security: SmSecurityOpt = None,
    username: SmUserOpt = None,
    credential: MbCredentialOpt = None,
    password_file: MbPasswordOpt = None,
    from_address: SmFromOpt = None,
    from_name: SmFromNameOpt = None,
    ca_file: MbCaOpt = None,
    sasl: MbSaslOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Add an outgoing mail server."""
    _save_and_show(_save_smtp, dict(locals()), new=True)


@smtp_app.command("set")
@same_options(smtp_add)
def smtp_set(values: dict[str, Any]) -> None:
    """Change an outgoing mail server."""
    _save_and_show(_save_smtp, values, new=False)


async def _save_smtp(
    ctx: Context, name: str, values: dict[str, Any], *, new: bool
) -> tuple[dict[str, Any], list[str]]:
    from mailgate.mail.smtp_servers import SmtpOptions, add_smtp, set_smtp, smtp_view

    credential = values["credential"]
    options = SmtpOptions(
        host=values["host"],
        port=values["port"],
        security=values["security"],
        username=values["username"],
        credential_id=_credential_id(credential) if credential is not None else None,
        password=_read_password(values["password_file"]),
        ca_file=values["ca_file"],
        sasl_mechanism=values["sasl"],
        from_address=values["from_address"],
        from_name=values["from_name"],
    )
    row, warnings = await (add_smtp if new else set_smtp)(ctx, name, options)
    return smtp_view(row), warnings


@smtp_app.command("list")
def smtp_list(as_json: JsonFlag = False) -> None:
    """List outgoing mail servers with their status."""
    from mailgate.mail.smtp_servers import list_smtp, smtp_view

    async def work(ctx: Context) -> list[dict[str, Any]]:
        return [smtp_view(row) for row in await list_smtp(ctx)]

    views = run(work)
    columns = ["name", "host", "port", "username", "auth", "from", "status", "last_error"]
    emit(views, as_json, lambda: table(views, columns))


@smtp_app.command("show")
def smtp_show(name: str, as_json: JsonFlag = False) -> None:
    """Show an outgoing mail server."""
    from mailgate.mail.smtp_servers import get_smtp, smtp_view

    async def work(ctx: Context) -> dict[str, Any]:
        async with ctx.db.session() as session:
            return smtp_view(await get_smtp(session, name))

    view = run(work)
    emit(view, as_json, lambda: key_values(view))


@smtp_app.command("test")
def smtp_test(
    name: str,
    to: Annotated[str, typer.Option("--to", help="Where the test message goes.")],
    as_json: JsonFlag = False,
) -> None:
    """Send a test message: resolve, connect, TLS, greeting, token, authenticate, send."""
    from mailgate.mail.smtp_probe import probe_smtp
    from mailgate.steps import StepReport

    async def work(ctx: Context) -> StepReport:
        return await probe_smtp(ctx, name, to)

    result = run(work)
    emit(result.as_json(), as_json, lambda: _steps_text(result))
    raise typer.Exit(0 if result.ok else 1)


def _steps_text(result: Any) -> str:
    lines = [
        f"{index}. {'ok  ' if s.ok else 'FAIL'}  {s.step}: {s.detail}"
        for index, s in enumerate(result.steps, 1)
    ]
    if result.diagnosis:
        lines.append(f"\n{result.diagnosis}")
    return "\n".join(lines)


@outbox_app.command("list")
def outbox_list(as_json: JsonFlag = False) -> None:
    """Notifications: pending (with the last error), sent, dead."""
    from mailgate.outbound.outbox import list_outbox

    views = run(list_outbox)
    columns = ["id", "kind", "issue", "to", "status", "attempts", "last_error"]
    emit(views, as_json, lambda: table(views, columns))


@outbox_app.command("retry")
def outbox_retry(
    message_id: Annotated[str | None, typer.Argument(help="A dead message's ID.")] = None,
    all_dead: Annotated[bool, typer.Option("--all", help="Every dead message.")] = False,
) -> None:
    """Send dead messages again, once what refused them is fixed."""
    from mailgate.outbound.outbox import retry

    if (message_id is None) == (not all_dead):
        fail(BadInput("Give a message ID or --all (`mailgate outbox list` shows the dead ones)."))
    number = None
    if message_id is not None:
        if not message_id.isdigit():
            fail(
                BadInput(f"{message_id!r} is not a message ID: give the number from `outbox list`.")
            )
        number = int(message_id)
    count = run(lambda ctx: retry(ctx, number))
    typer.echo(f"{count} message(s) queued again")


@outbox_app.command("flush")
def outbox_flush(as_json: JsonFlag = False) -> None:
    """Send every notification that is due, then exit."""
    from mailgate.outbound.outbox import FlushReport, flush

    async def work(ctx: Context) -> FlushReport:
        return await flush(ctx)

    report = run(work)
    counts = report.as_json()
    emit(counts, as_json, lambda: ", ".join(f"{n} {what}" for what, n in counts.items()))


# -- keys ------------------------------------------------------------------------------------------


@keys_app.command("rotate")
def keys_rotate(
    drop_old_keys: Annotated[
        bool,
        typer.Option(
            "--drop-old-keys",
            help="Remove the old keys from the key file (restart every mailgate process first).",
        ),
    ] = False,
) -> None:
    """Use a new encryption key and re-encrypt every stored secret under it."""
    from mailgate.store.keys import rotate_keys

    async def work(ctx: Context) -> int:
        return await rotate_keys(ctx, drop_old=drop_old_keys)

    count = run(work)
    typer.echo(f"re-encrypted {count} stored secret(s) under the new key")


@keys_app.command("generate")
def keys_generate() -> None:
    """Print a new encryption key (for MAILGATE_SECRET_KEYS)."""
    from cryptography.fernet import Fernet

    typer.echo(Fernet.generate_key().decode("ascii"))


def main() -> None:
    """Entry point: usage errors exit 2 with one sentence, like every other bad input."""
    try:
        code = app(standalone_mode=False)
    except typer.Abort:
        sys.exit(130)
    except MailgateError as error:
        typer.echo(f"mailgate: {redact_text(str(error))}", err=True)
        sys.exit(error.exit_code)
    except TyperException as error:
        message = error.format_message() if hasattr(error, "format_message") else str(error)
        if message:  # empty when a command group was called without a command: help was shown
            command = getattr(getattr(error, "ctx", None), "command_path", "mailgate")
            typer.echo(f"mailgate: {message} (see `{command} --help`)", err=True)
        sys.exit(getattr(error, "exit_code", 2) or 2)
    sys.exit(code if isinstance(code, int) else 0)
