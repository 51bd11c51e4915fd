"""HTML bodies turned into readable text, with and without the quoted history.

`render(html)` parses once and gives both the whole text and the text left after the quote
containers that mail clients wrap around the message being replied to are cut out of the tree.
Cutting the containers before the conversion is what makes the HTML side reliable: the markers
(`div.gmail_quote`, `blockquote type=cite`, `#divRplyFwdMsg`) are unambiguous in the markup and
lost in the text. Clients that mark nothing (Yandex, mail.ru) write a plain `<blockquote>` right
below an attribution line ("26.06.2014, 14:41, "Alexander L" <abc@example.com>:"): such a
blockquote goes too, with its attribution — one without an attribution above it is the
sender's own indented text and stays.

The tree builder is given the markup as `markup.bounded_markup` rewrites it, on which its cost
grows in proportion to the length; markup nested deeper than mail clients write skips it for a
single left-to-right scan (`markup.strip_tags`).

Pure: no I/O. Uses selectolax (lexbor), whose own `.text()` would include `<script>`/`<style>`
content; the walk below skips those elements instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from selectolax.lexbor import LexborHTMLParser, LexborNode

from mailgate.inbound.markup import bounded_markup, strip_tags
from mailgate.inbound.quotes import attribution_above

__all__ = ["HtmlText", "render"]

# Elements whose content is never readable text.
_SKIP = frozenset(
    {
        "script",
        "style",
        "head",
        "title",
        "template",
        "noscript",
        "svg",
        "math",
        "object",
        "iframe",
        "embed",
        "meta",
        "link",
        "-comment",
        "!doctype",
        "-doctype",
        "xml",
    }
)
# Elements that start and end on a line of their own.
_BLOCK = frozenset(
    {
        "address",
        "article",
        "aside",
        "blockquote",
        "center",
        "dd",
        "div",
        "dl",
        "dt",
        "fieldset",
        "figcaption",
        "figure",
        "footer",
        "form",
        "header",
        "hr",
        "li",
        "main",
        "nav",
        "ol",
        "section",
        "table",
        "tbody",
        "thead",
        "tfoot",
        "tr",
        "ul",
        "caption",
    }
)
# Elements separated from their neighbours by a blank line.
_PARAGRAPH = frozenset({"p", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "hr"})
# Elements whose end writes something (`_close`); the walk leaves the others without a visit.
_CLOSED = _PARAGRAPH | _BLOCK | {"ul", "ol"}

# Where the history starts, client by client. Each of these wraps (or, for the cut markers,
# starts) the quoted message; nothing the sender wrote is inside them.
_QUOTE_CONTAINERS = ", ".join(
    [
        "div.gmail_quote",  # Gmail: attribution + blockquote, also "Forwarded message"
        "div.gmail_quote_container",  # Gmail since 2024
        "blockquote.gmail_quote",
        'blockquote[type="cite"]',  # Apple Mail, Thunderbird, K-9, Roundcube
        "div.moz-cite-prefix",  # Thunderbird's "On … wrote:" line
        "div.moz-forward-container",  # Thunderbird forward
        "div.yahoo_quoted",
        'div[id$="yahoo_quoted"]',
        "div.protonmail_quote",
        "div.zmail_extra",  # Zoho
        "blockquote.zmail_extra",
    ]
)
# Markers after which everything in the document is history (Outlook puts the header block and
# the old message as siblings after the marker, not inside it).
_CUT_MARKERS = ", ".join(
    [
        "#appendonsend",  # Outlook on the web / new Outlook: empty div before the <hr>
        "#divRplyFwdMsg",  # Outlook: the From/Sent/To/Subject block
        "#mail-editor-reference-message-container",  # Outlook for Mac
        "div.OutlookMessageHeader",
    ]
)
# Outlook desktop (Word HTML) has no id: a div with a thin top border holding the bold "From:".
_WORD_HEADER_STYLE = re.compile(r"border-top:\s*solid\s+#(?:E1E1E1|B5C4DF)", re.IGNORECASE)
_HIDDEN_STYLE = re.compile(r"display\s*:\s*none|mso-hide\s*:\s*all", re.IGNORECASE)
_SPACES = re.compile(r"[ \t\r\n\f\u00a0\u202f\u2007]+")
_BLANK_RUNS = re.compile(r"\n{3,}")
_MAX_HTML = 8 * 1024 * 1024  # characters; larger bodies are cut before parsing
_MAX_ATTRIBUTED = 200  # blockquotes checked for an attribution above them
_ATTRIBUTION_CHARS = 1000  # text looked at above a blockquote (three wrapped lines and more)


@dataclass(frozen=True)
class HtmlText:
    """`text`: the whole body as text; `reply`: the text once quote containers (and blockquotes
    below an attribution line) are removed; `quote_found`: whether anything was removed."""

    text: str
    reply: str
    quote_found: bool


def render(html: str) -> HtmlText:
    """Turn an HTML body into readable text, and into the text without quoted history."""
    html = html[:_MAX_HTML]
    markup = bounded_markup(html)
    if markup is None:
        text = strip_tags(html)
        return HtmlText(text, text, False)
    tree = LexborHTMLParser(markup)
    root = tree.body or tree.root
    if root is None:
        return HtmlText("", "", False)
    whole = _Walk(find_attributed=True)
    text = whole.run(root)
    found = _cut_quotes(tree, root, spared=whole.attributed)
    if not found and not whole.attributed:
        return HtmlText(text, text, False)
    reply = _Walk(skip=frozenset(whole.attributed)).run(root)
    return HtmlText(text, reply, True)


def _cut_quotes(tree: LexborHTMLParser, root: LexborNode, spared: set[int]) -> bool:
    """Remove the quote containers from the tree; whether there were any. Those in `spared`
    stay for the reply's walk to skip, which removes their attribution line with them."""
    doomed: list[LexborNode] = list(tree.css(_QUOTE_CONTAINERS))
    marker = tree.css_first(_CUT_MARKERS)
    if marker is None:
        marker = _word_header(tree)
    if marker is not None:
        doomed.extend(_from_here_on(marker, root))
    outermost = _outermost(doomed)
    for node in outermost:
        if node.mem_id not in spared:
            node.decompose()
    return bool(outermost)


def _outermost(nodes: list[LexborNode]) -> list[LexborNode]:
    """Each node once, and none inside another: decomposing a node frees its subtree, so a
    descendant must not be decomposed after it (Gmail's blockquote sits in its gmail_quote)."""
    chosen = {node.mem_id: node for node in nodes}
    # Whether a node has a chosen node among its ancestors (or is chosen itself), memoised so
    # that deep nesting costs one walk, not one per node.
    covered: dict[int, bool] = {}

    def is_covered(start: LexborNode | None) -> bool:
        path: list[int] = []
        node = start
        answer = False
        while node is not None:
            known = covered.get(node.mem_id)
            if known is not None:
                answer = known
                break
            path.append(node.mem_id)
            if node.mem_id in chosen:
                answer = True
                break
            node = node.parent
        for node_id in path:
            covered[node_id] = answer
        return answer

    return [node for node in chosen.values() if not is_covered(node.parent)]


def _word_header(tree: LexborHTMLParser) -> LexborNode | None:
    for div in tree.css("div[style]"):
        # "x-b": <b>, as `bounded_markup` renames it.
        if _WORD_HEADER_STYLE.search(div.attributes.get("style") or "") and div.css_first("x-b"):
            return div
    return None


def _from_here_on(marker: LexborNode, root: LexborNode) -> list[LexborNode]:
    """The marker and everything after it in document order, up to the end of `root`."""
    nodes = [marker]
    node: LexborNode | None = marker
    while node is not None and node.mem_id != root.mem_id:
        sibling = node.next
        while sibling is not None:
            nodes.append(sibling)
            sibling = sibling.next
        node = node.parent
    return nodes


class _Writer:
    """Collects text, turning block boundaries into at most two newlines."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.pending = 0  # newlines owed before the next text
        self.at_start = True
        self.last_space = True

    def newline(self, count: int) -> None:
        self.pending = max(self.pending, count)

    def write(self, text: str, *, pre: bool = False) -> None:
        if not pre:
            text = _SPACES.sub(" ", text)
            if self.last_space or self.pending:
                text = text.lstrip(" ")
        if not text:
            return
        if self.pending and not self.at_start:
            self.parts.append("\n" * self.pending)
        self.pending = 0
        self.at_start = False
        self.parts.append(text)
        self.last_space = text.endswith((" ", "\n"))

    def last_lines(self) -> list[str]:
        """The last lines written, blank ones at the end left out; only the last
        `_ATTRIBUTION_CHARS` characters are read, so asking costs the same at any length."""
        count, tail = self._tail()
        lines = tail.split("\n")
        if count < len(self.parts):
            lines = lines[1:]  # the first may be the end of a longer line
        while lines and not lines[-1].strip():
            lines.pop()
        return lines

    def drop_last_lines(self, count: int) -> None:
        """Take back the last `count` lines (and the blank lines after them)."""
        self.newline(1)
        if not count:
            return
        parts, tail = self._tail()
        lines = tail.split("\n")
        while lines and not lines[-1].strip():
            lines.pop()
        kept = "\n".join(lines[: max(len(lines) - count, 0)])
        del self.parts[len(self.parts) - parts :]
        if kept:
            self.parts.append(kept)
        self.at_start = not self.parts
        self.last_space = True

    def _tail(self) -> tuple[int, str]:
        size = count = 0
        for part in reversed(self.parts):
            count += 1
            size += len(part)
            if size >= _ATTRIBUTION_CHARS:
                break
        return count, "".join(self.parts[len(self.parts) - count :])

    def result(self) -> str:
        lines = "".join(self.parts).split("\n")
        text = "\n".join(line.rstrip() for line in lines)
        return _BLANK_RUNS.sub("\n\n", text).strip("\n")


class _Walk:
    """One depth-first walk of the tree into text, with an explicit stack: deeply nested markup
    must not hit the recursion limit. A stack entry is a node to enter, a node to leave, or
    literal text.

    With `find_attributed`, the walk notes (by mem_id) each `<blockquote>` that comes right
    below an attribution line; with `skip`, it leaves those blockquotes out, and takes back the
    attribution lines above them that are still there (a quote container removed since, such
    as Thunderbird's `moz-cite-prefix`, may have held them)."""

    def __init__(
        self, *, find_attributed: bool = False, skip: frozenset[int] = frozenset()
    ) -> None:
        self.out = _Writer()
        self.attributed: set[int] = set()
        self._checks_left = _MAX_ATTRIBUTED if find_attributed else 0
        self._skip = skip
        self._counters: list[int] = []

    def run(self, root: LexborNode) -> str:
        """The text of `root`."""
        out = self.out
        stack: list[tuple[LexborNode | str, bool, bool]] = [(root, True, False)]
        while stack:
            node, entering, in_pre = stack.pop()
            if isinstance(node, str):
                out.write(node, pre=in_pre)
                continue
            tag = node.tag or ""
            if not entering:
                _close(out, tag, self._counters)
                continue
            if node.is_text_node:
                out.write((node.text_content or "").replace("\u00a0", " "), pre=in_pre)
                continue
            if tag in _SKIP or not (node.is_element_node or node.is_document_node):
                continue
            attrs = node.attributes
            style = attrs.get("style")
            if (style and _HIDDEN_STYLE.search(style)) or self._quoted(node, tag):
                continue
            _open(out, tag, attrs, self._counters)
            child_pre = in_pre or tag in ("pre", "textarea", "plaintext", "xmp")
            if tag in _CLOSED:
                stack.append((node, False, in_pre))
            if tag == "a":
                suffix = _link_suffix(node, attrs)
                if suffix:
                    stack.append((suffix, True, child_pre))
            stack.extend((child, True, child_pre) for child in reversed(_children(node)))
        return out.result()

    def _quoted(self, node: LexborNode, tag: str) -> bool:
        """Whether to leave out this element: a blockquote noted by an earlier walk."""
        if tag != "blockquote":
            return False
        if node.mem_id in self._skip:
            self.out.drop_last_lines(attribution_above(self.out.last_lines()))
            return True
        if self._checks_left > 0:
            self._checks_left -= 1
            if attribution_above(self.out.last_lines()):
                self.attributed.add(node.mem_id)
        return False


def _children(node: LexborNode) -> list[LexborNode]:
    children: list[LexborNode] = []
    child = node.first_child
    while child is not None:
        children.append(child)
        child = child.next
    return children


def _open(out: _Writer, tag: str, attrs: dict[str, str | None], counters: list[int]) -> None:
    if tag == "br":
        out.write("\n", pre=True)
        out.last_space = True
    elif tag in _PARAGRAPH:
        out.newline(2)
    elif tag in ("ul", "ol"):
        out.newline(1)
        counters.append(0 if tag == "ol" else -1)
    elif tag == "li":
        out.newline(1)
        if counters and counters[-1] >= 0:
            counters[-1] += 1
            out.write(f"{counters[-1]}. ")
        else:
            out.write("- ")
    elif tag in _BLOCK:
        out.newline(1)
    elif tag in ("td", "th"):
        out.write(" ")
    elif tag == "img":
        alt = _SPACES.sub(" ", attrs.get("alt") or "").strip()
        if alt:
            out.write(f"[{alt}]")


def _close(out: _Writer, tag: str, counters: list[int]) -> None:
    if tag in _PARAGRAPH:
        out.newline(2)
    elif tag in ("ul", "ol"):
        if counters:
            counters.pop()
        out.newline(1)
    elif tag in _BLOCK:
        out.newline(1)


def _link_suffix(node: LexborNode, attrs: dict[str, str | None]) -> str:
    """Where a link goes, when its text does not say it: "the log (https://…)"."""
    href = (attrs.get("href") or "").strip()
    if not href.lower().startswith(("http://", "https://")):
        return ""
    label = _SPACES.sub(" ", node.text(deep=True)).strip()
    if not label or label.rstrip("/") == href.rstrip("/") or href.endswith(label):
        return ""
    return f" ({href})"
