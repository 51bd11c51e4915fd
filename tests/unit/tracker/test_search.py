"""The desk's search: words from a summary, a description, a comment or the reporter find the
issue; filters, both sorts and keyset pages; what a visitor types never becomes query syntax."""

from __future__ import annotations

from datetime import timedelta

import pytest
from tests.support.clock import FakeClock

from mailgate.context import Context
from mailgate.errors import BadInput
from mailgate.store.vocabulary import IssueStatus
from mailgate.tracker import service
from mailgate.tracker.search import IssueQuery, search_issues
from mailgate.unit import Unit


async def _desk(ctx: Context, clock: FakeClock) -> None:
    await service.add_project(ctx, "HELP", "Help desk")
    await service.add_project(ctx, "OPS", "Operations")

    def write(unit: Unit, project: str, reporter: str, summary: str, body: str) -> None:
        found = service.find_project(unit.session, project)
        assert found is not None
        who = service.person(unit, reporter, "Ann Example")
        issue = service.create_issue(unit, found.id, who, summary, body)
        if "printer" in summary:
            service.add_comment(unit, issue, who, "The toner is empty, says the display.")

    await Unit.run(ctx, write, "HELP", "ann@example.com", "The printer is offline", "Since 9.")
    clock.advance(minutes=1)
    await Unit.run(ctx, write, "HELP", "bob@example.org", "VPN refuses me", "Error 809, café")
    clock.advance(minutes=1)
    await Unit.run(ctx, write, "OPS", "ann@example.com", "Disk full on db1", "df says 100%")


async def _keys(ctx: Context, query: IssueQuery, **options: object) -> list[str]:
    page = await ctx.db.read(search_issues, query, **options)  # type: ignore[arg-type]
    return [item["key"] for item in page.items]


async def test_words_find_issues_in_every_field(ctx: Context, clock: FakeClock) -> None:
    await _desk(ctx, clock)
    assert await _keys(ctx, IssueQuery()) == ["OPS-1", "HELP-2", "HELP-1"]
    assert await _keys(ctx, IssueQuery(text="toner")) == ["HELP-1"]  # a comment's word
    assert await _keys(ctx, IssueQuery(text="offline printer")) == ["HELP-1"]
    assert await _keys(ctx, IssueQuery(text="prin")) == ["HELP-1"]  # the last word, a prefix
    if ctx.db.dialect == "sqlite":  # PostgreSQL's `simple` configuration keeps accents
        assert await _keys(ctx, IssueQuery(text="cafe")) == ["HELP-2"]
    assert await _keys(ctx, IssueQuery(text="café")) == ["HELP-2"]
    assert await _keys(ctx, IssueQuery(text="bob@example.org")) == ["HELP-2"]
    assert await _keys(ctx, IssueQuery(text="help-2")) == ["HELP-2"]
    assert await _keys(ctx, IssueQuery(text="ann", project="OPS")) == ["OPS-1"]
    assert await _keys(ctx, IssueQuery(text="nothing-like-this")) == []


@pytest.mark.parametrize(
    "text", ['"', "toner OR *", "NEAR(a b)", "body:x", "'; DROP TABLE issues; --", "^a -b"]
)
async def test_query_syntax_typed_is_only_words(ctx: Context, clock: FakeClock, text: str) -> None:
    await _desk(ctx, clock)
    await ctx.db.read(search_issues, IssueQuery(text=text))  # no error, whatever it finds
    assert len(await _keys(ctx, IssueQuery())) == 3


async def test_filters_sorts_and_pages(ctx: Context, clock: FakeClock) -> None:
    await _desk(ctx, clock)
    assert await _keys(ctx, IssueQuery(reporter="ANN@example.com")) == ["OPS-1", "HELP-1"]
    assert await _keys(ctx, IssueQuery(assignee="")) == ["OPS-1", "HELP-2", "HELP-1"]
    assert await _keys(ctx, IssueQuery(status=IssueStatus.CLOSED)) == []
    assert await _keys(ctx, IssueQuery(order="asc")) == ["HELP-1", "HELP-2", "OPS-1"]
    since = clock() - timedelta(seconds=30)
    assert await _keys(ctx, IssueQuery(updated_since=since)) == ["OPS-1"]
    seen: list[str] = []
    cursor = None
    while True:
        page = await ctx.db.read(search_issues, IssueQuery(sort="created"), cursor=cursor, limit=2)
        seen += [item["key"] for item in page.items]
        if page.next is None:
            break
        cursor = page.next
    assert seen == ["OPS-1", "HELP-2", "HELP-1"]
    with pytest.raises(BadInput, match="cursor"):
        await ctx.db.read(search_issues, IssueQuery(), cursor=cursor or "bogus")
    with pytest.raises(BadInput, match="cursor"):
        await ctx.db.read(search_issues, IssueQuery(), cursor="!!!")
    first = (await ctx.db.read(search_issues, IssueQuery(), limit=1)).items[0]
    assert first["comments"] == 0 and first["attachments"] == 0 and first["project"] == "OPS"


async def test_an_issue_is_found_by_its_new_comment_in_the_same_transaction(
    ctx: Context, clock: FakeClock
) -> None:
    await _desk(ctx, clock)

    def comment_and_search(unit: Unit) -> list[str]:
        ref = service.issue_ref_by_key(unit.session, "OPS-1")
        assert ref is not None
        service.add_comment(unit, ref, ref.reporter_id, "Zebrafish logs rotated")
        return [i["key"] for i in search_issues(unit.session, IssueQuery(text="zebrafish")).items]

    assert await Unit.run(ctx, comment_and_search) == ["OPS-1"]
