"""Folder names and LOGIN arguments as the IMAP client writes and reads them (no server)."""

from __future__ import annotations

import pytest

from mailgate.mail.imap import (
    Folder,
    LoginNotSendable,
    Response,
    login_arguments,
    mailbox_name,
    parse_list,
    parse_status,
)


def untagged(text: str, *literals: bytes) -> Response:
    return Response(tag="*", text=text, literals=list(literals))


@pytest.mark.parametrize(
    ("folder", "argument"),
    [
        ("INBOX", "INBOX"),
        ("Anfragen.Bestätigt", '"Anfragen.Best&AOQ-tigt"'),
        ("Anfragen/Bestätigt", '"Anfragen/Best&AOQ-tigt"'),
        ("受信トレイ/処理済み", '"&U9dP4TDIMOwwpA-/&UeZ0Bm4IMH8-"'),
        ("A&B", '"A&-B"'),
        ('[Gmail]/Sent "Mail"', '"[Gmail]/Sent \\"Mail\\""'),
    ],
)
def test_a_folder_goes_to_the_server_in_modified_utf7(folder: str, argument: str) -> None:
    assert mailbox_name(folder) == argument


def test_list_responses_are_decoded() -> None:
    responses = [
        untagged('LIST (\\Noselect \\HasChildren) "." Anfragen'),
        untagged('LIST (\\HasNoChildren) "." "Anfragen.Best&AOQ-tigt"'),
        untagged('LIST (\\HasNoChildren) "/" &U9dP4TDIMOwwpA-/&UeZ0Bm4IMH8-'),
        untagged('LIST () "/" {14}', b'Sent "Mail" &-'),
        untagged('LIST (\\HasNoChildren) NIL "A&-B"'),
        untagged('LIST (\\HasNoChildren) "\\\\" "Back\\\\slash"'),
        Response(tag="M0003", text="OK LIST completed"),
    ]
    assert parse_list(responses) == [
        Folder("Anfragen", "Anfragen", ".", frozenset({"\\Noselect", "\\HasChildren"})),
        Folder("Anfragen.Bestätigt", "Anfragen.Best&AOQ-tigt", ".", frozenset({"\\HasNoChildren"})),
        Folder(
            "受信トレイ/処理済み",
            "&U9dP4TDIMOwwpA-/&UeZ0Bm4IMH8-",
            "/",
            frozenset({"\\HasNoChildren"}),
        ),
        Folder('Sent "Mail" &', 'Sent "Mail" &-', "/", frozenset()),
        Folder("A&B", "A&-B", None, frozenset({"\\HasNoChildren"})),
        Folder("Back\\slash", "Back\\slash", "\\", frozenset({"\\HasNoChildren"})),
    ]
    assert [f.selectable for f in parse_list(responses)] == [False, True, True, True, True, True]


def test_a_name_that_is_not_modified_utf7_is_listed_escaped_not_a_crash() -> None:
    # Sent as raw UTF-8 (a server that ignores RFC 3501 §5.1.3), and as broken base64.
    [raw, broken] = parse_list(
        [
            untagged('LIST () "." "Best\u00e4tigt"'),
            untagged('LIST () "." "&Jjo!"'),
        ]
    )
    assert (raw.name, raw.encoded) == ("Best\\xe4tigt", "Bestätigt")
    assert (broken.name, broken.encoded) == ("&Jjo!", "&Jjo!")


def test_status_items() -> None:
    responses = [
        untagged('STATUS "Anfragen.Best&AOQ-tigt" (MESSAGES 2 UIDNEXT 7 UIDVALIDITY 1700000000)'),
        Response(tag="M0004", text="OK STATUS completed"),
    ]
    assert parse_status(responses) == {
        "MESSAGES": 2,
        "UIDNEXT": 7,
        "UIDVALIDITY": 1700000000,
    }


@pytest.mark.parametrize(
    ("user", "password", "sent"),
    [
        ("alice@example.test", "secret", ['"alice@example.test"', '"secret"']),
        # A quoted string holds " and \ escaped (RFC 3501 §4.3).
        ("alice@example.test", 'a"b\\c', ['"alice@example.test"', '"a\\"b\\\\c"']),
        # Anything not ASCII: a literal of the UTF-8 bytes.
        (
            "alice@example.test",
            'pässwörd€"\\',
            ['"alice@example.test"', 'pässwörd€"\\'.encode()],
        ),
        ("jürgen@example.test", "secret", ["jürgen@example.test".encode(), '"secret"']),
    ],
)
def test_login_arguments(user: str, password: str, sent: list[str | bytes]) -> None:
    assert login_arguments(user, password) == sent


@pytest.mark.parametrize(
    ("user", "password", "what"),
    [
        ("alice@example.test", "line\nbreak", "password"),
        ("alice@example.test", "carriage\rreturn", "password"),
        ("alice@example.test", "nul\0", "password"),
        ("alice\r\n@example.test", "secret", "username"),
    ],
)
def test_a_line_break_or_nul_is_refused_with_a_clear_error(
    user: str, password: str, what: str
) -> None:
    with pytest.raises(LoginNotSendable) as refused:
        login_arguments(user, password)
    assert f"the {what} holds a line break or a NUL character" in str(refused.value)
    assert password not in str(refused.value)
