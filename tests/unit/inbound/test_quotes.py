"""The new part of a reply: quoted history, separators and signatures removed, as the clients
write them in text/plain."""

from __future__ import annotations

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


# The history below these is not `>`-quoted, as many clients send it: the attribution or the
# header block alone has to be recognised.
@pytest.mark.parametrize(
    ("client", "history"),
    [
        (
            "gmail in russian: no verb, the address before the colon",
            "ср, 30 апр. 2025 г. в 15:19, Support <support@example.com>:\n\nстарый текст\n",
        ),
        (
            "android in russian, wrapped inside the address",
            '02.04.2012 14:20 пользователь "support@example.com" <\nsupport@example.com> '
            "написал:\n\nстарый текст\n",
        ),
        (
            "polish",
            "W dniu 2025-01-06 10:15:00 użytkownik Support <support@example.com> napisał:\n\n"
            "stary tekst\n",
        ),
        (
            "polish, other form",
            "Dnia 6 stycznia 2025 10:15 Support <support@example.com> napisał(a):\n\nstary\n",
        ),
        (
            "finnish gmail, wrapped",
            "ma 6. tammikuuta 2025 klo 10.15 Support\n<support@example.com> kirjoitti:\n\nvanha\n",
        ),
        (
            "italian",
            'In data 6 gennaio 2025 10:15:00 "Support" <support@example.com> ha scritto:\n\n'
            "vecchio\n",
        ),
        (
            "norwegian gmail, wrapped before the closing bracket",
            "man. 6. jan. 2025 kl. 10:15 skrev Support <support@example.com\n>:\n\ngammel\n",
        ),
        (
            "gmail with an ISO date",
            "2025-01-06 10:15 GMT+01:00 Support <support@example.com>:\n\nold\n",
        ),
        (
            "time first",
            '10:15 AM, January 6, 2025, "Support" <support@example.com>:\n\nold\n',
        ),
        (
            "mail.ru plain text",
            "Monday, 6 January 2025, 10:15 AM +03:00 from support@example.com "
            "<support@example.com>:\n\nold\n",
        ),
        (
            "wrapped over three lines",
            "On Mon, Jan 6, Support Team\n<support@example.com>\nwrote:\n\nold\n",
        ),
        (
            "'wrote' without a colon",
            "On Mon, 6 Jan 2025 10:15:00 +0100 Support <support@example.com> wrote\n\nold\n",
        ),
        (
            "zoho",
            "---- On Mon, 06 Jan 2025 10:15:00 +0100 support@example.com wrote ----\n\nold\n",
        ),
        ("chinese gmail", "Support <support@example.com> 于2025年1月6日周一 10:15写道：\n\n旧\n"),
        ("japanese gmail", "2025年1月6日(月) 10:15 Support <support@example.com>:\n\n古い\n"),
        (
            "danish separator",
            "-------- Oprindelig besked --------\nFra: Support <s@example.com>\n"
            "Dato: 06.01.2025 10.15 (GMT+01:00)\nTil: Jane\nEmne: x\n\ngammel\n",
        ),
        (
            "french hotmail",
            "De : Support<mailto:s@example.com>\nEnvoyé le :lundi 6 janvier 2025 10:15\n"
            "À : jane@example.org\nObjet :x\n\nvieux\n",
        ),
        (
            "french, 'Message du'",
            '====\n\nMessage du : 06/01/2025 10:15\nDe : "Support " <s@example.com>\n'
            "A : jane@example.org\nCopie à : \nSujet : x\n\nvieux\n",
        ),
        (
            "windows mail in russian",
            "От: Support\nОтправлено: \u200eпонедельник\u200e, 6 января 2025 г. 10:15\n"
            "Кому: Jane\nТема: x\n\nстарый текст\n",
        ),
        (
            "outlook, sender wrapped onto its own line",
            "From: Support Team \n<support@example.com> \nSent: Monday, January 6, 2025 10:15 AM\n"
            "To: Jane\nSubject: x\n\nold\n",
        ),
    ],
)
def test_unquoted_history_is_cut_at_its_attribution_or_header_block(
    client: str, history: str
) -> None:
    reply, quoted = split_reply(f"{NEW}\n\n{history}")
    assert reply == NEW, client
    assert quoted, client


@pytest.mark.parametrize(
    "text",
    [
        "Data: 42 rows\nTo do: check",
        "On Monday we wrote the report:\n- intro\n- results",
        "Meeting on 12.03.2024 at 10:00:\nroom 4, bring the logs",
        "The timestamps we saw:\n2024-01-15 14:30:25\n15.01.2024 14:30\nJan 15, 2024 at 14:30",
        "In 2019 our team wrote:\nthe first version",
        "Please send it to John <john@example.com>:\nthe log file",
        "On the one hand, it works.\n\nOn the other hand, it is slow.",
        "On 5 May we met.\nJohn then wrote:\nthe notes",
        "From: Berlin\nTo: Paris\nTrain at 10:15",
        "Q: Which version?\nA: 4.2",
        "## Key points\n----\n\n1. faster\n\n====\n\nThe end.",
        # A time and a verb, but no address and no quote below: the sender's own account.
        "Hello,\n\nOn 5 May at 10:00 my colleague wrote:\n\nThe server is down.\nPlease call.",
        "Am Montag um 10:00 schrieb mein Chef:\nBitte sofort prüfen!\n\nDanke",
        # A header block needs the time it was sent, or a subject too.
        "Hi,\n\nMy flight:\nFrom: Berlin\nTo: Paris\nDate: 5 May\n\nPlease change the seat.",
        "Summary\n______________________________\nFrom: the logs I see errors.\nSee above.",
    ],
)
def test_ordinary_text_is_not_taken_for_history(text: str) -> None:
    assert split_reply(text) == (text, False)


@pytest.mark.parametrize(
    ("text", "reply"),
    [
        (
            "Answers below.\n\nOn Mon, 6 Jan 2025 at 10:15, Support <s@example.com> wrote:\n"
            "> What version?\n2.3.1\n> Which OS?\nWindows 11\n",
            "Answers below.\n\n2.3.1\n> Which OS?\nWindows 11",
        ),
        (
            "See my answer at the end.\n\nOn 1/6/25 10:15, Support wrote:\n> question?\n\n"
            "It is 4.2.\n",
            "See my answer at the end.\n\nIt is 4.2.",
        ),
    ],
)
def test_text_written_below_a_quote_is_kept_under_an_opening_line(text: str, reply: str) -> None:
    # Losing what the sender wrote is worse than leaving a quote in.
    assert split_reply(text) == (reply, True)


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


ATTRIBUTION_LIKE = "On 10:15 the way to work I saw" + " word" * 35


# Inputs big enough that a quadratic scan would take minutes: that they finish at all, with the
# right output, is the check (machines are too noisy to assert times; bench/ measures them).
@pytest.mark.parametrize(
    "text",
    [
        "On" + " x y" * 250_000,
        "10:15 " + "-" * 1_000_000 + " wrote:",
        "On 10:15 " + "<a@b " * 200_000 + ">:",
        "\n".join([ATTRIBUTION_LIKE] * 100_000),
        "\n".join(["From: someone at 10:15"] * 100_000),
        "\n".join(["On 1 2 3 <a@b"] * 100_000),
    ],
    ids=[
        "1 MB line",
        "1 MB run of dashes",
        "1 MB of address-like pieces",
        "100k attribution-like lines",
        "100k header-like lines",
        "100k wrap candidates",
    ],
)
def test_hostile_text_is_kept_whole(text: str) -> None:
    assert split_reply(text) == (text, False)


def test_a_hundred_thousand_quoted_lines_leave_nothing() -> None:
    assert split_reply("\n".join(["> quoted line " * 5] * 100_000)) == ("", True)


def test_history_starting_past_the_scanned_lines_is_left_in_place() -> None:
    # The scan for history stops after a bounded number of lines, so its cost does not grow
    # with the message; a reply that long is not a reply to quote-strip.
    text = "\n".join(["a line of new text"] * 6_000)
    history = "On Mon, Jan 6, 2025 at 10:15 AM Support <support@example.com> wrote:\n\nold"
    reply, quoted = split_reply(f"{text}\n{history}")
    assert reply.endswith("old")
    assert not quoted
