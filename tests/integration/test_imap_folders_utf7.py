"""Folders whose names are not ASCII, against the real Dovecot: the admin gives them as mail
clients show them, mailgate speaks modified UTF-7 (RFC 3501 §5.1.3) to the server, and what the
server lists is shown decoded. Dovecot's own tool (`doveadm`) names folders in UTF-8, so it is
the independent side of each check. The test Dovecot's hierarchy separator is "." (Maildir++)."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager

import pytest
from tests.support.dovecot import Dovecot
from tests.support.emulator import RunningEmulator
from tests.support.mail import ALICE, message, with_mailbox

from mailgate.context import Context
from mailgate.errors import BadInput
from mailgate.inbound.mailboxes import MailboxOptions, add_mailbox, set_mailbox
from mailgate.mail.imap import ImapClient
from mailgate.runtime.imap_mailbox import poll_once
from mailgate.runtime.probe import probe
from mailgate.tracker.service import add_project

INQUIRIES = "Anfragen.Bestätigt"
DONE = "受信トレイ.処理済み"
AMPERSAND = "Fragen & Antworten"


def imap(dovecot: Dovecot) -> AbstractAsyncContextManager[ImapClient]:
    return ImapClient.connect(
        "127.0.0.1", dovecot.imaps_port, security="ssl", tls=dovecot.ssl_context()
    )


async def test_folders_made_by_the_server_are_listed_selected_and_moved_into(
    dovecot: Dovecot,
) -> None:
    for folder in (INQUIRIES, DONE, AMPERSAND):
        dovecot.create_folder(ALICE, folder)
    dovecot.deliver(ALICE, message("one"), folder=INQUIRIES)
    dovecot.deliver(ALICE, message("two"), folder=INQUIRIES)
    async with imap(dovecot) as client:
        await client.login(ALICE, "alice-password")
        listed = {f.name: f for f in await client.list_folders()}
        assert {INQUIRIES, DONE, AMPERSAND, "INBOX"} <= set(listed)
        assert listed[INQUIRIES].encoded == "Anfragen.Best&AOQ-tigt"
        assert listed[AMPERSAND].encoded == "Fragen &- Antworten"
        assert not listed["Anfragen"].selectable  # a level of the hierarchy only
        assert (await client.status(INQUIRIES)) == {"MESSAGES": 2}
        selected = await client.select(INQUIRIES)
        assert selected.exists == 2
        [first, second] = await client.uid_search("ALL")
        await client.move(first, DONE)
        client.capabilities.discard("MOVE")  # COPY + \Deleted + UID EXPUNGE
        await client.move(second, AMPERSAND)
        assert await client.uid_search("ALL") == []
    assert dovecot.mailbox_status(ALICE, INQUIRIES)["messages"] == 0
    assert dovecot.mailbox_status(ALICE, DONE)["messages"] == 1
    assert dovecot.mailbox_status(ALICE, AMPERSAND)["messages"] == 1


async def test_folders_mailgate_creates_have_their_unicode_names_on_the_server(
    dovecot: Dovecot,
) -> None:
    async with imap(dovecot) as client:
        await client.login(ALICE, "alice-password")
        for folder in ("Kunden", "Kunden.Müller & Söhne", "Kunden.😀", "Ärger"):
            await client.create(folder)
    on_the_server = set(dovecot.doveadm("mailbox", "list", "-u", ALICE).split("\n"))
    assert {"Kunden.Müller & Söhne", "Kunden.😀", "Ärger"} <= on_the_server


async def test_a_mailbox_reads_a_unicode_folder_and_moves_mail_into_another(
    ctx: Context, emulator: RunningEmulator, dovecot: Dovecot
) -> None:
    dovecot.create_folder(ALICE, INQUIRIES)
    dovecot.create_folder(ALICE, DONE)
    dovecot.deliver(ALICE, message("in the inbox"))
    dovecot.deliver(ALICE, message("Drucker kaputt"), folder=INQUIRIES)
    await with_mailbox(
        ctx, emulator, dovecot, folder=INQUIRIES, after=f"move:{DONE}", backlog="all"
    )
    report = await poll_once(ctx, "support")
    assert len(report.taken) == 1
    assert dovecot.mailbox_status(ALICE, INQUIRIES)["messages"] == 0
    assert dovecot.mailbox_status(ALICE, DONE)["messages"] == 1
    # The support's reader (Python's imaplib) takes the folder as the server names it.
    [moved] = dovecot.messages(ALICE, "&U9dP4TDIMOwwpA-.&UeZ0Bm4IMH8-")
    assert b"Subject: Drucker kaputt" in moved
    assert dovecot.mailbox_status(ALICE, "INBOX")["messages"] == 1  # another folder: untouched


async def test_mailbox_test_names_the_folders_there_when_one_is_missing(
    ctx: Context, emulator: RunningEmulator, dovecot: Dovecot
) -> None:
    dovecot.create_folder(ALICE, INQUIRIES)
    await with_mailbox(ctx, emulator, dovecot, folder="Anfragen.Bestatigt")  # a typo
    result = await probe(ctx, "support")
    select = next(s for s in result.steps if s.step == "select")
    assert not select.ok
    assert "Mailbox doesn't exist: Anfragen.Bestatigt" in select.detail
    assert f"the server has: {INQUIRIES}, INBOX" in select.detail  # decoded, as typed

    await set_mailbox(ctx, "support", MailboxOptions(folder=INQUIRIES, after=f"move:{DONE}"))
    result = await probe(ctx, "support")
    select = next(s for s in result.steps if s.step == "select")
    assert not select.ok
    assert f"the folder {DONE} that mail is moved to (--after move:{DONE}) cannot" in select.detail

    dovecot.create_folder(ALICE, DONE)
    result = await probe(ctx, "support")
    assert result.ok, result.as_json()
    select = next(s for s in result.steps if s.step == "select")
    assert select.detail.startswith(f"{INQUIRIES}: 0 message(s)")
    assert select.detail.endswith(f"taken mail is moved to {DONE}")


async def password_mailbox(ctx: Context) -> None:
    """A mailbox no test here connects to: what is checked is what the admin gives."""
    await add_project(ctx, "HELP", "Help desk")
    options = MailboxOptions(
        protocol="imap", host="127.0.0.1", username=ALICE, password="secret", project="HELP"
    )
    await add_mailbox(ctx, "support", options)


@pytest.mark.parametrize(
    ("options", "option"),
    [({"folder": "Anfr\nagen"}, "--folder"), ({"after": "move:Do\rne"}, "--after move:FOLDER")],
)
async def test_a_folder_no_server_has_is_refused_when_given(
    ctx: Context, options: dict[str, str], option: str
) -> None:
    await password_mailbox(ctx)
    with pytest.raises(BadInput) as refused:
        await set_mailbox(ctx, "support", MailboxOptions(**options))  # type: ignore[arg-type]
    assert "cannot be an IMAP folder's name (it holds the control character" in str(refused.value)
    assert option in str(refused.value)


async def test_a_password_no_login_can_send_is_refused_when_given(ctx: Context) -> None:
    await password_mailbox(ctx)
    with pytest.raises(BadInput) as refused:
        await set_mailbox(ctx, "support", MailboxOptions(password="first line\nsecond line"))
    assert "The password holds a line break or a NUL character" in str(refused.value)
    assert "first line" not in str(refused.value)


async def test_a_folder_given_in_its_encoded_form_is_warned_of(ctx: Context) -> None:
    await password_mailbox(ctx)
    _, warnings = await set_mailbox(ctx, "support", MailboxOptions(folder="Anfragen.Best&AOQ-tigt"))
    assert warnings == [
        "The folder Anfragen.Best&AOQ-tigt looks like the encoded form of Anfragen.Bestätigt: "
        "mailgate encodes names itself, so give Anfragen.Bestätigt if that is the folder meant."
    ]
