"""The Incoming mail pages against a real Dovecot (its oauth2 passdb asks the emulator about every
token): add a mailbox as `mailgate mailbox add` would, test its connection (the finished page and
the live steps), count what its backlog policy would take, change and delete it — bad input
answered inline with the form filled again but never the password, the password warning for
Microsoft's and Google's hosts, and every change in the audit log."""

from __future__ import annotations

import json
from email.message import EmailMessage

import pytest
from selectolax.lexbor import LexborHTMLParser

from mailgate.context import Context
from mailgate.inbound.mailboxes import get_mailbox, mailbox_view
from mailgate.tracker.audit_log import audit_log
from mailgate.tracker.service import add_project
from tests.support.dovecot import Dovecot
from tests.support.emulator import RunningEmulator
from tests.support.keeper import microsoft_credential
from tests.support.web import WebClient

ALICE = "alice@example.test"
CANARY = "canary-mailbox-password-5d1e"
ALL_STEPS = ["resolve", "connect", "tls", "greeting", "token", "authenticate", "select", "count"]


@pytest.fixture(autouse=True)
async def help_project(ctx: Context) -> None:
    await add_project(ctx, "HELP", "Help desk")


def message(subject: str) -> bytes:
    mail = EmailMessage()
    mail["From"] = "customer@example.net"
    mail["To"] = ALICE
    mail["Subject"] = subject
    mail["Message-ID"] = f"<{subject.replace(' ', '.')}@example.net>"
    mail.set_content("Help!")
    return bytes(mail)


def imap_form(dovecot: Dovecot, **fields: str) -> dict[str, str]:
    """The new mailbox form as an admin fills it for Dovecot's IMAP over SSL/TLS."""
    return {
        "name": "support",
        "protocol": "imap",
        "host": "127.0.0.1",
        "port": str(dovecot.imaps_port),
        "security": "ssl",
        "ca_file": str(dovecot.ca_file),
        "username": ALICE,
        "auth": "oauth2",
        "credential": "",
        "password": "",
        "sasl": "auto",
        "folder": "INBOX",
        "backlog": "unseen",
        "after": "seen",
        "move_folder": "",
        "poll": "60",
        "idle": "on",
        "project": "HELP",
        "handler": "create-or-comment",
        "bulk": "ignore",
        "non_participants": "new-issue",
        "create_customers": "on",
        "cc_watchers": "on",
        **fields,
    }


def steps(page: str) -> list[tuple[str, str]]:
    """The step list a finished test rendered: (step, outcome) in order."""
    tree = LexborHTMLParser(page)
    return [
        (item.css_first(".step").text(), item.css_first(".outcome").text())
        for item in tree.css("ol.steps li")
    ]


def text_of(page: str, selector: str) -> str:
    node = LexborHTMLParser(page).css_first(selector)
    assert node is not None, f"no {selector} in the page"
    return node.text()


async def add_with_credential(
    ctx: Context, admin: WebClient, dovecot: Dovecot, emulator: RunningEmulator
) -> int:
    setup = await microsoft_credential(ctx, emulator, account=ALICE)
    credential = setup.credential.id
    answer = await admin.post("/mailboxes", imap_form(dovecot, credential=str(credential)))
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == "/mailboxes/support"
    return credential


async def test_an_empty_list_says_what_to_do_first(admin: WebClient) -> None:
    page = await admin.get("/mailboxes")
    assert page.status_code == 200
    assert "No incoming mail servers yet." in page.text
    assert 'href="/mailboxes/new"' in page.text


async def test_add_a_mailbox_with_a_credential_and_test_it_all_green(
    ctx: Context, admin: WebClient, dovecot: Dovecot, emulator: RunningEmulator
) -> None:
    dovecot.deliver(ALICE, message("Printer on fire"))
    setup = await microsoft_credential(ctx, emulator, account=ALICE)
    form = await admin.get("/mailboxes/new")
    for label in (
        "Name",
        "Protocol",
        "Host",
        "Port",
        "Security",
        "Username",
        "Credential",
        "Folder",
        "Project",
        "Mail already there",
        "Poll interval (seconds)",
    ):
        assert f">{label}</label>" in form.text, label
    option = LexborHTMLParser(form.text).css_first(
        f'#credential option[value="{setup.credential.id}"]'
    )
    assert (
        option is not None and option.text() == f"{ALICE} (m365, credential {setup.credential.id})"
    )

    answer = await admin.post("/mailboxes", imap_form(dovecot, credential=str(setup.credential.id)))
    assert answer.status_code == 303, answer.text
    page = await admin.get(answer.headers["location"])
    assert "Mailbox support added." in page.text
    assert "not running" in text_of(page.text, "h1")
    async with ctx.db.session() as session:
        stored = mailbox_view(await get_mailbox(session, "support"))
    assert (stored["auth"], stored["credential"], stored["port"]) == (
        "oauth2",
        setup.credential.id,
        dovecot.imaps_port,
    )
    assert stored["route_options"] == {}  # the handler's defaults stay defaults

    tested = await admin.post("/mailboxes/support/test")
    assert tested.status_code == 200
    assert steps(tested.text) == [(step, "ok") for step in ALL_STEPS]
    assert text_of(tested.text, ".steps-summary") == "All steps passed."

    [event] = [e for e in await audit_log(ctx) if e["action"] == "mailbox.add"]
    assert event["subject"] == "support" and event["actor"] == "admin@example.com"
    assert f"credential {setup.credential.id}" in event["detail"]


async def test_the_live_test_streams_each_step_then_the_outcome(
    ctx: Context, admin: WebClient, dovecot: Dovecot, emulator: RunningEmulator
) -> None:
    await add_with_credential(ctx, admin, dovecot, emulator)
    answer = await admin.http.post(
        "/mailboxes/support/test",
        data={"csrf": admin.csrf or ""},
        headers={"Accept": "application/x-ndjson"},
    )
    assert answer.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in answer.text.splitlines()]
    assert [(line["step"], line["ok"]) for line in lines[:-1]] == [(s, True) for s in ALL_STEPS]
    assert lines[-1] == {"done": True, "ok": True, "diagnosis": None}


async def test_a_wrong_password_shows_the_failing_step_and_its_diagnosis(
    admin: WebClient, dovecot: Dovecot
) -> None:
    form = imap_form(dovecot, auth="password", password="not-it")
    assert (await admin.post("/mailboxes", form)).status_code == 303
    tested = await admin.post("/mailboxes/support/test")
    assert steps(tested.text)[-1] == ("authenticate", "failed")
    assert steps(tested.text)[:-1] == [(step, "ok") for step in ALL_STEPS[:5]]
    assert text_of(tested.text, ".steps-summary") == "Failed at the step “authenticate”."
    assert "username or password" in text_of(tested.text, "p.diagnosis")
    # The right password, typed on the mailbox's page, and the same test passes.
    edit = imap_form(dovecot, auth="password", password="alice-password")
    assert (await admin.post("/mailboxes/support", edit)).status_code == 303
    again = await admin.post("/mailboxes/support/test")
    assert steps(again.text) == [(step, "ok") for step in ALL_STEPS]


async def test_password_sign_in_on_a_microsoft_host_is_saved_with_the_warning(
    ctx: Context, admin: WebClient
) -> None:
    form = {
        "name": "m365",
        "protocol": "imap",
        "host": "outlook.office365.com",
        "security": "ssl",
        "username": "support@contoso.com",
        "auth": "password",
        "password": CANARY,
        "folder": "INBOX",
        "project": "HELP",
        "poll": "60",
    }
    answer = await admin.post("/mailboxes", form)
    assert answer.status_code == 303  # saved, as `mailbox add` saves it, with its warning
    page = await admin.get(answer.headers["location"])
    warning = LexborHTMLParser(page.text).css_first("[data-password-warning]")
    assert warning is not None and "hidden" not in warning.attributes
    assert (
        "Password sign-in is being switched off by the provider; use OAuth 2.0." in warning.text()
    )
    assert warning.css_first('a[href="/integrations/new"]') is not None
    assert CANARY not in page.text
    # Refused for another reason, the form comes back with the warning and without the password.
    refused = await admin.post(
        "/mailboxes", {**form, "name": "gmail", "host": "imap.gmail.com", "poll": "1"}
    )
    assert refused.status_code == 400
    assert "too short" in text_of(refused.text, "p.error")
    warning = LexborHTMLParser(refused.text).css_first("[data-password-warning]")
    assert warning is not None and "hidden" not in warning.attributes
    assert 'value="imap.gmail.com"' in refused.text and CANARY not in refused.text


async def test_no_warning_for_a_password_elsewhere_nor_for_oauth(
    admin: WebClient, dovecot: Dovecot
) -> None:
    assert (
        await admin.post("/mailboxes", imap_form(dovecot, auth="password", password="x1"))
    ).status_code == 303
    page = await admin.get("/mailboxes/support")
    warning = LexborHTMLParser(page.text).css_first("[data-password-warning]")
    assert warning is not None and "hidden" in warning.attributes
    fresh = await admin.get("/mailboxes/new")
    warning = LexborHTMLParser(fresh.text).css_first("[data-password-warning]")
    assert warning is not None and "hidden" in warning.attributes


async def test_bad_input_is_said_inline_with_the_form_filled_again(
    admin: WebClient, dovecot: Dovecot
) -> None:
    cases = {
        "poll": ("1", "A poll interval of 1 s is too short"),
        "port": ("99999", "Port 99999 is not a TCP port"),
        "split_regex": ("([", "is not a regular expression"),
        "catch_address": ("not an address", "is not an email address"),
        "project": ("NOPE", "No project NOPE"),
        "name": ("bad name!", "Mailbox name 'bad name!' is not valid"),
    }
    for field, (value, sentence) in cases.items():
        form = imap_form(dovecot, auth="password", password=CANARY, **{field: value})
        answer = await admin.post("/mailboxes", form)
        assert answer.status_code == 400, field
        assert sentence in text_of(answer.text, "p.error"), (field, answer.text)
        assert f'value="{ALICE}"' in answer.text  # the form filled again
        assert CANARY not in answer.text
    no_credential = await admin.post("/mailboxes", imap_form(dovecot))
    assert "No OAuth 2.0 credential chosen" in text_of(no_credential.text, "p.error")
    no_password = await admin.post("/mailboxes", imap_form(dovecot, auth="password"))
    assert "No password given" in text_of(no_password.text, "p.error")
    assert (await admin.get("/mailboxes")).text.count("data-mailbox=") == 0  # nothing stored


async def test_count_what_the_backlog_policy_would_take(
    ctx: Context, admin: WebClient, dovecot: Dovecot, emulator: RunningEmulator
) -> None:
    for subject in ("First", "Second", "Third"):
        dovecot.deliver(ALICE, message(subject))
    credential = await add_with_credential(ctx, admin, dovecot, emulator)
    page = await admin.get("/mailboxes/support")
    assert "Count what would be taken" in page.text
    counted = await admin.post("/mailboxes/support/count")
    assert counted.status_code == 200
    assert text_of(counted.text, "[data-would-take]").startswith("3 messages would be taken now")
    # A dry run: nothing was taken, the next count is the same.
    again = await admin.post("/mailboxes/support/count")
    assert text_of(again.text, "[data-would-take]").startswith("3 messages would be taken now")
    none = imap_form(dovecot, credential=str(credential), backlog="none")
    assert (await admin.post("/mailboxes/support", none)).status_code == 303
    after = await admin.post("/mailboxes/support/count")
    assert text_of(after.text, "[data-would-take]").startswith("0 messages would be taken now")


async def test_edit_keeps_the_password_and_the_audit_log_names_what_changed(
    ctx: Context, admin: WebClient, dovecot: Dovecot
) -> None:
    form = imap_form(dovecot, auth="password", password=CANARY)
    assert (await admin.post("/mailboxes", form)).status_code == 303
    page = await admin.get("/mailboxes/support")
    assert CANARY not in page.text and 'name="password" type="password" value=""' in page.text
    assert "Leave empty to keep it" in page.text
    kept = {**form, "password": "", "poll": "120", "split_regex": "^--"}
    assert (await admin.post("/mailboxes/support", kept)).status_code == 303
    renewed = {**kept, "password": CANARY + "-2"}
    assert (await admin.post("/mailboxes/support", renewed)).status_code == 303
    async with ctx.db.session() as session:
        row = await get_mailbox(session, "support")
        assert ctx.secrets.decrypt(row.password_enc or "") == CANARY + "-2"
        assert row.poll_seconds == 120 and row.route_options == {"split_regex": "^--"}
    changes = [e["detail"] for e in await audit_log(ctx) if e["action"] == "mailbox.set"]
    assert changes == ["password changed", "poll_seconds, split_regex"]  # newest first
    log = await admin.get("/audit")
    assert CANARY not in log.text


async def test_delete_asks_first_then_deletes(
    ctx: Context, admin: WebClient, dovecot: Dovecot
) -> None:
    assert (
        await admin.post("/mailboxes", imap_form(dovecot, auth="password", password="x1"))
    ).status_code == 303
    confirm = await admin.get("/mailboxes/support/delete")
    assert confirm.status_code == 200
    assert "Delete mailbox support?" in confirm.text
    assert (await admin.get("/mailboxes/support")).status_code == 200  # the GET deleted nothing
    deleted = await admin.post("/mailboxes/support/delete")
    assert deleted.status_code == 303 and deleted.headers["location"] == "/mailboxes"
    listed = await admin.get("/mailboxes")
    assert "Mailbox support deleted." in listed.text and "data-mailbox=" not in listed.text
    assert (await admin.get("/mailboxes/support")).status_code == 404
    assert [e["subject"] for e in await audit_log(ctx) if e["action"] == "mailbox.delete"] == [
        "support"
    ]


async def test_an_unknown_mailbox_is_not_found(admin: WebClient) -> None:
    for answer in (
        await admin.get("/mailboxes/nope"),
        await admin.post("/mailboxes/nope", {"host": "x"}),
        await admin.post("/mailboxes/nope/test"),
        await admin.post("/mailboxes/nope/delete"),
    ):
        assert answer.status_code == 404
        assert "No mailbox named 'nope'" in text_of(answer.text, "p.error")
