"""`mailgate integration`: OAuth 2.0 clients registered at a provider, and the sign-ins that
authorize an account under one."""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer

from mailgate.cli.common import JsonFlag, emit, key_values, run, same_options, table, warn
from mailgate.context import Context
from mailgate.errors import BadInput
from mailgate.oauth.check import CheckResult, check_integration
from mailgate.oauth.credentials import credential_view
from mailgate.oauth.device import poll_for_approval, request_device_code
from mailgate.oauth.flows import authorize_client_credentials
from mailgate.oauth.integrations import (
    IntegrationOptions,
    add_integration,
    delete_integration,
    integration_views,
    set_integration,
    show_integration,
)
from mailgate.oauth.signin import begin, wait_for

app = typer.Typer(help="OAuth 2.0 clients registered at a provider.", no_args_is_help=True)


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


def _options(values: dict[str, Any]) -> IntegrationOptions:
    """IntegrationOptions from an `integration add|set` command's arguments."""
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
    save = add_integration if new else set_integration
    await save(ctx, name, _options(values))
    return await show_integration(ctx, name)


@app.command("add")
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


@app.command("set")
@same_options(integration_add)
def integration_set(values: dict[str, Any]) -> None:
    """Change an integration (e.g. a new client secret); credentials and mailboxes stay."""
    view, warnings = run(lambda ctx: _save_integration(ctx, values["name"], values, new=False))
    warn(warnings)
    emit(view, values["as_json"], lambda: key_values(view))


@app.command("list")
def integration_list(as_json: JsonFlag = False) -> None:
    """List integrations."""

    views, warnings = run(integration_views)
    warn(warnings)
    emit(
        views,
        as_json,
        lambda: table(
            views, ["name", "provider", "client_id", "status", "credentials", "redirect_url"]
        ),
    )


@app.command("show")
def integration_show(name: str, as_json: JsonFlag = False) -> None:
    """Show an integration, with the redirect URL to register at the provider."""

    view, warnings = run(lambda ctx: show_integration(ctx, name))
    warn(warnings)
    emit(view, as_json, lambda: key_values(view))


@app.command("delete")
def integration_delete(
    name: str,
    force: Annotated[bool, typer.Option("--force", help="Also delete its credentials.")] = False,
) -> None:
    """Delete an integration."""

    async def work(ctx: Context) -> None:
        await delete_integration(ctx, name, force=force)

    run(work)
    typer.echo(f"deleted integration {name}")


@app.command("test")
def integration_test(name: str, as_json: JsonFlag = False) -> None:
    """Check the endpoints and that the provider accepts the client ID and secret."""

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


@app.command("authorize")
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
    if device and client_credentials:
        raise BadInput("Choose one flow: --device or --client-credentials.")

    def say(text: str) -> None:
        # The link and the code are what the user needs: stdout, unless stdout is JSON.
        typer.echo(text, err=as_json)

    async def work(ctx: Context) -> dict[str, Any] | None:
        ctx.settings.require_https_base_url()
        if client_credentials:
            cred = await authorize_client_credentials(ctx, name)
        elif device:
            integration, code = await request_device_code(ctx, name)
            say(code.message or f"Open {code.verification_uri} and enter the code {code.user_code}")
            typer.echo("Waiting for approval...", err=True)
            cred = await poll_for_approval(ctx, integration, code)
        else:
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
