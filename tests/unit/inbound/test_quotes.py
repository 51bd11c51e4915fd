"""The new part of a reply: quoted history, separators and signatures removed, as the clients
write them in text/plain."""

from __future__ import annotations

import time

import pytest

from mailgate.inbound.quotes import split_reply, strip_quoted

NEW = "Thanks, that works.\n\nJane"


@pytest.mark.parametrize(
    ("client", "history"),
    [
        (
            "gmail",
            "On Mon, Jan 6, 2025 at 10:15\u202fAM Support <support@example.com> wrote:\n\n> old\n",
        ),
        (
            "gmail, attribution wrapped",
            "On Mon, Jan 6, 2025 at 10:15 AM Very Long Support Team Name <\n"
            "support@example.com> wrote:\n\n> old\n",
        ),
        ("apple mail", "> On 7 Jan 2025, at 10:20, Support <s@example.com> wrote:\n> \n> old\n"),
        ("thunderbird", "On 07.01.25 17:30, Support wrote:\n> old\n"),
        (
            "outlook",
            "________________________________\nFrom: Support <s@example.com>\n"
            "Sent: Monday, January 6, 2025 10:15 AM\nTo: Jane <j@example.org>\n"
            "Subject: [HELP-1] x\n\nold\n",
        ),
        (
            "outlook desktop",
            "From: Support <s@example.com> \nSent: Monday, January 6, 2025 10:15 AM\n"
            "To: Jane\nSubject: x\n\nold\n",
        ),
        ("outlook, old style", "-----Original Message-----\nFrom: Support\nSent: x\n\nold\n"),
        (
            "german gmail",
            "Am Mo., 6. Jan. 2025 um 10:15\u00a0Uhr schrieb Support <\nsupport@example.com>:\n\n"
            "> alt\n",
        ),
        ("german thunderbird", "Am 06.01.25 um 10:15 schrieb Support:\n> alt\n"),
        (
            "german outlook",
            "Von: Support <s@example.com>\nGesendet: Montag, 6. Januar 2025 10:15\n"
            "An: Jane\nBetreff: x\n\nalt\n",
        ),
        ("german, old style", "-----Ursprüngliche Nachricht-----\nVon: Support\n\nalt\n"),
        (
            "french gmail",
            "Le lun. 6 janv. 2025 à 10:15, Support <support@example.com> a\n"
            "écrit\u00a0:\n\n> vieux\n",
        ),
        (
            "french apple mail",
            "> Le 6 janv. 2025 à 10:15, Support <s@example.com> a écrit :\n> vieux\n",
        ),
        (
            "french outlook",
            "De\u00a0: Support <s@example.com>\nEnvoyé\u00a0: lundi 6 janvier 2025 10:15\n"
            "À\u00a0: Jane\nObjet\u00a0: x\n\nvieux\n",
        ),
        ("spanish", "El lun, 6 ene 2025 a las 10:15, Support (<s@example.com>) escribió:\n> x\n"),
        ("gmail forward", "---------- Forwarded message ---------\nFrom: Shop <s@example.net>\n"),
        ("apple forward", "Begin forwarded message:\n\nFrom: Shop <s@example.net>\n"),
    ],
)
def test_history_is_cut(client: str, history: str) -> None:
    reply, quoted = split_reply(f"{NEW}\n\n{history}")
    assert reply == NEW, client
    assert quoted, client


def test_bottom_posted_reply_keeps_the_text_below_the_quote() -> None:
    text = "On 1/6/25 10:15, Support wrote:\n> question?\n> more\n\nMy answer below.\n"
    assert strip_quoted(text) == "My answer below."


def test_a_message_that_is_only_quote_has_no_new_text() -> None:
    assert strip_quoted("On 1/6/25 10:15, Support wrote:\n> question?\n") == ""


def test_trailing_quote_block_and_its_attribution_go() -> None:
    assert strip_quoted("Fine now.\n\nSupport wrote:\n> old\n>\n") == "Fine now."


def test_inline_answers_between_quotes_are_kept() -> None:
    text = "> Which version?\n4.2\n> Which OS?\nLinux\n"
    assert strip_quoted(text) == "> Which version?\n4.2\n> Which OS?\nLinux"


@pytest.mark.parametrize(
    "tail",
    [
        "\n-- \nJane Doe\nACME Corp",
        "\n--\nJane Doe",
        "\n\nSent from my iPhone",
        "\n\nGet Outlook for iOS",
        "\n\nVon meinem iPhone gesendet",
        "\n\nEnvoyé de mon iPhone",
    ],
)
def test_signatures_and_mobile_footers_go(tail: str) -> None:
    assert strip_quoted(NEW + tail) == NEW


def test_indentation_and_ordinary_colons_survive() -> None:
    text = "Data: 42 rows\nTo do: check\n\n    indented code\n\nThanks,\nJane"
    reply, quoted = split_reply(text)
    assert reply == text
    assert not quoted


def test_crlf_input_gives_lf_output() -> None:
    assert strip_quoted("Hi\r\n\r\nOn Mon, Support wrote:\r\n> x\r\n") == "Hi"


@pytest.mark.parametrize(
    "text",
    [
        "\n".join(["On 10:15 the way to work I saw " + "word " * 35] * 5000),
        "On " + "x y " * 250_000,
        "\n".join(["> quoted line " * 5] * 50_000),
    ],
    ids=["many attribution-like lines", "one huge line", "many quoted lines"],
)
def test_hostile_text_is_bounded(text: str) -> None:
    started = time.perf_counter()
    strip_quoted(text)
    assert time.perf_counter() - started < 3
