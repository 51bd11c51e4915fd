"""The markup the HTML tree builder is given: each hostile shape below once cost the tree builder
time or memory growing with the square of the body (minutes, or gigabytes, at a few hundred KB).
What is asserted is the tree it now builds, never a time: no deeper than the markup's open
elements allow, no more nodes than the markup has tags and text, no element it would re-create or
whose options it would re-read, no element with more attributes than the cap — and the text."""

from __future__ import annotations

import pytest
from selectolax.lexbor import LexborHTMLParser, LexborNode

from mailgate.inbound.htmltext import render
from mailgate.inbound.markup import MAX_ATTRIBUTES, MAX_DEPTH, bounded_markup

HOSTILE = {
    "<dd> and <li> in turn, 20,000 times": "<dd><li>x" * 20_000,
    "a select of 20,000 options": "<select>" + "<option>x</option>" * 20_000,
    "500 distinct <font> re-created in each of 5,000 blocks": (
        "<div>"
        + "".join(f'<font id="f{i}">' for i in range(500))
        + "</div>"
        + "<div>x</div>" * 5_000
    ),
    "one element with 50,000 attributes": (
        "<div " + "".join(f"a{i}=1 " for i in range(50_000)) + ">x</div>"
    ),
    "20,000 <body> tags with new attributes": "".join(f"<body a{i}>x" for i in range(20_000)),
    "20,000 <col> in an <svg>, then 20,000 end tags": (
        "<svg>" + "<col>" * 20_000 + "</q>" * 20_000 + "</svg>x"
    ),
    "an unclosed <b> before each of 900 paragraphs": "<b>y<p>x</p>" * 900,
}
# Nested past the limit: read by the one-pass scan instead.
TOO_DEEP = {
    "an unclosed <b> before each of 20,000 paragraphs": "<b>y<p>x</p>" * 20_000,
    "20,000 unknown elements never closed": "<zz>x" * 20_000,
}
# Elements the tree builder re-creates after a block closes them (§13.2.4.3's formatting
# elements), or whose options it re-reads for each new one.
COSTLY = {"b", "big", "code", "em", "font", "i", "nobr", "s", "small", "strike", "strong", "tt"}
COSTLY |= {"u", "select"}


def _nodes(root: LexborNode) -> list[tuple[LexborNode, int]]:
    found, stack = [], [(root, 0)]
    while stack:
        node, depth = stack.pop()
        found.append((node, depth))
        child = node.child
        while child is not None:
            stack.append((child, depth + 1))
            child = child.next
    return found


@pytest.mark.parametrize("name", list(HOSTILE))
def test_the_tree_builder_gets_nothing_it_spends_the_square_of_the_body_on(name: str) -> None:
    html = HOSTILE[name]
    markup = bounded_markup(html)
    assert markup is not None
    tree = LexborHTMLParser(markup)
    assert tree.root is not None
    nodes = _nodes(tree.root)
    # The tree builder adds a few elements of its own (<html>, <body>, a table's <tbody>).
    assert max(depth for _, depth in nodes) <= 2 * MAX_DEPTH + 8
    assert len(nodes) <= 2 * html.count("<") + 8
    assert not {node.tag for node, _ in nodes} & COSTLY
    assert all(len(node.attributes) <= MAX_ATTRIBUTES for node, _ in nodes if node.is_element_node)
    assert "x" in render(html).text


@pytest.mark.parametrize("name", list(TOO_DEEP))
def test_markup_nested_past_the_limit_is_read_by_the_scan(name: str) -> None:
    html = TOO_DEEP[name]
    assert bounded_markup(html) is None
    assert render(html).text.count("x") == 20_000


def test_formatting_and_select_elements_keep_their_text_and_attributes() -> None:
    html = (
        '<p><b>bold</b> <FONT color="red" style="display:none">hidden</FONT> <i>it</i>'
        "<select><option>one<option>two</select></p>"
    )
    assert render(html).text == "bold itonetwo"


def test_end_tags_close_what_they_close_in_a_browser() -> None:
    html = (
        "<ol><li>a<li>b</ol><dl><dt>t<dd>d</dl>"
        "<table><tr><td>1<td>2<tr><td>3</table>"
        "<p>one<div>two</div><p>three</span>"
    )
    assert render(html).text == "1. a\n2. b\nt\nd\n1 2\n3\n\none\n\ntwo\n\nthree"


def test_a_slash_that_ends_an_unquoted_value_does_not_close_the_link() -> None:
    html = "<p>see <a href=https://example.com/a/>the page</a>, <br/>and<span/>more</p>"
    assert render(html).text == "see the page (https://example.com/a/),\nandmore"


@pytest.mark.parametrize(
    ("html", "text"),
    [
        ("a<!-->b<!--->c<!-- x --!>d", "abcd"),
        ("a<<!---->/b>c", "a</b>c"),  # a "<" before a comment starts no tag after it
        ("a<!DOCTYPE html><?php x ?></ 1>b</>c", "abc"),
        ("<title>t</title><style>p{}</style><script>s()</script>x", "x"),
        ("<textarea>a <b> &amp;</textarea><xmp>&amp; <i></xmp>", "a <b> &\n\n&amp; <i>"),
        ('<div title="a>b</div>">kept</div><p class=x"y>z', "kept\n\nz"),
    ],
)
def test_comments_raw_text_and_quoted_values_are_read_as_the_tokenizer_reads_them(
    html: str, text: str
) -> None:
    assert render(html).text == text


def test_an_unterminated_tag_takes_the_rest_with_it() -> None:
    assert render('<p>kept</p><a href="x>' + "<p>gone</p>" * 1000).text == "kept"


def test_markup_nested_past_the_limit_is_not_given_to_the_tree_builder() -> None:
    assert bounded_markup("<span>" * MAX_DEPTH) is not None
    assert bounded_markup("<span>" * (MAX_DEPTH + 1)) is None
    # Closed ones do not count, nor do elements a later start tag closes.
    assert bounded_markup("<span></span>" * 5000 + "<li>x" * 5000 + "<p>y" * 5000) is not None
