"""The Audit log page: newest first, filtered by what the action starts with and a first day,
a page at a time with a cursor that neither skips nor repeats an event (even with many at the
same second), everything escaped."""

from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy.orm import Session

from mailgate.context import Context
from mailgate.store import audit
from tests.support.clock import FakeClock
from tests.support.web import WebClient

SUBJECT = re.compile(
    r'<tr data-action="[^"]+">.*?</td>\s*<td>.*?</td>\s*<td><code>[^<]+</code></td>\s*<td>([^<]*)</td>',
    re.S,
)


async def record(ctx: Context, action: str, subject: str, detail: str | None = None) -> None:
    def write(session: Session) -> None:
        audit.record(session, ctx.clock(), action, subject, detail)

    await ctx.db.run(write)


def subjects(page: str) -> list[str]:
    return SUBJECT.findall(page)


def older_link(page: str) -> str | None:
    found = re.search(r'<a href="([^"]+)" rel="next">Older</a>', page)
    return found.group(1).replace("&amp;", "&") if found else None


async def test_the_log_pages_through_a_thousand_events_newest_first(
    ctx: Context, admin: WebClient, clock: FakeClock
) -> None:
    for number in range(1000):
        if number % 7 == 0:  # several events share each second
            clock.advance(seconds=1)
        await record(ctx, "mailbox.set", f"box-{number:04}")
    seen: list[str] = []
    path: str | None = "/audit?action=mailbox."
    pages = 0
    while path is not None:
        page = await admin.get(path)
        assert page.status_code == 200
        shown = subjects(page.text)
        assert 0 < len(shown) <= 100
        seen += shown
        path = older_link(page.text)
        pages += 1
        if pages > 1:
            assert ">Newest</a>" in page.text
    assert pages == 10
    assert seen == [f"box-{n:04}" for n in reversed(range(1000))]


async def test_the_action_and_since_filters(
    ctx: Context, admin: WebClient, clock: FakeClock
) -> None:
    clock.advance(days=-3)  # (moving on instead would end the admin's session)
    await record(ctx, "project.add", "OLD")
    clock.advance(days=3)
    await record(ctx, "project.set", "HELP", "name")
    await record(ctx, "user_add", "not a user. event")  # "_" is no wildcard
    first = await admin.get("/audit")
    shown = subjects(first.text)
    assert shown[:2] == ["not a user. event", "HELP"] and shown[-1] == "OLD"
    only_projects = await admin.get("/audit?action=project.")
    assert subjects(only_projects.text) == ["HELP", "OLD"]
    assert 'value="project."' in only_projects.text  # the form shows the filter
    day = (clock() - timedelta(days=1)).date().isoformat()
    recent = await admin.get(f"/audit?action=project.&since={day}")
    assert subjects(recent.text) == ["HELP"]
    assert "user" not in "".join(subjects((await admin.get("/audit?action=user.")).text))
    none = await admin.get("/audit?action=credential.")
    assert "Nothing matches" in none.text
    bad = await admin.get("/audit?since=yesterday")
    assert bad.status_code == 400
    assert '<p class="error" role="alert">&#39;yesterday&#39; is not a date' in bad.text


async def test_what_a_user_typed_is_shown_as_text(ctx: Context, admin: WebClient) -> None:
    await record(ctx, "project.add", "<script>alert(1)</script>", '"><img src=x onerror=alert(1)>')
    page = await admin.get("/audit")
    assert "<script>alert(1)</script>" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert "<img src=x" not in page.text


async def test_sign_ins_show_with_who_and_from_where(admin: WebClient) -> None:
    page = await admin.get("/audit?action=user.sign-in")
    row = page.text.split('data-action="user.sign-in"')[1].split("</tr>")[0]
    assert "admin@example.com" in row


async def test_an_agent_is_refused(agent: WebClient) -> None:
    assert (await agent.get("/audit")).status_code == 403
