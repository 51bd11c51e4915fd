"""The read-only lists the navigation leads to until the agents' desk: issues newest first a
page at a time, the quarantine and the outbox; agents open the first two, not the outbox."""

from __future__ import annotations

import re

from mailgate.context import Context
from mailgate.tracker.service import add_project, create_issue, get_project, person
from mailgate.unit import Unit
from tests.support.web import WebClient


async def issues(ctx: Context, count: int) -> None:
    await add_project(ctx, "HELP", "Help desk")

    def write(unit: Unit) -> None:
        project_id = get_project(unit.session, "HELP").id
        reporter = person(unit, "carol@example.net")
        for number in range(count):
            create_issue(unit, project_id, reporter, f"Printer {number} <b>on fire</b>", "")

    await Unit.run(ctx, write)


def keys(page: str) -> list[str]:
    return re.findall(r'<tr data-issue="([^"]+)">', page)


async def test_issues_newest_first_a_page_at_a_time(ctx: Context, admin: WebClient) -> None:
    empty = await admin.get("/issues")
    assert "No issues yet." in empty.text
    await issues(ctx, 60)
    first = await admin.get("/issues")
    assert keys(first.text) == [f"HELP-{n}" for n in range(60, 10, -1)]
    assert "Page 1 of 2 (60 in all)" in first.text
    assert '<a href="/issues?page=2" rel="next">Older</a>' in first.text
    assert "Printer 59 &lt;b&gt;on fire&lt;/b&gt;" in first.text
    second = await admin.get("/issues?page=2")
    assert keys(second.text) == [f"HELP-{n}" for n in range(10, 0, -1)]
    assert '<a href="/issues?page=1" rel="prev">Newer</a>' in second.text
    assert keys((await admin.get("/issues?page=x")).text) == keys(first.text)
    assert keys((await admin.get("/issues?page=99")).text) == keys(second.text)


async def test_agents_open_issues_and_quarantine_but_not_the_outbox(agent: WebClient) -> None:
    assert (await agent.get("/issues")).status_code == 200
    quarantine = await agent.get("/quarantine")
    assert quarantine.status_code == 200 and "Nothing is held back" in quarantine.text
    assert 'href="/outbox"' not in quarantine.text  # not in an agent's navigation
    assert (await agent.get("/outbox")).status_code == 403


async def test_the_outbox_lists_what_is_sent_and_waiting(admin: WebClient) -> None:
    page = await admin.get("/outbox")
    assert page.status_code == 200 and "Nothing sent yet." in page.text
