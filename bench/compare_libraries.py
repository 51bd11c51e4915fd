"""Benchmark: mailgate's own quote stripping, HTML-to-text and IMAP client beside the libraries
that do the same job — mail-parser-reply and email-reply-parser; inscriptis and html2text;
aioimaplib. The figures behind "hand-written or library" in docs/architecture.md.

Three sections, each mailgate's code and each library measured alike in one run:

- quotes: the real-mail corpora (`../shared/corpora`) scored by their own checker
  (`check.py`'s `check_mail`) with `reply_text` made by each implementation — inside mailgate's
  parser (the HTML quote containers still cut by mailgate) and alone on the body text; the time
  per message of the stripping itself; and hostile text (long lines, many lines that look like
  an attribution, deep `>` nesting …) at three sizes, each in a process of its own.
- html: the same corpora with the HTML bodies turned into text by each implementation (alone,
  and with mailgate's quote containers cut first); the time per HTML body; and the markup that
  once cost the tree builder time or memory growing with the square of the body
  (`tests/unit/inbound/test_markup.py`'s shapes) at three sizes: the time, the growth between
  sizes (an exponent near 1 is linear), the peak memory, and whether the text survived.
- imap: a scripted IMAP server on loopback, and each client asked the same: XOAUTH2 refused
  with the server's error challenge (RFC 7628 §3.2.3), 1,500 response lines in one write, the
  connection closed during IDLE, a 16 MB line without an end, and 200 messages of 20 KB fetched
  in one command (ms per message). Plus which features `mail/imap.py` uses the library offers.

The libraries are not dependencies of mailgate; install them beside it in a venv of their own:

    python3 -m venv /tmp/libvenv && /tmp/libvenv/bin/pip install -q -e . aioimaplib \\
        inscriptis html2text mail-parser-reply email-reply-parser
    /tmp/libvenv/bin/python bench/compare_libraries.py [--sections quotes,html,imap]

Run with `.venv/bin/python`, it says which libraries are missing and measures the rest.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import importlib.metadata
import importlib.util
import json
import math
import re
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from types import ModuleType
from typing import Any

from selectolax.lexbor import LexborHTMLParser

import mailgate.inbound.parse as parse_module
from mailgate.inbound import htmltext
from mailgate.inbound.htmltext import HtmlText, render
from mailgate.inbound.markup import bounded_markup
from mailgate.inbound.quotes import split_reply, strip_quoted
from mailgate.mail.imap import AuthenticationFailed, ConnectionLost, ImapClient

ROOT = Path(__file__).resolve().parents[1]
CORPORA = (ROOT / ".." / "shared" / "corpora").resolve()
SETS = ("zammad", "talon", "crisp")


def _optional(name: str) -> ModuleType | None:
    return importlib.import_module(name) if importlib.util.find_spec(name) else None


mailparser_reply = _optional("mailparser_reply")
email_reply_parser = _optional("email_reply_parser")
inscriptis = _optional("inscriptis")
html2text = _optional("html2text")
aioimaplib = _optional("aioimaplib")
MISSING = [
    package
    for package, module in [
        ("mail-parser-reply", mailparser_reply),
        ("email-reply-parser", email_reply_parser),
        ("inscriptis", inscriptis),
        ("html2text", html2text),
        ("aioimaplib", aioimaplib),
    ]
    if module is None
]

# -- the implementations ---------------------------------------------------------------------------


def _mail_parser_reply(text: str) -> str:
    assert mailparser_reply is not None
    # Every language it knows ("david" is its test fixture): a desk gets mail in all of them.
    languages = [name for name in mailparser_reply.constants.MAIL_LANGUAGES if name != "david"]
    return mailparser_reply.EmailReplyParser(languages=languages).parse_reply(text) or ""


def _email_reply_parser(text: str) -> str:
    assert email_reply_parser is not None
    return str(email_reply_parser.EmailReplyParser.parse_reply(text) or "")


def _inscriptis(html: str) -> str:
    assert inscriptis is not None
    return str(inscriptis.get_text(html))


def _html2text(html: str) -> str:
    assert html2text is not None
    converter = html2text.HTML2Text()
    # Plain text, not Markdown: no wrapping, no emphasis marks, no link or image syntax; and
    # "&uuml;" read as "ü", not the default's ASCII "u".
    converter.body_width = 0
    converter.ignore_emphasis = converter.ignore_links = converter.ignore_images = True
    converter.unicode_snob = True
    return str(converter.handle(html))


QUOTES: dict[str, Callable[[str], str]] = {"mailgate": strip_quoted}
if mailparser_reply:
    QUOTES["mail-parser-reply"] = _mail_parser_reply
if email_reply_parser:
    QUOTES["email-reply-parser"] = _email_reply_parser
HTML: dict[str, Callable[[str], str]] = {"mailgate": lambda html: render(html).text}
if inscriptis:
    HTML["inscriptis"] = _inscriptis
if html2text:
    HTML["html2text"] = _html2text

# -- the corpora -------------------------------------------------------------------------------------


def _checker(corpora: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("corpus_check", corpora / "check.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _mails(corpora: Path) -> list[tuple[str, bytes, dict[str, Any]]]:
    mails = []
    for name in SETS:
        spec = json.loads((corpora / name / "expected.json").read_text())
        for file, expected in sorted(spec["mails"].items()):
            mails.append(
                (f"{name}/{file}", (corpora / name / "mails" / file).read_bytes(), expected)
            )
    return mails


@contextmanager
def _swapped(**functions: Any) -> Iterator[None]:
    """The parser with some of its helpers replaced, for one measurement."""
    saved = {name: getattr(parse_module, name) for name in functions}
    for name, function in functions.items():
        setattr(parse_module, name, function)
    try:
        yield
    finally:
        for name, function in saved.items():
            setattr(parse_module, name, function)


def _score(
    checker: ModuleType,
    mails: list[tuple[str, bytes, dict[str, Any]]],
    fields: tuple[str, ...],
    reply_of: Callable[[dict[str, Any]], str] | None = None,
) -> dict[str, tuple[int, int]]:
    """Passed and scored expectations per field, for the parser as it is now patched."""
    score = {field: [0, 0] for field in fields}
    for tag, raw, expected in mails:
        found = parse_module.parse_message(raw).as_json(tag)
        if reply_of is not None:
            found["reply_text"] = reply_of(found)
        for field, ok, _ in checker.check_mail(found, expected):
            if field in score:
                score[field][0] += ok
                score[field][1] += 1
    return {field: (passed, total) for field, (passed, total) in score.items()}


def _recorded(function: Callable[..., Any], into: list[Any]) -> Callable[..., Any]:
    def record(value: Any) -> Any:
        into.append(value)
        return function(value)

    return record


def _ms_per_call(function: Callable[[str], Any], inputs: list[str]) -> tuple[float, float]:
    """(mean, worst) milliseconds of one call over `inputs`, best of three passes."""
    best: list[float] = []
    for _ in range(3):
        times = []
        for value in inputs:
            started = time.perf_counter()
            function(value)
            times.append((time.perf_counter() - started) * 1000)
        best = times if not best or sum(times) < sum(best) else best
    return sum(best) / max(len(best), 1), max(best, default=0.0)


def _fraction(score: tuple[int, int]) -> str:
    return f"{score[0]}/{score[1]} ({score[0] / max(score[1], 1):.0%})"


def _table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, ["-" * width for width in widths], *rows]:
        print(
            "  "
            + "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True))
        )


# -- hostile input, each implementation in a process of its own -------------------------------------

QUOTE_SHAPES: dict[str, tuple[Callable[[int], str], int]] = {
    # name: (text of size n, n at the smallest of three sizes)
    "lines like an attribution": (lambda n: "On 5 May 2025 at 10:00 a@b.test said\n" * n, 250),
    "one 'On … wrote:' line": (lambda n: "On " + "5 May 10:00 " * n + "wrote:\n> x\n", 4_000),
    "'>' nested n deep": (lambda n: ">" * n + " x\n", 50_000),
    "a line of dashes": (lambda n: "x\n" + "-" * n + "\n", 50_000),
    "header-like lines": (lambda n: "From: a@b.test\nTo: c@d.test\n" * n, 2_000),
    "spaces between words": (lambda n: "x" + " " * n + "x\nSent from" + " " * n + "x\n", 10_000),
    "many quoted lines": (lambda n: "reply\n" + "> quoted line\n" * n, 5_000),
}
HTML_SHAPES: dict[str, tuple[Callable[[int], str], int]] = {
    "<dd><li> in turn": (lambda n: "<dd><li>x" * n, 5_000),
    "a select of n options": (lambda n: "<select>" + "<option>x</option>" * n, 5_000),
    "500 <font> re-created per block": (
        lambda n: (
            "<div>"
            + "".join(f'<font id="f{i}">' for i in range(500))
            + "</div>"
            + "<div>x</div>" * n
        ),
        1_000,
    ),
    "one element, n attributes": (
        lambda n: "<div " + "".join(f"a{i}=1 " for i in range(n)) + ">x</div>",
        10_000,
    ),
    "n <body> tags with attributes": (lambda n: "".join(f"<body a{i}>x" for i in range(n)), 5_000),
    "unclosed <b> before paragraphs": (lambda n: "<b>y<p>x</p>" * n, 500),
    "n unknown elements never closed": (lambda n: "<zz>x" * n, 5_000),
    "n nested divs": (lambda n: "<div>" * n + "x" + "</div>" * n, 5_000),
    "n unclosed <script> tags": (lambda n: "<p>x</p>" + "<script>x" * n, 100_000),
    "one long paragraph": (lambda n: "<p>" + "x " * n + "</p>", 100_000),
}
CHILD_SECONDS = 60.0  # for all three sizes
LAST_SIZE_SECONDS = 10.0  # a size that takes longer is the last one tried


def _child(section: str, name: str, shape: str) -> None:
    """Runs in a process of its own: prints `n seconds x-count` per size, then the peak memory."""
    shapes, implementations = (QUOTE_SHAPES, QUOTES) if section == "quotes" else (HTML_SHAPES, HTML)
    make, n = shapes[shape]
    function = implementations[name]
    function(make(10))  # imports and compiled patterns outside the timing
    for size in (n, 2 * n, 4 * n):
        text = make(size)
        started = time.perf_counter()
        try:
            result = function(text)
        except RecursionError:
            print(size, time.perf_counter() - started, "RecursionError", flush=True)
            break
        seconds = time.perf_counter() - started
        print(size, seconds, result.count("x"), flush=True)
        if seconds > LAST_SIZE_SECONDS:
            break
    peak = Path("/proc/self/status").read_text().split("VmHWM:")[1].split()[0]
    print("peak", peak, flush=True)


def _hostile(section: str, names: list[str]) -> None:
    shapes = QUOTE_SHAPES if section == "quotes" else HTML_SHAPES
    rows = []
    for shape, (make, n) in shapes.items():
        for name in names:
            rows.append([shape, name, *_hostile_row(section, name, shape, make, n)])
    _table(["input", "implementation", "n, 2n, 4n (ms)", "growth", "peak MB", "text kept"], rows)


def _hostile_row(
    section: str, name: str, shape: str, make: Callable[[int], str], n: int
) -> list[str]:
    command = [sys.executable, __file__, "--child", section, name, shape]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=CHILD_SECONDS)
        output, over = done.stdout, False
    except subprocess.TimeoutExpired as expired:
        out = expired.stdout or b""
        output, over = out.decode() if isinstance(out, bytes) else out, True
    sizes: list[tuple[int, float]] = []
    kept, peak = "", "?"
    for line in output.splitlines():
        fields = line.split()
        if fields[0] == "peak":
            peak = f"{int(fields[1]) / 1024:.0f}"
            continue
        size, seconds = int(fields[0]), float(fields[1])
        sizes.append((size, seconds))
        if fields[2] == "RecursionError":
            kept = "RecursionError"
        elif section == "html":
            wanted = _text_xs(make(size))
            kept = "all" if int(fields[2]) >= wanted else f"{int(fields[2])} of {wanted} x"
    times = ", ".join(f"{seconds * 1000:.0f}" for _, seconds in sizes)
    if over:
        times += f", > {CHILD_SECONDS:.0f} s in all"
    growth = "?"
    if len(sizes) >= 2 and sizes[0][1] > 0.002:
        (first, t_first), (last, t_last) = sizes[0], sizes[-1]
        growth = f"n^{math.log(t_last / t_first) / math.log(last / first):.1f}"
    elif sizes and sizes[-1][1] <= 0.002:
        growth = "(too fast)"
    return [times or "-", growth, peak, kept or "-"]


def _text_xs(html: str) -> int:
    """How many "x" a reader sees in the hostile markup: text outside tags, and nothing after an
    unclosed <script> (its raw text runs to the end)."""
    return re.sub(r"<[^>]*>", "", html.split("<script>")[0]).count("x")


# -- the sections -------------------------------------------------------------------------------------


def quotes_section(corpora: Path) -> None:
    print("\n== Quote stripping: mailgate's inbound/quotes.py beside the libraries ==")
    checker, mails = _checker(corpora), _mails(corpora)
    fields = ("reply-contains", "quote-removed")
    rows = []
    for name, function in QUOTES.items():

        def split(text: str, function: Callable[[str], str] = function) -> tuple[str, bool]:
            reply = function(text)
            return reply, " ".join(reply.split()) != " ".join(text.split())

        with _swapped(split_reply=split, strip_quoted=function):
            inside = _score(checker, mails, fields)
        alone = _score(checker, mails, fields, lambda found, f=function: f(found["body_text"]))
        rows.append(
            [name, *(_fraction(inside[f]) for f in fields), *(_fraction(alone[f]) for f in fields)]
        )
    _table(
        [
            "implementation",
            "reply kept (in parser)",
            "quote removed (in parser)",
            "reply kept (alone)",
            "quote removed (alone)",
        ],
        rows,
    )
    inputs: list[str] = []
    with _swapped(
        split_reply=_recorded(split_reply, inputs), strip_quoted=_recorded(strip_quoted, inputs)
    ):
        for _, raw, _ in mails:
            parse_module.parse_message(raw)
    timing = [
        [name, *(f"{ms:.2f}" for ms in _ms_per_call(f, inputs))] for name, f in QUOTES.items()
    ]
    print(f"\n  time per body ({len(inputs)} texts the parser strips, best of 3):")
    _table(["implementation", "mean ms", "worst ms"], timing)
    print("\n  hostile text, each implementation in its own process:")
    _hostile("quotes", list(QUOTES))


def html_section(corpora: Path) -> None:
    print("\n== HTML to text: mailgate's inbound/htmltext.py + markup.py beside the libraries ==")
    checker, mails = _checker(corpora), _mails(corpora)
    fields = ("body-contains", "reply-contains", "quote-removed")
    rows = []
    for name, convert in HTML.items():
        if name == "mailgate":
            scores = [_score(checker, mails, fields)] * 2
        else:
            with _swapped(render=lambda html, c=convert: HtmlText(c(html), c(html), False)):
                alone = _score(checker, mails, fields)
            with _swapped(render=lambda html, c=convert: _with_containers(html, c)):
                contained = _score(checker, mails, fields)
            scores = [alone, contained]
        rows.append([name, *(_fraction(s[f]) for s in scores for f in fields)])
    _table(
        [
            "implementation",
            "body (alone)",
            "reply kept",
            "quote removed",
            "body (+ containers)",
            "reply kept",
            "quote removed",
        ],
        rows,
    )
    inputs: list[str] = []
    everything = _recorded(render, inputs)
    with _swapped(render=everything, _HTML_QUOTE_HINTS=("",)):
        for _, raw, _ in mails:
            parse_module.parse_message(raw)
    timing = [[name, *(f"{ms:.2f}" for ms in _ms_per_call(f, inputs))] for name, f in HTML.items()]
    print(f"\n  time per HTML body ({len(inputs)} bodies of the corpora, best of 3; mailgate's")
    print("  figure is `render`, which also finds the quote containers):")
    _table(["implementation", "mean ms", "worst ms"], timing)
    print("\n  hostile markup, each implementation in its own process:")
    _hostile("html", list(HTML))


def _with_containers(html: str, convert: Callable[[str], str]) -> HtmlText:
    """The library's text, and its text of the tree once mailgate cut the quote containers."""
    text = convert(html)
    markup = bounded_markup(html)
    if markup is None:
        return HtmlText(text, text, False)
    tree = LexborHTMLParser(markup)
    root = tree.body or tree.root
    if root is None or not htmltext._cut_quotes(tree, root, spared=set()):
        return HtmlText(text, text, False)
    return HtmlText(text, convert(tree.html or ""), True)


# -- IMAP -----------------------------------------------------------------------------------------------

CAPABILITY = "IMAP4rev1 SASL-IR AUTH=XOAUTH2 AUTH=OAUTHBEARER IDLE UIDPLUS MOVE"
ERROR_CHALLENGE = base64.b64encode(
    json.dumps({"status": "401", "schemes": "bearer", "scope": "https://mail.example/"}).encode()
).decode()
MESSAGE = b"Subject: x\r\n\r\n" + b"0123456789abcdef" * 1280  # 20 KB
FETCHED = 200
HANG_SECONDS = 15.0  # what a client has not answered by then, it is taken to hang


async def _session(script: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """One connection to the scripted server; `script` names what it does to the client."""
    writer.write(f"* OK [CAPABILITY {CAPABILITY}] ready\r\n".encode())
    while line := await reader.readline():
        tag, _, command = line.decode().strip().partition(" ")
        verb = command.split(" ")[0].upper()
        reply = f"{tag} OK done\r\n".encode()
        if verb == "CAPABILITY":
            reply = f"* CAPABILITY {CAPABILITY}\r\n".encode() + reply
        elif verb == "AUTHENTICATE":
            writer.write(f"+ {ERROR_CHALLENGE}\r\n".encode())
            await writer.drain()
            await reader.readline()  # the client's answer to the challenge
            reply = f"{tag} NO [AUTHENTICATIONFAILED] Invalid credentials\r\n".encode()
        elif verb == "SELECT":
            reply = f"* 1500 EXISTS\r\n* OK [UIDVALIDITY 7] ok\r\n{tag} OK selected\r\n".encode()
        elif verb == "IDLE" or (verb == "UID" and script == "endless"):
            if verb == "IDLE":
                writer.write(b"+ idling\r\n")
            else:
                for _ in range(256):
                    writer.write(b"* 1 FETCH (" + b"x" * 65536)
                    await writer.drain()
            await writer.drain()
            writer.close()
            return
        elif verb == "UID" and script == "lines":
            lines = "".join(f"* {n} FETCH (UID {n} RFC822.SIZE 100)\r\n" for n in range(1, 1501))
            reply = lines.encode() + reply
        elif verb == "UID":
            for n in range(1, FETCHED + 1):
                writer.write(b"* %d FETCH (UID %d BODY[] {%d}\r\n" % (n, n, len(MESSAGE)))
                writer.write(MESSAGE + b")\r\n")
        writer.write(reply)
        await writer.drain()


async def _against(script: str, client: Callable[[int], Any]) -> str:
    """Runs `client(port)` against the scripted server: its outcome, what the event loop was
    told of (an exception in a protocol callback is only logged), and how long it took."""
    loop = asyncio.get_running_loop()
    logged: list[str] = []
    loop.set_exception_handler(
        lambda _, context: logged.append(type(context.get("exception")).__name__)
    )

    async def session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with suppress(ConnectionError, asyncio.CancelledError):
            await _session(script, reader, writer)

    server = await asyncio.start_server(session, "127.0.0.1", 0)
    started = time.perf_counter()
    try:
        port = server.sockets[0].getsockname()[1]
        outcome = str(await asyncio.wait_for(client(port), HANG_SECONDS))
    except TimeoutError:
        outcome = "no answer"
    except Exception as error:  # what a client raises is the finding
        outcome = f"{type(error).__name__}: {str(error)[:70]}"
    finally:
        server.close()
    if logged:
        outcome += f" (logged: {', '.join(sorted(set(logged)))})"
    return f"{outcome} [{time.perf_counter() - started:.2f} s]"


async def _ours(script: str, port: int) -> str:
    async with ImapClient.connect(
        "127.0.0.1", port, security="none", tls=ssl.create_default_context(), timeout=5
    ) as imap:
        if script == "auth":
            try:
                await imap.authenticate("XOAUTH2", "user@example.com", "token")
            except AuthenticationFailed as refused:
                challenge = refused.challenge
                return f"refused: {refused.text}; challenge status {challenge and challenge.status}"
        await imap.login("user", "secret")
        await imap.select("INBOX")
        if script == "idle":
            return f"idle returned {await imap.idle(5)}"
        if script == "throughput":
            return await _per_message(lambda: imap.fetch_many(list(range(1, FETCHED + 1))), len)
        try:
            found = await imap.command("UID FETCH 1:1500 (UID RFC822.SIZE)")
        except ConnectionLost as lost:
            return f"ConnectionLost: {lost}"
        return f"{len(found) - 1} lines read"


async def _theirs(script: str, port: int) -> str:
    assert aioimaplib is not None
    imap = aioimaplib.IMAP4(host="127.0.0.1", port=port, timeout=5)
    await imap.wait_hello_from_server()
    if script == "auth":
        response = await imap.xoauth2("user@example.com", "token")
        return f"{response.result} {response.lines[-1][:60]!r}"
    await imap.login("user", "secret")
    await imap.select("INBOX")
    if script == "idle":
        await imap.idle_start(timeout=5)
        try:
            return f"wait_server_push: {await imap.wait_server_push(timeout=5)}"
        except TimeoutError:
            return "no answer until wait_server_push's own timeout (5 s here, 29 min by default)"
    if script == "throughput":
        return await _per_message(
            lambda: imap.uid("fetch", f"1:{FETCHED}", "(UID BODY.PEEK[])"),
            lambda response: sum(isinstance(line, bytearray) for line in response.lines),
        )
    try:
        response = await imap.uid("fetch", "1:1500", "(UID RFC822.SIZE)")
    except aioimaplib.CommandTimeout:
        held = len(imap.protocol.incomplete_line)
        return f"CommandTimeout, {held / 2**20:.0f} MB held in memory"
    return f"{response.result}, {len(response.lines) - 1} lines read"


async def _per_message(fetch: Callable[[], Any], count: Callable[[Any], int]) -> str:
    best, fetched = math.inf, 0
    for _ in range(3):
        started = time.perf_counter()
        fetched = count(await fetch())
        best = min(best, time.perf_counter() - started)
    return f"{fetched} messages, {best * 1000 / FETCHED:.2f} ms/message"


def imap_section() -> None:
    print("\n== IMAP: mailgate's mail/imap.py beside aioimaplib ==")
    scripts = {
        "auth": "XOAUTH2 refused with an error challenge",
        "lines": "1,500 FETCH lines in one write",
        "idle": "connection closed during IDLE",
        "endless": "a 16 MB line without CRLF",
        "throughput": f"{FETCHED} messages of 20 KB, one UID FETCH (best of 3)",
    }
    rows = []
    for script, what in scripts.items():
        ours = asyncio.run(_against(script, lambda port, s=script: _ours(s, port)))
        theirs = "(aioimaplib missing)"
        if aioimaplib is not None:
            theirs = asyncio.run(_against(script, lambda port, s=script: _theirs(s, port)))
        rows.append([what, ours, theirs])
    _table(["server does", "mailgate", "aioimaplib"], rows)
    if aioimaplib is None:
        return
    client = aioimaplib.IMAP4
    protocol = aioimaplib.IMAP4ClientProtocol
    features = {
        "STARTTLS": any(hasattr(c, "starttls") for c in (client, protocol)),
        "AUTHENTICATE (any mechanism)": any(hasattr(c, "authenticate") for c in (client, protocol)),
        "AUTHENTICATE XOAUTH2": any(hasattr(c, "xoauth2") for c in (client, protocol)),
        "AUTHENTICATE OAUTHBEARER": any(hasattr(c, "oauthbearer") for c in (client, protocol)),
        "IDLE (renewed by the caller)": hasattr(client, "idle_start"),
    }
    print(f"\n  aioimaplib {_version('aioimaplib')} offers what mail/imap.py uses:")
    _table(["feature", "aioimaplib"], [[k, "yes" if v else "no"] for k, v in features.items()])


def _version(package: str) -> str:
    return importlib.metadata.version(package)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sections", default="quotes,html,imap")
    parser.add_argument("--corpora", type=Path, default=CORPORA)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(*args.child)
        return
    if MISSING:
        print(f"not installed, left out: {', '.join(MISSING)} (see this script's docstring)")
    sections = args.sections.split(",")
    if "quotes" in sections:
        quotes_section(args.corpora)
    if "html" in sections:
        html_section(args.corpora)
    if "imap" in sections:
        imap_section()


if __name__ == "__main__":
    main()
