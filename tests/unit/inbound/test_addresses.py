"""Address headers as RFC 5322 reads them: the reporter is the From mailbox's addr-spec, never
text from a display name; groups, obsolete syntax, quoted local parts, IDN and UTF-8 addresses;
bounded cost on hostile headers (asserted on what survives, never on time)."""

from __future__ import annotations

import base64
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailgate.inbound.addresses import (
    MAX_ADDRESSES,
    MAX_ENTRY,
    MAX_HEADER,
    author,
    parse_address_list,
    recipients,
)
from mailgate.inbound.parse import parse_message

# The shape every usable address has: a dot-atom or quoted local part, "@", and a dotted
# domain of letters, digits, "-", "_" or non-ASCII, or an address literal; lower-case.
STRICT = re.compile(
    r"""^(?:[a-z0-9!#$%&'*+\-/=?^_`{|}~\u0080-\U0010ffff]+(?:\.[a-z0-9!#$%&'*+\-/=?^_`{|}~\u0080-\U0010ffff]+)*
       |"(?:[^"\\\x00-\x1f\x7f]|\\["\\])*")
       @(?:[a-z0-9_\u0080-\U0010ffff][a-z0-9_\-\u0080-\U0010ffff]*(?:\.[a-z0-9_\u0080-\U0010ffff][a-z0-9_\-\u0080-\U0010ffff]*)+
       |\[[^\[\]\\\x00-\x1f\x7f]+\])$""",
    re.X,
)


def _from(value: str) -> tuple[str | None, str, str | None]:
    mailbox, problem, _ = author([value])
    return mailbox.name, mailbox.address, problem


def _message(headers: str) -> bytes:
    return (headers + "\n\nHello.\n").encode("utf-8")


# --- the three spoofing forms -----------------------------------------------------------------


def test_an_address_inside_an_encoded_word_stays_in_the_name() -> None:
    raw = _message("From: =?utf-8?q?Eve=0D=0ATo:_victim3@evil.test?= <eve@attacker.test>")
    message = parse_message(raw)
    assert message.from_address == "eve@attacker.test"
    assert message.from_name == "Eve To: victim3@evil.test"  # one line: no CR, no LF
    assert message.from_problem is None


def test_a_group_in_from_is_no_reporter() -> None:
    message = parse_message(_message("From: Eve: ceo@victim-corp.test; <attacker@attacker.test>"))
    assert message.from_address == ""
    assert message.from_problem == "the From header holds a group, not a mailbox"


def test_an_address_as_display_name_is_only_a_name() -> None:
    message = parse_message(_message("From: ceo@victim-corp.test <attacker@attacker.test>"))
    assert (message.from_name, message.from_address) == (
        "ceo@victim-corp.test",
        "attacker@attacker.test",
    )


def test_two_addresses_in_from_leave_the_author_unknown() -> None:
    for value in (
        "ceo@victim-corp.test, attacker@attacker.test",
        "ceo@victim-corp.test; <attacker@attacker.test>",  # ";" as some clients separate
        "Eve <ceo@victim-corp.test> <attacker@attacker.test>",
    ):
        _, address, problem = _from(value)
        assert address == ""
        assert problem == "the From header holds 2 addresses; which one wrote is not known"


# --- groups (RFC 5322 §3.4) ------------------------------------------------------------------


def test_groups_in_to_and_cc_give_their_members() -> None:
    assert recipients(["undisclosed-recipients:;"])[0] == ()
    assert recipients(["Team: a@x.test, B@Y.test;, c@z.test"])[0] == (
        "a@x.test",
        "b@y.test",
        "c@z.test",
    )
    assert recipients(["Team: a@x.test, (no one else) ;"])[0] == ("a@x.test",)


@pytest.mark.parametrize("value", ["undisclosed-recipients:;", "Team: a@x.test, b@y.test;"])
def test_a_group_is_never_the_author(value: str) -> None:
    assert _from(value) == (None, "", "the From header holds a group, not a mailbox")


# --- what is no address ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    ["root", "<>", "MAILER-DAEMON (Mail Delivery System)", "Jane <jane>", "jane@localhost", ""],
)
def test_an_address_needs_a_local_part_and_a_dotted_domain(value: str) -> None:
    _, address, problem = _from(value)
    assert address == ""
    assert problem == "the From header has no address with a domain"


def test_a_from_without_a_domain_is_never_a_recipient_or_reporter() -> None:
    message = parse_message(_message("From: root\nTo: root, admin@x.test\nCc: postmaster"))
    assert (message.from_address, message.to, message.cc) == ("", ("admin@x.test",), ())
    assert message.from_problem == "the From header has no address with a domain"


def test_words_with_an_address_but_no_angle_brackets_are_no_address() -> None:
    assert _from("Test test@example.com")[1] == ""
    assert _from("ceo@victim-corp.test attacker@attacker.test")[1] == ""


# --- obsolete syntax (RFC 5322 §4.4) and comments -------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("<@relay.test,@other.test:User@Host.test>", (None, "user@host.test")),
        ("Jane <@relay.test: jane@host.test>", ("Jane", "jane@host.test")),
        ("John (middle) . Smith @ (c) example . com", (None, "john.smith@example.com")),
        ('"Clement.Si" <Claudia.Shu@yahoo.com.>', ("Clement.Si", "claudia.shu@yahoo.com")),
        ("user@host.test (Name)", (None, "user@host.test")),  # §3.4: the comment is no name
        ("Hello (comment) there <hello@example.com>", ("Hello there", "hello@example.com")),
        ("(lead) Jane (mid) Doe <jane@x.test> (trail)", ("Jane Doe", "jane@x.test")),
        ("Jane ((nested) comment) <jane@x.test>", ("Jane", "jane@x.test")),
        ("John Q. Public <jqp@x.test>", ("John Q. Public", "jqp@x.test")),
    ],
)
def test_obsolete_forms_and_comments(value: str, expected: tuple[str | None, str]) -> None:
    name, address, problem = _from(value)
    assert (name, address) == expected
    assert problem is None


# --- quoted local parts, literals, IDN, UTF-8 --------------------------------------------------


@pytest.mark.parametrize(
    ("value", "address"),
    [
        ('"a b"@c.test', '"a b"@c.test'),
        ('"a@b"@c.test', '"a@b"@c.test'),
        ('"A\\"B"@c.test', '"a\\"b"@c.test'),
        ('"plain"@c.test', "plain@c.test"),  # quotes it does not need are dropped
        ('"a"."b"@c.test', "a.b@c.test"),
        ("user@[192.0.2.1]", "user@[192.0.2.1]"),
        ("user@[IPv6:2001:db8::1]", "user@[ipv6:2001:db8::1]"),
        ("User@Bücher.Example", "user@bücher.example"),
        ("user@xn--bcher-kva.example", "user@xn--bcher-kva.example"),
        ("Jürgen@Müller.example", "jürgen@müller.example"),
    ],
)
def test_addr_spec_forms(value: str, address: str) -> None:
    assert _from(value)[1] == address
    assert STRICT.match(address)


def test_raw_utf8_addresses_rfc6532_are_read_as_utf8() -> None:
    raw = "From: Jürgen <jürgen@müller.example>\nCc: 李 <李@例え.jp>\n\nx".encode()
    message = parse_message(raw)
    assert (message.from_name, message.from_address) == ("Jürgen", "jürgen@müller.example")
    assert message.cc == ("李@例え.jp",)


@pytest.mark.parametrize(
    "value",
    [
        "ceo@vic\u200btim.test",  # a zero-width space
        "ceo@exa\u00admple.test",  # a soft hyphen
        "ceo@victim.test\u3002",  # an ideographic full stop: a dot to IDNA
        "ceo@victim\uff61test",  # a halfwidth one
        "ceo@\uff56ictim.test",  # a fullwidth "v"
        "ceo@\u2460.test",  # a circled "1"
        "c\u200beo@victim.test",
        "\u202etset.mitciv@oec.attacker.test",  # a right-to-left override
    ],
)
def test_an_address_that_mail_servers_would_read_as_another_is_no_address(value: str) -> None:
    # UTS #46, which mail servers apply to an internationalised domain before they look it up,
    # drops invisible characters and maps compatibility forms: each domain above is delivered
    # as "victim.test" (or "1.test") though it is another string, one no DMARC record covers.
    # Invisible characters in a local part only make an address look like another.
    assert _from(value)[1:] == ("", "the From header has no address with a domain")


def test_invalid_local_parts_give_no_address() -> None:
    for value in ("a..b@x.test", ".a@x.test", "a.@x.test", "a b@x.test", "@x.test", "a@.x.test"):
        assert _from(value)[1] == "", value


# --- encoded words: decoded in names only, after the structure ------------------------------------


def test_line_breaks_in_an_encoded_name_never_reach_the_name_or_the_address() -> None:
    word = base64.b64encode(b"Eve\r\nBcc: victim@x.test\r\n").decode()
    name, address, _ = _from(f"=?utf-8?B?{word}?= <eve@attacker.test>")
    assert address == "eve@attacker.test"
    assert name == "Eve Bcc: victim@x.test"


def test_an_encoded_word_is_never_part_of_an_address() -> None:
    assert _from("=?utf-8?q?eve?=@attacker.test")[1] == ""
    assert _from("<=?utf-8?q?eve?=@attacker.test>")[1] == ""


def test_adjacent_encoded_words_join_without_the_space_between_them() -> None:
    # RFC 2047 §6.2, whatever the charsets of the two words (zammad mail006).
    value = "=?Windows-1252?Q?Hans_B=C4KO?= =?iso-8859-15?q?Sch=F6nland?= <me@bogen.net>"
    assert _from(value)[:2] == ("Hans BÄKOSchönland", "me@bogen.net")


def test_encoded_words_inside_quotes_are_decoded_in_the_name() -> None:
    # Against RFC 2047 §5, yet what clients write ("=?…?=" <a@b>) and every reader decodes.
    value = '"=?ISO-2022-JP?B?GyRCO3ZMMzZJGyhC?=" <noreply@example.org>'
    assert _from(value)[:2] == ("事務局", "noreply@example.org")


def test_a_name_with_commas_in_quotes_is_one_mailbox() -> None:
    value = '"Smith, Karoline, Example DE" <Karoline.Smith@example.com>'
    assert _from(value) == ("Smith, Karoline, Example DE", "karoline.smith@example.com", None)


def test_to_and_cc_are_lower_case_and_each_once() -> None:
    message = parse_message(
        _message("To: A@X.test, Bob <a@x.TEST>\nTo: b@y.test\nCc: C@Z.test, c@z.test, junk")
    )
    assert message.to == ("a@x.test", "b@y.test")
    assert message.cc == ("c@z.test",)


def test_a_second_from_header_with_the_same_address_is_noted() -> None:
    message = parse_message(_message("From: A <a@x.test>\nFrom: a@X.test"))
    assert message.from_address == "a@x.test"
    assert message.from_problem is None
    assert "From: 2 From headers; the first was read" in message.defects


def test_from_headers_naming_different_addresses_leave_the_author_unknown() -> None:
    # RFC 5322 §3.6 allows one From. With two, which one the receiving provider's DMARC check
    # judged is not known (RFC 7489 §6.6.1): its "dmarc=pass" may be for the other one.
    message = parse_message(
        _message("From: CEO <ceo@victim.test>\nTo: help@desk.test\nFrom: eve@attacker.test")
    )
    assert message.from_address == ""
    assert message.from_problem == (
        "the message has 2 From headers with different addresses; which one wrote is not known"
    )


# --- bounded cost: inputs the stdlib's parser would take minutes over -------------------------


def test_a_128_kb_quoted_display_name_is_skipped_not_parsed_for_minutes() -> None:
    value = '"' + "x " * 65536 + '" <a@b.test>'
    _, address, problem = _from(value)
    assert address == ""
    assert problem == "the From header is too long to be read"


def test_a_1_mb_cc_of_encoded_words_keeps_the_first_thousand_addresses() -> None:
    value = ", ".join(f"=?utf-8?q?x?= <q{n}@b.test>" for n in range(40000))
    assert len(value) > 1_000_000
    found, notes = recipients([value])
    assert found == tuple(f"q{n}@b.test" for n in range(MAX_ADDRESSES))
    assert f"more than {MAX_ADDRESSES} addresses; the rest were ignored" in notes


def test_a_long_header_is_cut_after_a_comma_never_inside_an_address() -> None:
    filler = ", ".join(f"p{n}@b.test" for n in range(400))  # under the entry cap
    value = filler + ", " + "x" * (MAX_HEADER - len(filler)) + "jane.doe@example.com.evil.test"
    parsed = parse_address_list(value)
    assert all(mailbox.address.startswith("p") for mailbox in parsed.usable)
    assert len(parsed.usable) == 400
    assert any("longer than" in note for note in parsed.notes)


def test_an_entry_longer_than_the_cap_is_skipped_and_the_rest_read() -> None:
    long_name = "y" * (MAX_ENTRY + 10)
    parsed = parse_address_list(f"{long_name} <a@x.test>, b@y.test")
    assert [mailbox.address for mailbox in parsed.usable] == ["b@y.test"]
    assert parsed.too_long == 1
    assert _from(f"{long_name} <a@x.test>")[2] == "the From header is too long to be read"


@pytest.mark.parametrize(
    "value",
    [
        "a@b.test " + "(" * 1_000_000,  # nested comments never closed
        "a@b.test (" + "\\" * 1_000_000 + ")",
        '"' + "\\" * 1_000_000 + '" <a@b.test>',
        "<" * 1_000_000,
        ":" * 1_000_000,
        "," * 1_000_000,
        "=?utf-8?q?x?=" * 100_000,
        "a." * 500_000 + "@x.test",
    ],
)
def test_a_megabyte_of_hostile_syntax_reads_in_one_pass(value: str) -> None:
    mailbox, problem, _ = author([value])
    assert mailbox.address in ("", "a@b.test")
    assert (mailbox.address == "") == (problem is not None)


# --- properties ------------------------------------------------------------------------------

atoms = st.text(st.sampled_from("abcXYZ019!#$%&'*+-/=?^_`{|}~é"), min_size=1, max_size=8)
labels = st.from_regex(r"[a-z0-9][a-z0-9\-]{0,6}", fullmatch=True)
plain_addresses = st.builds(
    lambda local, domain: f"{'.'.join(local)}@{'.'.join(domain)}",
    st.lists(atoms, min_size=1, max_size=3),
    st.lists(labels, min_size=2, max_size=3),
)


def _encoded(data: bytes, q: bool) -> str:
    if q:
        return "=?utf-8?q?" + "".join(f"={b:02X}" for b in data) + "?="
    return "=?utf-8?b?" + base64.b64encode(data).decode() + "?="


encoded_names = st.lists(
    st.builds(
        _encoded,
        st.one_of(
            st.binary(max_size=30),
            st.sampled_from([b"x@evil.test", b"a\r\nTo: v@evil.test", b"E: x@e.test;", b"<x@e.t>"]),
        ),
        st.booleans(),
    ),
    min_size=1,
    max_size=3,
)
noise = st.text(st.sampled_from('abc @<>,;:."\\()[]=?\r\n\t\x00é'), max_size=40)


@settings(max_examples=300, deadline=None)
@given(st.one_of(noise, st.lists(st.one_of(noise, plain_addresses, encoded_names.map(" ".join)))))
def test_every_address_is_empty_or_strictly_shaped_and_nothing_raises(pieces: object) -> None:
    value = pieces if isinstance(pieces, str) else " ".join(map(str, pieces))
    parsed = parse_address_list(value)
    for mailbox in parsed.mailboxes:
        assert mailbox.address == "" or STRICT.match(mailbox.address), mailbox.address
        assert mailbox.name is None or not re.search(r"[\r\n\x00]", mailbox.name)
    mailbox, problem, _ = author([value])
    assert (mailbox.address == "") == (problem is not None)


@settings(max_examples=200, deadline=None)
@given(encoded_names, plain_addresses)
def test_an_encoded_display_name_never_changes_the_address(words: list[str], address: str) -> None:
    name, found, problem = _from(" ".join(words) + f" <{address}>")
    assert (found, problem) == (address.lower(), None)
    assert name is None or ("\n" not in name and "\r" not in name)


@settings(max_examples=200, deadline=None)
@given(encoded_names)
def test_encoded_words_alone_never_make_an_address(words: list[str]) -> None:
    for value in (" ".join(words), "".join(words), ", ".join(words)):
        assert parse_address_list(value).usable == ()
