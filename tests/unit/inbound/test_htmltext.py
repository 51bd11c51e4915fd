"""HTML bodies to readable text, and the quote containers of each client cut out."""

from __future__ import annotations

import pytest

from mailgate.inbound.htmltext import render


def test_script_style_head_and_hidden_preheader_never_reach_the_text() -> None:
    html = (
        "<html><head><title>Offer</title><style>p { color: red }</style></head><body>"
        "<script>var secret = 'tracking';</script>"
        '<span style="display:none">Preview text</span>'
        "<p>Visible</p><noscript>Enable JavaScript</noscript></body></html>"
    )
    assert render(html).text == "Visible"


def test_blocks_lists_links_and_entities_read_like_text() -> None:
    html = (
        "<div>Hello&nbsp;team,</div><div><br></div>"
        "<p>Steps:</p><ol><li>open</li><li>click <b>Save</b></li></ol>"
        "<ul><li>one</li></ul>"
        '<p>See <a href="https://example.com/log">the log</a> and '
        '<a href="https://example.com/x">https://example.com/x</a> &amp; '
        '<a href="mailto:a@example.com">a@example.com</a>.</p>'
        "<table><tr><td>a</td><td>b</td></tr><tr><td>c</td></tr></table>"
        '<pre>  indented\n    code</pre><img src="cid:x" alt="diagram">'
    )
    assert render(html).text == (
        "Hello team,\n\nSteps:\n\n1. open\n2. click Save\n- one\n\n"
        "See the log (https://example.com/log) and https://example.com/x & a@example.com.\n\n"
        "a b\nc\n\n  indented\n    code\n\n[diagram]"
    )


@pytest.mark.parametrize(
    ("client", "html"),
    [
        (
            "gmail",
            '<div dir="ltr">New text</div><br><div class="gmail_quote gmail_quote_container">'
            '<div dir="ltr" class="gmail_attr">On Mon, Jan 6, 2025 at 10:15\u202fAM Support '
            '&lt;<a href="mailto:s@example.com">s@example.com</a>&gt; wrote:<br></div>'
            '<blockquote class="gmail_quote" style="margin:0px 0px 0px 0.8ex">old</blockquote>'
            "</div>",
        ),
        (
            "apple mail",
            '<body>New text<div><br><blockquote type="cite"><div>On 7 Jan 2025, at 10:20, '
            "Support &lt;s@example.com&gt; wrote:</div><div>old</div></blockquote></div></body>",
        ),
        (
            "thunderbird",
            '<p>New text</p><div class="moz-cite-prefix">On 07.01.25 17:30, Support wrote:<br>'
            '</div><blockquote type="cite" cite="mid:x@example.com">old</blockquote>',
        ),
        (
            "outlook web",
            '<div class="elementToProof">New text</div><div id="appendonsend"></div>'
            '<hr style="display:inline-block;width:98%" tabindex="-1">'
            '<div id="divRplyFwdMsg" dir="ltr"><b>From:</b> Support<br><b>Sent:</b> Monday'
            "</div><div>old</div>",
        ),
        (
            "outlook desktop",
            '<div class="WordSection1"><p class="MsoNormal">New text</p><div>'
            '<div style="border:none;border-top:solid #E1E1E1 1.0pt;padding:3.0pt 0cm 0cm 0cm">'
            '<p class="MsoNormal"><b>From:</b> Support<br><b>Sent:</b> Monday</p></div></div>'
            '<p class="MsoNormal">old</p></div>',
        ),
        (
            "yahoo",
            '<div>New text</div><div id="ydp3f1yahoo_quoted_2937493705" class="yahoo_quoted">'
            "On Monday, Support wrote: old</div>",
        ),
        # No container: a plain blockquote right below an attribution goes with it.
        (
            "yandex",
            "<p>New text<br /><br />26.06.2014, 14:41, &quot;Support&quot; &lt;<a href="
            '"mailto:s@example.com">s@example.com</a>&gt;:</p><blockquote> old<br /></blockquote>',
        ),
        (
            "mail.ru",
            "<HTML><BODY><p>New text</p><br><br>Thu, 26 Jun 2014 14:00:51 +0400 от Support "
            '&lt;s@example.com&gt;:<br>\n<blockquote style="border-left:1px solid #0857A6">'
            "<div><div>old</div></div></blockquote><br></BODY></HTML>",
        ),
        (
            "attribution wrapped by a line break",
            "<div>New text</div><div>On Mon, Jan 6, 2025 at 10:15 AM Support Team<br>"
            "&lt;s@example.com&gt; wrote:</div><blockquote>old</blockquote>",
        ),
        (
            "cite blockquote below an attribution paragraph",
            '<p>New text</p><p>On 07.01.25 17:30, Support wrote:</p><blockquote type="cite">'
            "old</blockquote>",
        ),
    ],
)
def test_quote_containers_are_cut_before_the_text_is_made(client: str, html: str) -> None:
    rendered = render(html)
    assert rendered.quote_found, client
    assert rendered.reply == "New text", client
    assert "old" in rendered.text, client


def test_an_indented_block_of_the_senders_own_is_kept() -> None:
    # Gmail's "indent" button makes a blockquote without type=cite: the sender's text.
    html = '<div>Look:</div><blockquote style="margin:0 0 0 40px;border:none">my text</blockquote>'
    rendered = render(html)
    assert not rendered.quote_found
    assert rendered.reply == "Look:\nmy text"


def test_text_after_an_attributed_blockquote_and_unattributed_blockquotes_stay() -> None:
    html = (
        "<p>Hi</p><p>26.06.2014, 14:41, Support &lt;s@example.com&gt;:</p>"
        "<blockquote>old question</blockquote><p>My answer.</p>"
        "<blockquote>a later quote of my own choosing</blockquote><p>Bye</p>"
    )
    rendered = render(html)
    assert rendered.reply == "Hi\n\nMy answer.\n\na later quote of my own choosing\n\nBye"


@pytest.mark.parametrize(
    "above",
    [
        "<p>Look at this:</p>",
        "<p>On Monday we wrote the report:</p>",
        "<p>Meeting on 12.03.2024 at 10:00:</p>",
        "",
    ],
)
def test_a_blockquote_without_an_attribution_above_it_is_the_senders(above: str) -> None:
    rendered = render(f"{above}<blockquote>my own text</blockquote>")
    assert not rendered.quote_found
    assert rendered.reply.endswith("my own text")


def test_markup_nested_deeper_than_any_client_writes_is_read_without_the_tree_builder() -> None:
    html = "<p>hi</p><script>x()</script>" + "<div>" * 50_000 + "deep"
    assert render(html).text == "hi\n\ndeep"


def test_nesting_at_the_limit_and_just_past_it_read_the_same() -> None:
    at_limit = render("<p>hi</p>" + "<div>" * 1000 + "deep")
    past_it = render("<p>hi</p>" + "<div>" * 1001 + "deep")
    assert at_limit.text == past_it.text == "hi\n\ndeep"


# Hostile bodies, each big enough that a quadratic step would take minutes; each is read both by
# the tree builder and, behind markup too deep for it, by the fallback scan. Finishing with the
# right text is the check (bench/ measures times).
TOO_DEEP = "<div>" * 1001
HOSTILE = {
    "10,000 unclosed <script>": "<p>hi</p>" + "<script>secret()" * 10_000,
    "100,000 '<a href=' without '>'": "<p>hi</p>" + "<a href=" * 100_000,
    "10,000 closed <script> between words": "<p>hi</p>" + "<script>secret()</script>" * 10_000,
    "an unclosed comment": "<p>hi</p><!-- secret " + "x" * 1_000_000,
}


@pytest.mark.parametrize("prefix", ["", TOO_DEEP], ids=["tree", "fallback"])
@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_markup_gives_the_text_and_nothing_hidden(prefix: str, name: str) -> None:
    text = render(prefix + HOSTILE[name]).text
    assert text == "hi"


@pytest.mark.parametrize("prefix", ["", TOO_DEEP], ids=["tree", "fallback"])
def test_megabytes_of_lt_signs_are_text(prefix: str) -> None:
    # 8 MB, the cap: "<" before anything but a letter, "/", "!" or "?" starts no tag.
    body = "hi " + "<" * (8 * 1024 * 1024 - len(prefix) - 3)
    text = render(prefix + body).text
    assert text == body


@pytest.mark.parametrize("prefix", ["", TOO_DEEP], ids=["tree", "fallback"])
def test_megabyte_attribute_values_are_no_text(prefix: str) -> None:
    html = (
        f'{prefix}<p style="color:{"x" * 1_000_000}">kept</p>'
        f'<p><a href="https://example.com/{"a" * 1_000_000}">link</a></p>'
    )
    text = render(html).text
    assert text.startswith("kept\n\nlink")
    assert "xxx" not in text


def test_the_fallback_closes_script_as_browsers_do_and_keeps_loose_lt() -> None:
    html = TOO_DEEP + "<p>a < b</p><SCRIPT type=x>no</scripts></SCRIPT >c<style>p{}</style>d"
    assert render(html).text == "a < b\nc d"
