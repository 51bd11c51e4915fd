"""HTML read as a stream of tags and text, in one linear pass: the markup the tree builder is
given, and the text of markup it is never given.

The HTML tree builder (lexbor, behind selectolax) spends time that grows with the square of the
input on markup no mail client writes, and a sender can write anything:

- each of many open elements is looked through again for every later tag (`<b>y<p>x</p>`
  repeated: 800 KB, 15 s; `<dd><li>` repeated: 400 KB, 40 s);
- formatting elements that a closing `</div>` left open are re-created inside every later block
  (500 distinct `<font id=…>`, then `<div>x</div>` repeated: 1 MB, 46 s and 15 GB);
- a `<select>` re-reads all its options for each new one (`<option></option>` repeated: 1.6 MB,
  66 s); an element's attributes are compared with all the others (50,000 of them: 10 s); a
  repeated `<body>` merges its attributes into the body's (`<body a1><body a2>…`: 1.6 MB,
  200 s).

`bounded_markup` rewrites the markup into a form none of that applies to, and it is exactly what
the tree builder reads: every tag is written anew from what was read, and text never carries a
"<" that could start one. Formatting elements and `<select>` are renamed (`x-b`, `x-select`:
elements that are shown the same and re-created nowhere); `<html>`, `<head>` and `<body>` tags
are left out (the tree builder makes its own); an element keeps its first `MAX_ATTRIBUTES`
attributes; comments, scripts and styles are left out; and the open elements are followed on a
stack of their names, every end tag the stack implies written out, so the tree builder's own
stack is never much deeper than that one (twice, with the `<tbody>` and `<tr>` it adds to
tables).
Markup that nests deeper than `MAX_DEPTH` is not given to the tree builder: `strip_tags` reads its
text in one scan.
"""

from __future__ import annotations

import html as _html_module
import itertools
import re

__all__ = ["MAX_ATTRIBUTES", "MAX_DEPTH", "bounded_markup", "strip_tags"]

MAX_DEPTH = 1000  # open elements; real mail stays far below (a long Outlook thread: ~100)
MAX_ATTRIBUTES = 32  # per element; Word's HTML writes a handful

# What can start markup (HTML §13.2.5.6-7; any other "<" is text, "a < b"): a comment, a doctype
# or bogus comment ("<!", "<?", "</" not before a name), or a start or end tag as the tokenizer
# reads it (§13.2.5.8-39): the name runs to white space, "/" or ">"; an attribute's value is
# quoted (a quote never closed runs to the end of the input), or runs to white space or ">".
# Possessive throughout: one pass, even over a tag that never ends ("close" is then missing).
_MARKUP = re.compile(
    r"""<(?:(?P<comment>!--)|[!?]|/(?![A-Za-z])
    |(?P<slash>/?)(?P<name>[A-Za-z][^\t\n\f\r />]*+)
     (?P<attributes>(?:[\t\n\f\r /]++
      |[^\t\n\f\r />][^\t\n\f\r /=>]*+
       (?:[\t\n\f\r ]*+=[\t\n\f\r ]*+(?:"[^"]*+"?|'[^']*+'?|[^\t\n\f\r >"'][^\t\n\f\r >]*+)?)?
     )*+)(?P<close>>)?)""",
    re.VERBOSE,
)
_ATTRIBUTE = re.compile(
    r"""([^\t\n\f\r />][^\t\n\f\r /=>]*+)
    (?:[\t\n\f\r ]*+=[\t\n\f\r ]*+("[^"]*+"?|'[^']*+'?|[^\t\n\f\r >"'][^\t\n\f\r >]*+)?)?""",
    re.VERBOSE,
)
_MARKUP_OPEN = re.compile(r"<[A-Za-z/!?]")
_COMMENT_END = re.compile(r"--!?>")
_ATTRIBUTE_NAME = re.compile(r"^[a-z_:][-a-z0-9_.:]*$")
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_VOID = frozenset(
    {
        *("area", "base", "basefont", "bgsound", "br", "col", "embed", "frame", "hr", "image"),
        *("img", "input", "keygen", "link", "meta", "param", "source", "track", "wbr"),
    }
)
_LEFT_OUT = frozenset({"html", "head", "body"})
# Raw text (§13.2.5.2-3): nothing inside is markup. These are never shown: left out whole.
_UNSHOWN_RAW_TEXT = frozenset(
    {"script", "style", "title", "iframe", "noembed", "noframes", "noscript"}
)
# The formatting elements (§13.2.4.3) but <a>, and the element whose options are re-read.
_RENAMED = {
    name: f"x-{name}"
    for name in (
        *("b", "big", "code", "em", "font", "i", "nobr", "s", "small", "strike", "strong"),
        *("tt", "u", "select"),
    )
}
# A start tag of these closes an open element of the same kind (§13.2.6.4.7), unless one of the
# boundaries is nearer: (kind, boundaries).
_CLOSES: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "li": (frozenset({"li"}), frozenset({"ul", "ol", "menu", "table", "template"})),
    "dd": (frozenset({"dd", "dt"}), frozenset({"dl", "table", "template"})),
    "dt": (frozenset({"dd", "dt"}), frozenset({"dl", "table", "template"})),
    "td": (frozenset({"td", "th"}), frozenset({"tr", "table", "template"})),
    "th": (frozenset({"td", "th"}), frozenset({"tr", "table", "template"})),
    "tr": (frozenset({"tr"}), frozenset({"table", "template"})),
    "a": (frozenset({"a"}), frozenset({"td", "th", "caption", "template", "object", "table"})),
    "option": (frozenset({"option"}), frozenset()),
}
# A start tag of these closes an open <p> "in button scope" (§13.2.6.4.7: "If the stack of open
# elements has a p element in button scope, then close a p element").
_CLOSES_P = frozenset(
    {
        *("address", "article", "aside", "blockquote", "center", "details", "dialog", "dir"),
        *("div", "dl", "fieldset", "figcaption", "figure", "footer", "header", "hgroup", "main"),
        *("menu", "nav", "ol", "p", "search", "section", "summary", "ul", "pre", "listing"),
        *("form", "hr", "li", "dd", "dt", *(f"h{n}" for n in range(1, 7))),
    }
)
_BUTTON_SCOPE = frozenset(
    {
        *("applet", "caption", "table", "td", "th", "marquee", "object", "template", "button"),
        *("mi", "mo", "mn", "ms", "mtext", "annotation-xml", "foreignobject", "desc"),
    }
)
_PARAGRAPH = frozenset({"p"})
# How far below the top an end tag's element is looked for: misnested markup closes an element a
# few levels down; an end tag with no open element that near is left out.
_NEAR = 16
_LINE_BREAKING = frozenset(
    {"br", "p", "div", "li", "tr", "blockquote", *(f"h{n}" for n in range(1, 7))}
)
_TAG_NAME = re.compile(r"/?([a-z][a-z0-9]*)")
# The end tag of each raw text element, in any letter case (ASCII only, as the tokenizer).
_RAW_TEXT_CLOSE = {
    tag: re.compile(rf"</{tag}(?=[\t\n\f\r />]|\Z)", re.IGNORECASE | re.ASCII)
    for tag in (*_UNSHOWN_RAW_TEXT, "textarea", "xmp")
}
_SPACES = re.compile(r"[ \t\r\n\f\u00a0\u202f\u2007]+")
_BLANK_RUNS = re.compile(r"\n{3,}")


def bounded_markup(html: str) -> str | None:
    """`html` rewritten into markup whose tree costs time in proportion to its length (module
    docstring), holding the same text; None when it nests deeper than `MAX_DEPTH`."""
    return _Rebuild(html).run()


class _Rebuild:
    """One left-to-right pass over the markup, writing the bounded markup to `out` and the
    names of the elements it leaves open to `open`."""

    def __init__(self, html: str) -> None:
        self.html = html
        self.out: list[str] = []
        self.open: list[str] = []  # names of the open elements, innermost last
        self.paragraphs = 0  # how many of them are <p>: most start tags look for one

    def run(self) -> str | None:
        html, position = self.html, 0
        while True:
            markup = _MARKUP.search(html, position)
            if markup is None:
                self._text(html[position:])
                break
            self._text(html[position : markup.start()])
            name = markup.group("name")
            if name is None:
                position = self._comment_end(markup)
            elif markup.group("close") is None:
                break  # a tag that never ends takes the rest with it (§13.2.5: EOF in tag)
            elif markup.group("slash"):
                self._end(_ascii_lower(name))
                position = markup.end()
            else:
                position = self._start(_ascii_lower(name), markup.group("attributes"), markup.end())
                if len(self.open) > MAX_DEPTH:
                    return None
        return "".join(self.out)

    def _text(self, text: str) -> None:
        # No "<" inside can start markup (the search stopped at the first that could), but one
        # at the end could, with what comes after a left-out comment.
        if text:
            self.out.append(text[:-1] + "&lt;" if text.endswith("<") else text)

    def _comment_end(self, markup: re.Match[str]) -> int:
        """Where the text resumes after a comment (§13.2.5.43-52: "<!-->" and "<!--->" are
        whole ones; others end at "-->" or "--!>"), a doctype or a bogus comment (at ">"); the
        end of the input when it never ends."""
        start, html = markup.start(), self.html
        if markup.group("comment") is None:
            close = html.find(">", start)
            return len(html) if close < 0 else close + 1
        if html.startswith(("<!-->", "<!--->"), start):
            return html.index(">", start) + 1
        end = _COMMENT_END.search(html, start + 4)
        return len(html) if end is None else end.end()

    def _start(self, name: str, attributes: str, after: int) -> int:
        if name in _LEFT_OUT:
            return after
        if name in _UNSHOWN_RAW_TEXT:
            return _raw_text_end(self.html, name, after)[1]
        if name in ("textarea", "xmp", "plaintext"):
            return self._raw_text(name, after)
        name = _RENAMED.get(name, name)
        tag = f"<{name}{_attributes(attributes)}>" if attributes else f"<{name}>"
        closes = _CLOSES.get(name)
        if closes is not None:
            self._close_kind(*closes)
        if self.paragraphs and name in _CLOSES_P:
            self._close_kind(_PARAGRAPH, _BUTTON_SCOPE)
        if name in _VOID:
            # The "/" closes it inside <svg> or <math> too, where it is no void element.
            self.out.append(tag[:-1] + "/>")
        elif _self_closing(attributes):
            # Foreign elements (<path/>) close, HTML ones stay open: closed here either way.
            self.out.append(f"{tag}</{name}>")
        else:
            self.out.append(tag)
            self.open.append(name)
            self.paragraphs += name == "p"
        return after

    def _raw_text(self, name: str, after: int) -> int:
        """<textarea> keeps its text as text; <xmp> and <plaintext>, whose text is shown as
        written, become <pre>."""
        close, end = (
            (len(self.html),) * 2 if name == "plaintext" else _raw_text_end(self.html, name, after)
        )
        content = self.html[after:close]
        if name == "textarea":
            self.out.append(f"<textarea>{content.replace('<', '&lt;')}</textarea>")
        else:
            self.out.append(f"<pre>{_html_module.escape(content, quote=False)}</pre>")
        return end

    def _end(self, name: str) -> None:
        name = _RENAMED.get(name, name)
        for index in self._near():
            if self.open[index] == name:
                self._close_to(index)
                return
        # No such element open: "</br>" and "</p>" still make what their start tags make
        # (§13.2.6.4.7); any other end tag is left out.
        if name in ("br", "p"):
            self.out.append("<br>" if name == "br" else "<p></p>")

    def _close_kind(self, kind: frozenset[str], boundaries: frozenset[str]) -> None:
        """Close the nearest open element of `kind`, with those inside it."""
        for index in self._near():
            found = self.open[index]
            if found in kind:
                self._close_to(index)
                return
            if found in boundaries:
                return

    def _near(self) -> range:
        """The indexes of the innermost `_NEAR` open elements, innermost first."""
        return range(len(self.open) - 1, max(len(self.open) - _NEAR, 0) - 1, -1)

    def _close_to(self, index: int) -> None:
        closed = self.open[index:]
        self.out.extend(f"</{inner}>" for inner in reversed(closed))
        self.paragraphs -= closed.count("p")
        del self.open[index:]


def _attributes(raw: str) -> str:
    """The first `MAX_ATTRIBUTES` attributes, each name once (the first wins, as in §13.2.5.33),
    written anew: the name lower-case, the value in double quotes."""
    written: dict[str, str] = {}
    for attribute in itertools.islice(_ATTRIBUTE.finditer(raw), MAX_ATTRIBUTES):
        name = _ascii_lower(attribute.group(1))
        if name in written or not _ATTRIBUTE_NAME.match(name):
            continue
        value = attribute.group(2) or ""
        if value[:1] in ("'", '"'):
            value = value[1:-1]
        written[name] = value.replace('"', "&quot;")
    return "".join(f' {name}="{value}"' for name, value in written.items())


def _ascii_lower(name: str) -> str:
    """A tag or attribute name as the tokenizer lower-cases it: ASCII letters only."""
    return name.lower() if name.isascii() else name.translate(_ASCII_LOWER)


def _self_closing(attributes: str) -> bool:
    """Whether a tag ends in "/>" (§13.2.5.40): a "/" that is not the end of an unquoted value
    ("<a href=/x/>" is not self-closing)."""
    if not attributes.endswith("/"):
        return False
    last = max(attributes.rfind(space) for space in "\t\n\f\r ")
    word = attributes[last + 1 :]
    value = word.partition("=")[2]
    return not value or value.startswith(('"', "'"))


def strip_tags(html: str) -> str:
    """The text of markup too deep to give the tree builder: tags, comments and script/style
    content removed. One left-to-right scan — each search starts where the last one ended — so
    10,000 unclosed `<script>` or megabytes of `<` cost what reading them once costs. What
    follows an unclosed tag, comment or script is dropped, as a browser would not show it
    either."""
    lower = html.translate(_ASCII_LOWER)  # same length as `html`: offsets stay valid
    pieces: list[str] = []
    position = 0
    while position < len(html):
        opening = _MARKUP_OPEN.search(html, position)
        if opening is None:
            pieces.append(html[position:])
            break
        start = opening.start()
        pieces.append(html[position:start])
        position = _after_markup(lower, start, pieces)
    text = _html_module.unescape("".join(pieces))
    lines = (_SPACES.sub(" ", line).strip() for line in text.split("\n"))
    return _BLANK_RUNS.sub("\n\n", "\n".join(lines)).strip()


def _after_markup(lower: str, start: int, pieces: list[str]) -> int:
    """Where the text resumes after the tag or comment at `start` (the end of the input when it
    is never closed); a line break or a space goes to `pieces` in its place."""
    if lower.startswith("<!--", start):
        end = lower.find("-->", start + 4)
        return len(lower) if end < 0 else end + 3
    end = lower.find(">", start)
    if end < 0:
        return len(lower)
    name = _TAG_NAME.match(lower, start + 1, min(end, start + 16))
    tag = name.group(1) if name else ""
    closing = lower.startswith("</", start)
    if tag in ("script", "style") and not closing:
        pieces.append(" ")
        return _raw_text_end(lower, tag, end + 1)[1]
    pieces.append("\n" if tag in _LINE_BREAKING else "")
    return end + 1


def _raw_text_end(html: str, tag: str, position: int) -> tuple[int, int]:
    """Where the end tag that closes raw text starting at `position` starts and ends; the end
    of the input when none does (HTML §13.2.5.4: script data runs to its end tag)."""
    close = _RAW_TEXT_CLOSE[tag].search(html, position)
    if close is None:
        return len(html), len(html)
    end = html.find(">", close.end())
    return close.start(), len(html) if end < 0 else end + 1
