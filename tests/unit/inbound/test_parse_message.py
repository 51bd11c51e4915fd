"""parse_message as the pipeline and `mailgate parse --json` use it: the contract's fields,
header edge cases, MIME edge cases, and inputs that must not make it raise."""

from __future__ import annotations

import base64
import dataclasses
import json
from datetime import UTC, datetime, timedelta, timezone
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

import pytest

from mailgate.inbound.parse import InboundMessage, parse_message

CORPUS = Path(__file__).resolve().parents[2] / "data" / "mail"
CONTRACT_FIELDS = {
    "file",
    "message_id",
    "subject",
    "from",
    "to",
    "cc",
    "date",
    "in_reply_to",
    "references",
    "issue_keys",
    "body_text",
    "reply_text",
    "attachments",
    "automated",
}


def _message(headers: str, body: str = "Hello.\n") -> bytes:
    return (headers.strip("\n") + "\n\n" + body).encode("utf-8")


def test_json_has_the_contract_fields_with_their_types() -> None:
    message = parse_message((CORPUS / "outlook-reply.eml").read_bytes())
    data = message.as_json("outlook-reply.eml")
    assert data.keys() >= CONTRACT_FIELDS
    json.dumps(data)  # plain JSON types only: the bytes of attachments are not in it
    assert data["file"] == "outlook-reply.eml"
    assert set(data["from"]) == {"name", "address"}
    assert all(isinstance(address, str) for address in data["to"] + data["cc"])
    assert datetime.fromisoformat(data["date"]).tzinfo is not None
    (attachment,) = data["attachments"]
    assert {"filename", "content_type", "size", "inline", "content_id"} == attachment.keys()
    assert message.attachments[0].data.startswith(b"%PDF")
    assert attachment["size"] == len(message.attachments[0].data)


def test_the_message_is_immutable_and_offers_the_handlers_accessors() -> None:
    message = parse_message((CORPUS / "gmail-reply.eml").read_bytes())
    with pytest.raises(dataclasses.FrozenInstanceError):
        message.subject = "changed"  # type: ignore[misc]
    assert message.from_address == "jane.doe@example.org"
    assert message.from_name == "Jane Doe"
    assert message.authentication == "spf=pass dkim=pass dmarc=pass"
    assert message.header("delivered-to") == "support@example.com"
    assert message.header("X-Not-There") is None
    assert len(message.header_values("Received")) == 2
    assert message.authentication_results[0].startswith("mx.example.com; dkim=pass")


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\x00" * 64,
        b"\r\n\r\n\r\n",
        b"Subject: only a header",
        b"From: <>\nTo: ,,,\nCc: undisclosed-recipients:;\nDate: yesterday\n\n",
        b"Content-Type: multipart/mixed; boundary=x\n\n--x\nContent-Type: text/plain\n",
        b"Content-Type: multipart/mixed\n\nno boundary at all",
        b"Content-Type: text/plain; charset=\x00\xff\n\nbody",
        b"Subject: =?utf-8?B?\xff\xfe?=\n\n",
        bytes(range(256)) * 4,
    ],
)
def test_hostile_input_gives_a_message_not_an_exception(raw: bytes) -> None:
    message = parse_message(raw)
    assert isinstance(message, InboundMessage)
    assert "\n" not in message.subject and "\r" not in message.subject
    json.dumps(message.as_json("x.eml"))


def test_bytes_like_input_is_accepted() -> None:
    raw = _message("Subject: hi")
    assert parse_message(bytearray(raw)).subject == "hi"
    assert parse_message(memoryview(raw)).subject == "hi"


def test_multiparts_nested_past_the_limit_are_kept_whole_as_one_file() -> None:
    depth = 3000
    head = "".join(
        f"Content-Type: multipart/mixed; boundary=b{i}\n\n--b{i}\n" for i in range(depth)
    )
    raw = ("Subject: deep\n" + head + "Content-Type: text/plain\n\ninnermost\n").encode()
    message = parse_message(raw)
    assert message.subject == "deep"
    [kept] = message.attachments
    assert kept.content_type == "multipart/mixed"
    assert kept.data.startswith(b"--b32\n") and kept.data.endswith(b"\n\ninnermost\n")
    assert "a multipart without a usable boundary, or nested too deeply, was kept as a file" in (
        message.defects
    )


def test_raw_utf8_headers_rfc6532_are_read_as_utf8() -> None:
    raw = "From: Jürgen Weiß <j@example.org>\nSubject: Grüße – HELP-7\n\nx".encode()
    message = parse_message(raw)
    assert message.subject == "Grüße – HELP-7"
    assert message.from_name == "Jürgen Weiß"
    assert message.issue_keys == ("HELP-7",)


def test_raw_latin1_headers_fall_back_to_windows_1252() -> None:
    raw = "Subject: Grüße\n\nx".encode("latin-1")
    assert parse_message(raw).subject == "Grüße"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (
            "Mon, 6 Jan 2025 11:30:54 +0100",
            datetime(2025, 1, 6, 11, 30, 54, tzinfo=timezone(timedelta(hours=1))),
        ),
        ("Mon, 6 Jan 2025 11:30:54 -0000", datetime(2025, 1, 6, 11, 30, 54, tzinfo=UTC)),
        ("6 Jan 2025 11:30:54 GMT", datetime(2025, 1, 6, 11, 30, 54, tzinfo=UTC)),
        ("not a date", None),
        ("Mon, 99 Foo 20250 99:99:99 +9999", None),
    ],
)
def test_dates_are_timezone_aware_or_none(value: str, expected: datetime | None) -> None:
    message = parse_message(_message(f"Date: {value}"))
    assert message.date == expected
    if message.date is not None:
        assert message.date.tzinfo is not None


def test_ids_lose_their_brackets_and_comments() -> None:
    message = parse_message(
        _message(
            "Message-ID:   <abc@example.org>  \n"
            "In-Reply-To: <parent@example.org> (Jane's message of Monday)\n"
            "References: <a@x> <b@x>\n <a@x>\tc@x"
        )
    )
    assert message.message_id == "abc@example.org"
    assert message.in_reply_to == "parent@example.org"
    assert message.references == ("a@x", "b@x")


def test_references_without_brackets_are_split_on_white_space() -> None:
    assert parse_message(_message("References: a@x b@x")).references == ("a@x", "b@x")


def test_missing_from_gives_no_reporter_and_says_why_even_with_a_sender() -> None:
    # RFC 5322 §3.6.2: Sender names the agent that sent the message, not its author.
    message = parse_message(_message("Sender: S <S@Example.org>"))
    assert message.from_ == message.from_.__class__(None, "")
    assert message.from_problem == "the message has no From header"
    data = parse_message(_message("Subject: x")).as_json("f")
    assert data["from"] == {"name": None, "address": ""}
    assert data["from_problem"] == "the message has no From header"


def test_a_usable_from_has_no_problem() -> None:
    message = parse_message(_message("From: Jane <Jane@Example.org>"))
    assert (message.from_address, message.from_problem) == ("jane@example.org", None)
    assert message.as_json("f")["from_problem"] is None


def test_groups_and_empty_entries_in_address_lists() -> None:
    message = parse_message(
        _message("To: Team: A <A@x.org>, b@X.org;, undisclosed-recipients:;\nCc: ,, C@x.org")
    )
    assert message.to == ("a@x.org", "b@x.org")
    assert message.cc == ("c@x.org",)


def test_issue_keys_in_order_once_and_only_whole_keys() -> None:
    subject = "RE: [HELP-12] and OPS_2-7, help-3, XHELP-1, A-1, HELP-12, (BILL-9)"
    message = parse_message(_message(f"Subject: {subject}"))
    assert message.issue_keys == ("HELP-12", "OPS_2-7", "XHELP-1", "BILL-9")


def test_authentication_results_verdicts() -> None:
    message = parse_message(
        _message(
            "Authentication-Results: mx.example.com (comment; with = signs);\n"
            " dkim=fail (bad sig) header.d=a.org; dkim=pass header.d=b.org;\n"
            " spf=softfail smtp.mailfrom=x; dmarc=none header.from=x\n"
            "Authentication-Results: evil.example; spf=pass; dmarc=pass"
        )
    )
    assert (message.auth.authserv_id, message.auth.spf, message.auth.dkim, message.auth.dmarc) == (
        "mx.example.com",
        "softfail",
        "pass",
        "none",
    )
    assert message.auth.dmarc_domain == "x"
    assert len(message.authentication_results) == 2


def test_a_from_in_another_domain_than_the_providers_dmarc_check_has_no_reporter() -> None:
    # The receiving provider names the From domain its DMARC check judged (RFC 7489 §11.2).
    # Another one means it read the From header otherwise than mailgate: its verdict is no
    # verdict on the address mailgate would take for the reporter.
    message = parse_message(
        _message(
            "Authentication-Results: mx.example.com; dmarc=pass header.from=attacker.test\n"
            "From: CEO <ceo@victim.test>"
        )
    )
    assert message.from_address == ""
    assert message.from_problem == (
        "the receiving provider checked the From domain attacker.test, not victim.test"
    )


@pytest.mark.parametrize(
    "checked", ["victim.test", "VICTIM.test.", "sub.victim.test", "x.sub.victim.test"]
)
def test_the_providers_dmarc_domain_or_its_parent_or_child_is_the_from_domain(checked: str) -> None:
    message = parse_message(
        _message(
            f"Authentication-Results: mx.example.com; dmarc=pass header.from={checked}\n"
            "From: CEO <ceo@sub.victim.test>"
        )
    )
    assert (message.from_address, message.from_problem) == ("ceo@sub.victim.test", None)


def test_text_parts_in_a_mixed_message_join_in_order_and_html_parts_become_text() -> None:
    outer = EmailMessage()
    outer["Subject"] = "parts"
    outer.set_content("First part.")
    outer.add_attachment(b"\x89PNG", maintype="image", subtype="png", filename="a.png")
    outer.add_attachment("<p>Second <b>part</b>.</p>", subtype="html", disposition="inline")
    outer.add_attachment("Third part.", disposition="inline")
    message = parse_message(outer.as_bytes())
    assert message.body_text == "First part.\n\nSecond part.\n\nThird part."
    assert [a.filename for a in message.attachments] == ["a.png"]


def test_a_text_file_is_an_attachment_not_body() -> None:
    outer = EmailMessage()
    outer.set_content("Body.")
    outer.add_attachment("log line\n", filename="app.log")
    message = parse_message(outer.as_bytes())
    assert message.body_text == "Body."
    assert [(a.filename, a.content_type, a.data) for a in message.attachments] == [
        ("app.log", "text/plain", b"log line\n")
    ]


def test_a_base64_encoded_forwarded_message_is_decoded() -> None:
    inner = b"Subject: inner\r\n\r\nforwarded body\r\n"
    raw = (
        b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n"
        b"see attached\r\n--b\r\nContent-Type: message/rfc822\r\nContent-Transfer-Encoding: "
        b"base64\r\n\r\n" + base64.encodebytes(inner) + b"--b--\r\n"
    )
    message = parse_message(raw)
    (attachment,) = message.attachments
    assert attachment.content_type == "message/rfc822"
    assert parse_message(attachment.data).body_text == "forwarded body"


def test_read_receipts_are_classified() -> None:
    raw = _message(
        "Subject: Read: [HELP-1] x\nContent-Type: multipart/report; "
        "report-type=disposition-notification; boundary=r",
        "--r\nContent-Type: text/plain\n\nRead.\n--r\n"
        "Content-Type: message/disposition-notification\n\nDisposition: manual-action/MDN-sent-manually; displayed\n--r--\n",
    )
    assert parse_message(raw).automated == "auto-reply"


def _without_plain_alternative(raw: bytes) -> bytes | None:
    message = BytesParser(policy=policy.default).parsebytes(raw)
    changed = False
    for part in message.walk():
        if part.get_content_type() == "multipart/alternative":
            children = part.get_payload()
            assert isinstance(children, list)
            kept = [
                child
                for child in children
                if not isinstance(child, str) and child.get_content_type() != "text/plain"
            ]
            if len(kept) < len(children):
                part.set_payload(kept)
                changed = True
    return message.as_bytes() if changed else None


REPLIES = [
    path for path in sorted(CORPUS.glob("*.eml")) if _without_plain_alternative(path.read_bytes())
]


@pytest.mark.parametrize("path", REPLIES, ids=[path.stem for path in REPLIES])
def test_the_html_alone_gives_the_same_reply_as_the_plain_text(path: Path) -> None:
    """Each client's HTML quote containers, cut before the HTML becomes text, leave the same
    new text as the plain-text rules find in its text/plain alternative."""
    raw = path.read_bytes()
    html_only = _without_plain_alternative(raw)
    assert html_only is not None
    from_plain = parse_message(raw).reply_text
    from_html = parse_message(html_only).reply_text
    assert " ".join(from_html.split()) == " ".join(from_plain.split())


# --- bounded cost: inputs the stdlib's parsers took minutes over (asserted on what survives) ---


def test_a_hundred_thousand_header_fields_keep_the_first_thousand() -> None:
    raw = _message("From: a@x.test\n" + "X-Junk: y\n" * 100_000 + "Subject: too late")
    message = parse_message(raw)
    assert (message.from_address, message.subject, message.body_text) == ("a@x.test", "", "Hello.")
    assert len(message.headers) == 1000
    assert "more than 1000 header fields; the rest were ignored" in message.defects


def test_a_five_megabyte_subject_of_encoded_words_is_cut() -> None:
    message = parse_message(
        _message("Subject: " + "=?utf-8?q?abc?= " * 330_000 + "\nFrom: a@x.test")
    )
    assert message.subject.startswith("abcabc") and len(message.subject) < 65536
    assert set(message.subject) == {"a", "b", "c"}
    assert message.from_address == "a@x.test"
    assert "the Subject header is longer than 65536 bytes; it was cut" in message.defects


def test_a_five_megabyte_references_header_is_cut() -> None:
    ids = " ".join(f"<id{n}@x.test>" for n in range(400_000))
    message = parse_message(_message(f"References: {ids}\nIn-Reply-To: <id7@x.test>"))
    assert message.references[:2] == ("id0@x.test", "id1@x.test")
    assert 1000 < len(message.references) < 6000
    assert message.in_reply_to == "id7@x.test"


def test_a_megabyte_message_id_is_no_id() -> None:
    message = parse_message(
        _message("Message-ID: <" + "a" * 1_000_000 + "@x.test>\nFrom: a@x.test")
    )
    assert message.message_id is None
    assert "Message-ID: no id of at most 998 characters" in message.defects


@pytest.mark.parametrize(
    ("from_", "address"),
    [
        ("a@x.test " + "(" * 1_000_000, "a@x.test"),
        ('"' + "\\" * 1_000_000 + '" <a@x.test>', ""),
        ('"' + "x " * 65_536 + '" <a@x.test>', ""),
    ],
)
def test_a_megabyte_from_reads_in_one_pass(from_: str, address: str) -> None:
    message = parse_message(_message(f"From: {from_}\nSubject: s"))
    assert (message.from_address, message.subject) == (address, "s")
    assert (message.from_problem is None) == bool(address)


def test_a_megabyte_cc_of_encoded_words_keeps_a_thousand_addresses() -> None:
    cc = ", ".join(f"=?utf-8?q?x?= <q{n}@b.test>" for n in range(40_000))
    message = parse_message(_message(f"From: a@x.test\nCc: {cc}"))
    assert message.cc == tuple(f"q{n}@b.test" for n in range(1000))
    assert "Cc: more than 1000 addresses; the rest were ignored" in message.defects


@pytest.mark.parametrize(
    ("written", "name"),
    [
        ("invoice\u202efdp.exe", "invoicefdp.exe"),  # shown as "invoiceexe.pdf"
        ("report\u2066.pdf\u2069.exe", "report.pdf.exe"),
        ("=?utf-8?q?scan=E2=80=AEfdp.scr?=", "scanfdp.scr"),
        ("ok\u200b.pdf", "ok.pdf"),
    ],
)
def test_a_file_name_never_shows_another_extension_than_its_own(written: str, name: str) -> None:
    # Bidirectional overrides and invisible characters let a program pass for a document.
    raw = _message(
        "Content-Type: multipart/mixed; boundary=b",
        f"--b\nContent-Type: application/octet-stream\nContent-Disposition: attachment; "
        f'filename="{written}"\n\nMZ\n--b--\n',
    )
    (attachment,) = parse_message(raw).attachments
    assert attachment.filename == name


def test_a_ten_megabyte_file_name_is_cut() -> None:
    raw = _message(
        "Content-Type: multipart/mixed; boundary=b",
        "--b\nContent-Type: text/plain\n\nsee file\n--b\nContent-Type: application/pdf\n"
        'Content-Disposition: attachment; filename="' + "A" * 10_000_000 + '.pdf"\n\n%PDF\n--b--\n',
    )
    message = parse_message(raw)
    assert message.body_text == "see file"
    (attachment,) = message.attachments
    assert attachment.filename == "A" * 255
    assert (
        "Content-Disposition: value longer than 16384 characters; the rest was ignored"
        in message.defects
    )


@pytest.mark.parametrize("parameter", ["a;" * 5000, 'x="y";' * 1700, "(" * 10_000])
def test_a_thousand_parts_each_with_a_ten_kilobyte_parameter(parameter: str) -> None:
    parts = "".join(
        f"--b\nContent-Type: application/octet-stream; n={n}; {parameter}\n"
        f'Content-Disposition: attachment; filename="f{n}.bin"; {parameter}\n\n{n}\n'
        for n in range(1000)
    )
    message = parse_message(
        _message("Content-Type: multipart/mixed; boundary=b", parts + "--b--\n")
    )
    assert [attachment.filename for attachment in message.attachments] == [
        f"f{n}.bin" for n in range(1000)
    ]
    assert [attachment.data for attachment in message.attachments[:2]] == [b"0", b"1"]


# --- malformed header blocks read as mature readers read them ---------------------------------


def test_a_header_continued_on_unindented_lines_keeps_from_and_subject() -> None:
    raw = (
        b"Received: from a.example (1.1.1.1)\n"
        b"by b.example with SMTP; 5 Apr 2017 07:45:30 -0000\n"
        b'From: "Smith, Karoline, Example DE" <Karoline.Smith@example.com>\n'
        b"Subject: AW: One Net Business\nContent-Type: multipart/alternative;\n"
        b'boundary="xyz"\nMIME-Version: 1.0\n\n--xyz\nContent-Type: text/plain\n\nsome text\n--xyz--\n'
    )
    message = parse_message(raw)
    assert (message.from_name, message.from_address, message.subject, message.body_text) == (
        "Smith, Karoline, Example DE",
        "karoline.smith@example.com",
        "AW: One Net Business",
        "some text",
    )


def test_a_forwarding_tools_first_line_does_not_hide_the_header() -> None:
    raw = b"---- Original email message ----\r\nSubject: Contact\r\nFrom: x@y.test\r\n\r\nText\r\n"
    message = parse_message(raw)
    assert (message.subject, message.from_address, message.body_text) == (
        "Contact",
        "x@y.test",
        "Text",
    )
