"""The Outgoing mail pages against a real Postfix (it checks OAuth 2.0 tokens through Dovecot,
which delivers what it accepts): add a server as `mailgate smtp add` would, test its connection
(nothing sent), send a test email that arrives, the provider's pre-filled host, a credential
without the SMTP scope said so, the password warning for Microsoft's host, change and delete —
and no page ever shows the password."""

from __future__ import annotations

import email
import json
from email import policy

from selectolax.lexbor import LexborHTMLParser

from mailgate.context import Context
from mailgate.mail.smtp_servers import get_smtp, smtp_view
from mailgate.oauth.credentials import store_grant
from mailgate.oauth.endpoint import TokenResponse
from mailgate.oauth.integrations import IntegrationOptions, add_integration
from mailgate.tracker.audit_log import audit_log
from mailgate.tracker.service import add_project
from tests.support.emulator import RunningEmulator
from tests.support.keeper import microsoft_credential
from tests.support.postfix import Postfix
from tests.support.web import WebClient

ALICE = "alice@example.test"
BOB = "bob@example.test"
CANARY = "canary-smtp-password-93fa"
CONNECTION_STEPS = ["resolve", "connect", "tls", "greeting", "token", "authenticate"]


def server_form(postfix: Postfix, **fields: str) -> dict[str, str]:
    """The new SMTP server form as an admin fills it for Postfix's submission port."""
    return {
        "name": "out",
        "provider": "custom",
        "host": "127.0.0.1",
        "port": str(postfix.submission_port),
        "security": "starttls",
        "ca_file": str(postfix.ca_file),
        "username": ALICE,
        "auth": "oauth2",
        "credential": "",
        "password": "",
        "sasl": "auto",
        "from_address": ALICE,
        "from_name": "Help desk",
        **fields,
    }


def steps(page: str, section: str) -> list[tuple[str, str]]:
    """The finished step list in the page's section (`#test-title` or `#send-title`)."""
    tree = LexborHTMLParser(page)
    heading = tree.css_first(section)
    assert heading is not None and heading.parent is not None
    return [
        (item.css_first(".step").text(), item.css_first(".outcome").text())
        for item in heading.parent.css("ol.steps li")
    ]


def text_of(page: str, selector: str) -> str:
    node = LexborHTMLParser(page).css_first(selector)
    assert node is not None, f"no {selector} in the page"
    return node.text()


async def add_with_credential(
    ctx: Context, admin: WebClient, emulator: RunningEmulator, postfix: Postfix
) -> int:
    setup = await microsoft_credential(ctx, emulator, name="m365-out", account=ALICE)
    answer = await admin.post("/smtp", server_form(postfix, credential=str(setup.credential.id)))
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == "/smtp/out"
    return setup.credential.id


async def test_an_empty_list_says_what_to_do_first(admin: WebClient) -> None:
    page = await admin.get("/smtp")
    assert page.status_code == 200
    assert "No outgoing mail servers yet." in page.text and 'href="/smtp/new"' in page.text


async def test_add_test_the_connection_and_send_a_test_email(
    ctx: Context, admin: WebClient, emulator: RunningEmulator, postfix: Postfix
) -> None:
    credential = await add_with_credential(ctx, admin, emulator, postfix)
    page = await admin.get("/smtp/out")
    assert "SMTP server out added." in page.text
    assert "not used yet" in text_of(page.text, "h1 .status")
    listed = await admin.get("/smtp")
    assert 'data-smtp="out"' in listed.text and f"&lt;{ALICE}&gt;" in listed.text

    tested = await admin.post("/smtp/out/test")
    assert tested.status_code == 200
    assert steps(tested.text, "#test-title") == [(step, "ok") for step in CONNECTION_STEPS]
    assert postfix.messages(BOB) == []  # a connection test sends nothing

    sent = await admin.post("/smtp/out/send", {"to": BOB})
    assert steps(sent.text, "#send-title") == [(step, "ok") for step in [*CONNECTION_STEPS, "send"]]
    assert f'value="{BOB}"' in sent.text
    [raw] = postfix.wait_for_delivery(BOB)
    delivered = email.message_from_bytes(raw, policy=policy.default)
    assert delivered["Subject"] == "mailgate test message (out)"
    assert delivered["From"] == f"Help desk <{ALICE}>"

    [event] = [e for e in await audit_log(ctx) if e["action"] == "smtp.add"]
    assert event["subject"] == "out" and f"credential {credential}" in event["detail"]


async def test_the_live_test_streams_each_step(
    ctx: Context, admin: WebClient, emulator: RunningEmulator, postfix: Postfix
) -> None:
    await add_with_credential(ctx, admin, emulator, postfix)
    answer = await admin.http.post(
        "/smtp/out/send",
        data={"csrf": admin.csrf or "", "to": BOB},
        headers={"Accept": "application/x-ndjson"},
    )
    lines = [json.loads(line) for line in answer.text.splitlines()]
    assert [line["step"] for line in lines[:-1]] == [*CONNECTION_STEPS, "send"]
    assert lines[-1] == {"done": True, "ok": True, "diagnosis": None}
    postfix.wait_for_delivery(BOB)
    bad = await admin.http.post(
        "/smtp/out/send",
        data={"csrf": admin.csrf or "", "to": "nobody"},
        headers={"Accept": "application/x-ndjson"},
    )
    [line] = [json.loads(line) for line in bad.text.splitlines()]
    assert line["done"] and not line["ok"] and "is not an email address" in line["diagnosis"]


async def test_a_bad_to_address_is_said_and_kept(
    ctx: Context, admin: WebClient, emulator: RunningEmulator, postfix: Postfix
) -> None:
    await add_with_credential(ctx, admin, emulator, postfix)
    answer = await admin.post("/smtp/out/send", {"to": "not-an-address"})
    assert answer.status_code == 400
    assert "'not-an-address' is not an email address" in text_of(answer.text, "p.error")
    assert 'value="not-an-address"' in answer.text


async def test_the_provider_fills_in_its_submission_server(admin: WebClient) -> None:
    for provider, host in (("microsoft", "smtp.office365.com"), ("google", "smtp.gmail.com")):
        page = await admin.get(f"/smtp/new?provider={provider}")
        tree = LexborHTMLParser(page.text)
        assert tree.css_first("#host").attributes["value"] == host
        assert tree.css_first("#port").attributes["value"] == "587"
        assert tree.css_first("#security option[selected]").attributes["value"] == "starttls"
        option = tree.css_first(f'#provider option[value="{provider}"]')
        assert option.attributes["data-host"] == host  # what the page's script fills in
    custom = LexborHTMLParser((await admin.get("/smtp/new")).text)
    assert custom.css_first("#host").attributes["value"] == ""


async def test_a_credential_without_the_smtp_scope_is_said_so(
    ctx: Context, admin: WebClient
) -> None:
    integration = await add_integration(
        ctx,
        "m365-imap",
        IntegrationOptions(
            provider="microsoft",
            client_id="6731de76-14a6-49ae-97bc-6eba6914391e",
            client_secret="s3cret-value",
            tenant="contoso.example",
            uses=["imap"],
        ),
    )
    grant = TokenResponse.from_json(
        {
            "access_token": "at",
            "refresh_token": "rt",
            "expires_in": 3600,
            "scope": "https://outlook.office.com/IMAP.AccessAsUser.All offline_access",
            "token_type": "Bearer",
        }
    )
    credential = await store_grant(
        ctx, integration, "support@contoso.example", "authorization_code", grant
    )
    page = await admin.get("/smtp/new")
    option = LexborHTMLParser(page.text).css_first(f'#credential option[value="{credential.id}"]')
    assert option is not None and option.text().endswith("— lacks the SMTP scope")
    assert "SMTP.Send" in option.attributes["data-problem"]
    form = {
        "name": "out",
        "provider": "microsoft",
        "host": "",
        "auth": "oauth2",
        "credential": str(credential.id),
    }
    answer = await admin.post("/smtp", form)
    assert answer.status_code == 400
    error = text_of(answer.text, "p.error")
    assert f"Credential {credential.id} was authorized without the SMTP.Send scope" in error
    shown = LexborHTMLParser(answer.text).css_first("[data-scope-problem]")
    assert shown is not None and "hidden" not in shown.attributes
    assert "SMTP.Send" in shown.text()


async def test_password_on_microsofts_host_is_warned_and_never_shown(
    ctx: Context, admin: WebClient
) -> None:
    await add_project(ctx, "HELP", "Help desk")
    form = {
        "name": "o365",
        "provider": "microsoft",
        "host": "",
        "security": "starttls",
        "username": "support@contoso.com",
        "auth": "password",
        "password": CANARY,
        "from_address": "support@contoso.com",
        "from_name": "",
    }
    answer = await admin.post("/smtp", form)
    assert answer.status_code == 303
    page = await admin.get(answer.headers["location"])
    warning = LexborHTMLParser(page.text).css_first("[data-password-warning]")
    assert warning is not None and "hidden" not in warning.attributes
    assert "Password sign-in is being switched off by the provider" in warning.text()
    async with ctx.db.session() as session:
        view = smtp_view(await get_smtp(session, "o365"))
    assert (view["host"], view["port"], view["security"]) == ("smtp.office365.com", 587, "starttls")
    # A change that keeps the password, then one that replaces it: the log says only that.
    kept = {**form, "host": "smtp.office365.com", "password": "", "from_name": "Contoso"}
    assert (await admin.post("/smtp/o365", kept)).status_code == 303
    assert (await admin.post("/smtp/o365", {**kept, "password": CANARY + "x"})).status_code == 303
    details = [e["detail"] for e in await audit_log(ctx) if e["action"] == "smtp.set"]
    assert details == ["password changed", "from_name"]
    for path in ("/smtp", "/smtp/o365", "/smtp/o365/delete", "/smtp/new", "/audit"):
        assert CANARY not in (await admin.get(path)).text, path


async def test_bad_input_is_said_inline_with_the_form_filled_again(
    admin: WebClient, postfix: Postfix
) -> None:
    cases = {
        "port": ("0", "Port 0 is not a TCP port"),
        "from_address": ("nobody", "'nobody' is not an email address"),
        "security": ("none", "--security none sends the token in clear text"),
        "name": ("no good", "SMTP server name 'no good' is not valid"),
    }
    for field, (value, sentence) in cases.items():
        form = server_form(postfix, auth="password", password=CANARY, **{field: value})
        if field == "security":
            form["host"] = "smtp.example.com"
        answer = await admin.post("/smtp", form)
        assert answer.status_code == 400, field
        assert sentence in text_of(answer.text, "p.error"), (field, answer.text)
        assert 'value="Help desk"' in answer.text and CANARY not in answer.text
    assert "data-smtp=" not in (await admin.get("/smtp")).text


async def test_delete_is_refused_while_a_project_sends_through_it(
    ctx: Context, admin: WebClient, postfix: Postfix
) -> None:
    answer = await admin.post("/smtp", server_form(postfix, auth="password", password="pw-1"))
    assert answer.status_code == 303
    await add_project(ctx, "HELP", "Help desk", smtp="out")
    confirm = await admin.get("/smtp/out/delete")
    assert "Delete SMTP server out?" in confirm.text
    refused = await admin.post("/smtp/out/delete")
    assert refused.status_code == 400
    assert "Project HELP sends its mail through SMTP server 'out'" in text_of(
        refused.text, "p.error"
    )
    await admin.post("/projects/HELP", {"name": "Help desk", "smtp": ""})
    deleted = await admin.post("/smtp/out/delete")
    assert deleted.status_code == 303 and deleted.headers["location"] == "/smtp"
    assert "SMTP server out deleted." in (await admin.get("/smtp")).text
    assert (await admin.get("/smtp/out")).status_code == 404
    assert [e["subject"] for e in await audit_log(ctx) if e["action"] == "smtp.delete"] == ["out"]
