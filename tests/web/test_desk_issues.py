"""The agents' desk for issues: the list (search, filters, keyset pages, every view a URL), an
issue as a conversation, comments mailed threaded to the reporter, close, reopen, assign, and
attachments that a browser never runs."""

from __future__ import annotations

import re
from email import message_from_bytes, policy
from email.message import EmailMessage
from html import unescape

from sqlalchemy import select

from mailgate.context import Context
from mailgate.store.models import AuditEvent, OutboxMessage, Person
from mailgate.tracker.issues import assign, set_status, show_issue
from mailgate.tracker.service import NewAttachment
from tests.support.desk import PNG, desk_project, mailed, many_issues, message
from tests.support.web import WebClient


def keys(page: str) -> list[str]:
    return re.findall(r'<tr data-issue="([^"]+)">', page)


def link(page: str, label: str) -> str:
    found = re.search(rf'<a href="([^"]+)"[^>]*>{label}</a>', page)
    assert found is not None, f"no link {label!r}"
    return unescape(found.group(1))


async def outbox(ctx: Context) -> list[EmailMessage]:
    raws = await ctx.db.read(
        lambda s: s.scalars(select(OutboxMessage.raw).order_by(OutboxMessage.id)).all()
    )
    return [message_from_bytes(raw, policy=policy.default) for raw in raws]  # type: ignore[misc]


async def test_the_list_pages_by_cursor_newest_first(ctx: Context, agent: WebClient) -> None:
    empty = await agent.get("/issues")
    assert "No issues yet." in empty.text
    await desk_project(ctx)
    await many_issues(ctx, [f"Printer {n} <b>on fire</b>" for n in range(1, 61)])
    first = await agent.get("/issues")
    assert keys(first.text) == [f"HELP-{n}" for n in range(60, 10, -1)]
    assert "Printer 59 &lt;b&gt;on fire&lt;/b&gt;" in first.text
    assert '<a href="/issues/HELP-60">' in first.text  # the summary leads to the issue
    second = await agent.get(link(first.text, "Next page"))
    assert keys(second.text) == [f"HELP-{n}" for n in range(10, 0, -1)]
    assert "Next page" not in second.text and link(second.text, "First page") == "/issues"
    oldest = await agent.get("/issues?order=asc&sort=created")
    assert keys(oldest.text)[:2] == ["HELP-1", "HELP-2"]
    assert link(oldest.text, "Next page").startswith("/issues?sort=created&order=asc&cursor=")
    # A cursor of another sort, or a made-up one, is refused with the way out.
    mangled = await agent.get("/issues?cursor=nonsense")
    assert mangled.status_code == 400 and "start again without it" in mangled.text


async def test_search_and_filters_find_the_issues(ctx: Context, agent: WebClient) -> None:
    await desk_project(ctx)
    await many_issues(ctx, ["Toner is empty", "Paper jam", "Screen flickers"])
    await many_issues(ctx, ["Mouse is gone"], reporter="dave@example.net")
    await many_issues(ctx, ["Scanned form"], attachments=[NewAttachment("a.png", "image/png", PNG)])
    await set_status(ctx, "HELP-2", "closed")
    await assign(ctx, "HELP-3", "agent@example.com")
    await assign(ctx, "HELP-4", "boss@example.com")

    async def found(query: str) -> list[str]:
        answer = await agent.get("/issues?" + query)
        assert answer.status_code == 200, answer.text
        return keys(answer.text)

    assert await found("q=toner") == ["HELP-1"]
    assert await found("q=HELP-3") == ["HELP-3"]
    assert await found("q=dave") == ["HELP-4"]
    assert await found("status=closed") == ["HELP-2"]
    assert await found("status=open&sort=created&order=asc") == [
        "HELP-1",
        "HELP-3",
        "HELP-4",
        "HELP-5",
    ]
    assert await found("reporter=dave%40example.net") == ["HELP-4"]
    assert await found("assignee=me") == ["HELP-3"]
    assert await found("assignee=boss%40example.com") == ["HELP-4"]
    assert sorted(await found("assignee=nobody")) == ["HELP-1", "HELP-2", "HELP-5"]
    assert await found("attachments=yes") == ["HELP-5"]
    assert len(await found("attachments=no")) == 4
    assert len(await found("since=2000-01-01")) == 5 and await found("since=2999-01-01") == []
    page = await agent.get("/issues?q=toner&status=open")
    assert 'value="toner"' in page.text and '<option value="open" selected>' in page.text
    nothing = await agent.get("/issues?q=xylophone")
    assert "No issue matches." in nothing.text and 'href="/issues">show every issue' in nothing.text
    unknown = await agent.get("/issues?project=NOPE")
    assert unknown.status_code == 400 and "No project &#39;NOPE&#39;" in unknown.text
    bad_day = await agent.get("/issues?since=yesterday")
    assert bad_day.status_code == 400 and "use the form YYYY-MM-DD" in bad_day.text


async def test_an_issue_is_shown_as_its_conversation(ctx: Context, agent: WebClient) -> None:
    await desk_project(ctx)
    first = message(body="It is burning.\nSecond line.", cc="dave@example.net")
    assert await mailed(ctx, first) == "created"
    reply = message(
        "Re: HELP-1",
        message_id="<r1@example.net>",
        body="Still burning.",
        attachments=[("smoke.png", "image/png", PNG)],
    )
    assert await mailed(ctx, reply) == "commented"
    await agent.post("/issues/HELP-1/comments", {"body": "We are on our way."})
    page = await agent.get("/issues/HELP-1")
    assert page.status_code == 200
    text = page.text
    assert "Printer on fire" in text and "dave@example.net" in text  # a watcher
    bodies = re.findall(r'<div class="body">(.*?)</div>', text, re.S)
    assert [b.strip() for b in bodies] == [
        "It is burning.\nSecond line.",
        "Still burning.",
        "We are on our way.",
    ]
    origins = re.findall(r'<span class="origin">([^<]+)</span>', text)
    assert origins == ["by email", "by email", "in mailgate"]
    authors = re.findall(r'<p class="meta"><strong>([^<]+)</strong>', text)
    assert authors == ["carol@example.net", "carol@example.net", "agent@example.com"]
    # The picture is listed under the reply it came with, with a preview.
    reply_entry = text[text.index("Still burning.") : text.index("We are on our way.")]
    [attachment_id] = re.findall(
        r'href="/issues/HELP-1/attachments/(\d+)">smoke.png</a>', reply_entry
    )
    assert f'src="/issues/HELP-1/attachments/{attachment_id}/preview"' in reply_entry
    assert "image/png" in reply_entry
    missing = await agent.get("/issues/HELP-99")
    assert missing.status_code == 404 and "No issue" in missing.text


async def test_an_agents_comment_is_mailed_threaded_to_reporter_and_watchers(
    ctx: Context, agent: WebClient
) -> None:
    await desk_project(ctx)
    await mailed(ctx, message(cc="dave@example.net"))
    before = len(await outbox(ctx))
    answer = await agent.post("/issues/HELP-1/comments", {"body": "We replaced the toner."})
    assert answer.status_code == 303 and answer.headers["location"] == "/issues/HELP-1"
    shown = await agent.get("/issues/HELP-1")
    assert "Comment added and mailed to 2 people." in shown.text
    sent = (await outbox(ctx))[before:]
    assert [m["To"] for m in sent] == ["carol@example.net", "dave@example.net"]
    for mail in sent:
        assert mail["In-Reply-To"] == "<m1@example.net>"
        assert "<m1@example.net>" in mail["References"]
        assert mail["Subject"] == "Re: [HELP-1] Printer on fire"
        assert "We replaced the toner." in mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    [comment] = (await show_issue(ctx, "HELP-1"))["comments"]
    assert comment["author"] == "agent@example.com" and comment["source_message_id"] is None
    kind = await ctx.db.read(
        lambda s: s.scalar(select(Person.kind).where(Person.email == "agent@example.com"))
    )
    assert kind == "agent"
    # The customer's reply to the agent's mail comes back to the issue.
    reply = message(
        "Re: your answer", message_id="<r2@example.net>", in_reply_to=sent[0]["Message-ID"]
    )
    assert await mailed(ctx, reply) == "commented"


async def test_an_empty_comment_is_refused_beside_the_form(ctx: Context, agent: WebClient) -> None:
    await desk_project(ctx)
    await mailed(ctx, message())
    answer = await agent.post("/issues/HELP-1/comments", {"body": "  \n "})
    assert answer.status_code == 400
    assert "The comment is empty" in answer.text and 'aria-invalid="true"' in answer.text
    assert re.search(r'<textarea id="body"[^>]*>  \n </textarea>', answer.text)
    assert (await show_issue(ctx, "HELP-1"))["comments"] == []


async def test_close_reopen_and_assign(ctx: Context, agent: WebClient) -> None:
    await desk_project(ctx)
    await mailed(ctx, message())
    page = await agent.get("/issues/HELP-1")
    assert '<option value="agent@example.com">' in page.text  # enabled users to choose
    assert '<option value="boss@example.com">' in page.text
    closed = await agent.post("/issues/HELP-1/close")
    assert closed.status_code == 303 and closed.headers["location"] == "/issues/HELP-1"
    page = await agent.get("/issues/HELP-1")
    assert "HELP-1 is closed." in page.text and ">Reopen</button>" in page.text
    assert (await show_issue(ctx, "HELP-1"))["status"] == "closed"
    told = [m for m in await outbox(ctx) if "is now closed" in m.get_body(("plain",)).get_content()]  # type: ignore[union-attr]
    assert [m["To"] for m in told] == ["carol@example.net"]
    assert (await agent.post("/issues/HELP-1/reopen")).status_code == 303
    assert (await show_issue(ctx, "HELP-1"))["status"] == "open"

    assigned = await agent.post("/issues/HELP-1/assign", {"assignee": "agent@example.com"})
    assert assigned.status_code == 303
    page = await agent.get("/issues/HELP-1")
    assert "HELP-1 is assigned to agent@example.com." in page.text
    assert '<option value="agent@example.com" selected>' in page.text
    assert (await show_issue(ctx, "HELP-1"))["assignee"] == "agent@example.com"
    audit = await ctx.db.read(
        lambda s: s.execute(
            select(AuditEvent.actor, AuditEvent.subject, AuditEvent.detail).where(
                AuditEvent.action == "issue.assign"
            )
        ).all()
    )
    assert audit == [("agent@example.com", "HELP-1", "agent@example.com")]
    refused = await agent.post("/issues/HELP-1/assign", {"assignee": "nobody@example.org"})
    assert refused.status_code == 400 and "is not an enabled user" in refused.text
    assert (await show_issue(ctx, "HELP-1"))["assignee"] == "agent@example.com"
    assert (await agent.post("/issues/HELP-1/assign", {"assignee": ""})).status_code == 303
    assert (await show_issue(ctx, "HELP-1"))["assignee"] is None


ODD = '../../etc/Grüße "x".txt'


async def test_attachments_download_and_only_real_pictures_show(
    ctx: Context, agent: WebClient
) -> None:
    await desk_project(ctx)
    files = [
        ("smoke.png", "image/png", PNG),
        ("page.html", "text/html", b"<script>alert(1)</script>"),
        (
            "logo.svg",
            "image/svg+xml",
            b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
        ),
        ("fake.png", "image/png", b"<html><script>alert(1)</script></html>"),
        (ODD, "text/plain", b"hello"),
    ]
    await mailed(ctx, message(attachments=files))
    await mailed(ctx, message("Another", message_id="<m2@example.net>"))
    ids = {a["filename"]: a["id"] for a in (await show_issue(ctx, "HELP-1"))["attachments"]}
    base = "/issues/HELP-1/attachments"

    png = await agent.get(f"{base}/{ids['smoke.png']}")
    assert png.status_code == 200 and png.content == PNG
    assert png.headers["content-type"] == "image/png"
    assert png.headers["content-disposition"] == 'attachment; filename="smoke.png"'
    assert png.headers["x-content-type-options"] == "nosniff"
    shown = await agent.get(f"{base}/{ids['smoke.png']}/preview")
    assert shown.status_code == 200 and shown.headers["content-type"] == "image/png"
    assert shown.headers["content-disposition"].startswith("inline;")
    assert shown.headers["content-security-policy"] == "default-src 'none'"

    for name in ("page.html", "logo.svg", "fake.png"):
        download = await agent.get(f"{base}/{ids[name]}")
        assert download.headers["content-type"] == "application/octet-stream", name
        assert download.headers["content-disposition"].startswith("attachment;"), name
        assert download.headers["x-content-type-options"] == "nosniff"
        assert (await agent.get(f"{base}/{ids[name]}/preview")).status_code == 404, name
    page = (await agent.get("/issues/HELP-1")).text
    assert page.count("/preview") == 1  # only the real picture

    # A name as the parser might keep it, whatever it makes of it, is made safe to save.
    await many_issues(ctx, ["Odd name"], attachments=[NewAttachment(ODD, "text/plain", b"x")])
    [odd_id] = [a["id"] for a in (await show_issue(ctx, "HELP-3"))["attachments"]]
    odd = await agent.get(f"/issues/HELP-3/attachments/{odd_id}")
    disposition = odd.headers["content-disposition"]
    assert "/" not in disposition.split(";", 1)[1].replace("filename*=UTF-8''", "")
    assert disposition == (
        "attachment; filename=\"etc_Gr__e _x_.txt\"; filename*=UTF-8''etc_Gr%C3%BC%C3%9Fe%20_x_.txt"
    )
    # Another issue's page gives none of this issue's attachments.
    assert (await agent.get(f"/issues/HELP-2/attachments/{ids['smoke.png']}")).status_code == 404
    assert (await agent.get(f"{base}/nonsense")).status_code == 404


async def test_a_hostile_subject_body_and_file_name_show_as_text(
    ctx: Context, agent: WebClient
) -> None:
    await desk_project(ctx)
    hostile = "<script>alert('x')</script>"
    raw = message(
        f"Help {hostile}",
        sender=f'"{hostile}" <mallory@example.net>',
        body=f"Body {hostile} <img src=x onerror=alert(1)>",
        attachments=[(f"{hostile}.txt", "text/plain", b"x")],
    )
    assert await mailed(ctx, raw) == "created"
    await agent.post("/issues/HELP-1/comments", {"body": f"Comment {hostile}"})
    for path in ("/issues", "/issues/HELP-1", "/issues?q=help"):
        page = (await agent.get(path)).text
        assert "<script>alert" not in page and "<img src=x" not in page, path
        assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in page, path


async def test_a_form_without_its_csrf_token_changes_nothing(
    ctx: Context, agent: WebClient
) -> None:
    await desk_project(ctx)
    await mailed(ctx, message())
    for path, data in (
        ("/issues/HELP-1/comments", {"body": "Sneaky."}),
        ("/issues/HELP-1/close", {}),
        ("/issues/HELP-1/assign", {"assignee": "agent@example.com"}),
    ):
        answer = await agent.http.post(path, data=data)
        assert answer.status_code == 403, path
    view = await show_issue(ctx, "HELP-1")
    assert (view["comments"], view["status"], view["assignee"]) == ([], "open", None)
