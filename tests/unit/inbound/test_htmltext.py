"""HTML bodies to readable text, and the quote containers of each client cut out."""

from __future__ import annotations

import time

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


def test_markup_nested_deeper_than_any_client_writes_is_read_without_the_tree_builder() -> None:
    html = "<p>hi</p><script>x()</script>" + "<div>" * 50_000 + "deep"
    started = time.perf_counter()
    rendered = render(html)
    assert time.perf_counter() - started < 2
    assert rendered.text == "hi\n\ndeep"
