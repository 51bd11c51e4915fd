"""The read-only lists the navigation leads to until the agents' desk: the quarantine and the
outbox (the issues: test_desk_issues.py); agents open the issues and the quarantine, not the
outbox."""

from __future__ import annotations

from tests.support.web import WebClient


async def test_agents_open_issues_and_quarantine_but_not_the_outbox(agent: WebClient) -> None:
    assert (await agent.get("/issues")).status_code == 200
    quarantine = await agent.get("/quarantine")
    assert quarantine.status_code == 200 and "Nothing is held back" in quarantine.text
    assert 'href="/outbox"' not in quarantine.text  # not in an agent's navigation
    assert (await agent.get("/outbox")).status_code == 403


async def test_the_outbox_lists_what_is_sent_and_waiting(admin: WebClient) -> None:
    page = await admin.get("/outbox")
    assert page.status_code == 200 and "Nothing sent yet." in page.text
