"""The Projects page: add a project and change it as `mailgate project add|set` would, bad
input answered inline with the form filled again, which mailboxes feed each project and which
SMTP server answers for it, and both changes in the audit log."""

from __future__ import annotations

from mailgate.context import Context
from mailgate.inbound.mailboxes import MailboxOptions, add_mailbox
from mailgate.mail.smtp_servers import SmtpOptions, add_smtp
from mailgate.tracker.audit_log import audit_log
from mailgate.tracker.service import add_project, find_project, project_view
from tests.support.web import WebClient


async def smtp(ctx: Context, name: str) -> None:
    options = SmtpOptions(host="127.0.0.1", security="none", username=f"{name}@example.com")
    await add_smtp(ctx, name, SmtpOptions(**{**vars(options), "password": "not-shown-1"}))


async def mailbox(ctx: Context, name: str, project: str) -> None:
    options = MailboxOptions(
        protocol="imap",
        host="127.0.0.1",
        username=f"{name}@example.com",
        password="not-shown-2",
        project=project,
    )
    await add_mailbox(ctx, name, options)


async def test_an_empty_list_says_what_to_do_first(admin: WebClient) -> None:
    page = await admin.get("/projects")
    assert page.status_code == 200
    assert "No projects yet." in page.text and 'href="/projects/new"' in page.text


async def test_adding_a_project_lists_it_and_records_who_did(
    ctx: Context, admin: WebClient
) -> None:
    form = await admin.get("/projects/new")
    for label in ("Key", "Name", "Outgoing mail server", "Default reporter"):
        assert f">{label}</label>" in form.text, label
    answer = await admin.post(
        "/projects",
        {"key": "help", "name": "Help  desk", "notify": "on", "default_reporter": ""},
    )
    assert answer.status_code == 303 and answer.headers["location"] == "/projects"
    listed = await admin.get("/projects")
    assert "Project HELP added." in listed.text
    assert 'data-project="HELP"' in listed.text and "Help desk" in listed.text
    project = await ctx.db.run(find_project, "HELP")
    assert project is not None
    assert project_view(project) == {
        "key": "HELP",
        "name": "Help desk",
        "smtp": None,
        "notify": True,
        "default_reporter": None,
    }
    [event] = [e for e in await audit_log(ctx) if e["action"].startswith("project.")]
    assert (event["action"], event["subject"], event["actor"]) == (
        "project.add",
        "HELP",
        "admin@example.com",
    )


async def test_a_page_fetched_by_a_script_leaves_the_message_for_the_page_shown(
    admin: WebClient,
) -> None:
    # The integration form fetches itself for its preset values (static/integrations.js); made
    # as the admin saves, that fetch must not take the "added" meant for the next page.
    await admin.post("/projects", {"key": "help", "name": "Help desk", "default_reporter": ""})
    fetched = await admin.get("/projects/new", headers={"sec-fetch-mode": "cors"})
    assert "Project HELP added." not in fetched.text
    shown = await admin.get("/projects", headers={"sec-fetch-mode": "navigate"})
    assert "Project HELP added." in shown.text
    again = await admin.get("/projects")
    assert "Project HELP added." not in again.text  # once


async def test_bad_input_is_refused_inline_with_the_form_filled_again(
    ctx: Context, admin: WebClient
) -> None:
    answer = await admin.post("/projects", {"key": "H", "name": "Kept name"})
    assert answer.status_code == 400
    assert '<p class="error" role="alert">Project key' in answer.text
    assert 'value="Kept name"' in answer.text and 'value="H"' in answer.text
    await add_project(ctx, "HELP", "Help")
    again = await admin.post("/projects", {"key": "HELP", "name": "Other"})
    assert again.status_code == 400 and "A project HELP already exists" in again.text
    reporter = await admin.post(
        "/projects", {"key": "OPS", "name": "Ops", "default_reporter": "not an address"}
    )
    assert reporter.status_code == 400 and "is not an email address" in reporter.text
    assert await ctx.db.run(find_project, "OPS") is None  # nothing stored half-way


async def test_editing_a_project_changes_what_was_given_and_logs_the_fields(
    ctx: Context, admin: WebClient
) -> None:
    await add_project(ctx, "HELP", "Help")
    await smtp(ctx, "out")
    await smtp(ctx, "second")
    page = await admin.get("/projects/HELP")
    assert page.status_code == 200 and "<h1>Project HELP</h1>" in page.text
    assert '<option value="second">second</option>' in page.text
    answer = await admin.post(
        "/projects/HELP",
        {"name": "Help desk", "smtp": "second", "default_reporter": "Desk@Example.com"},
    )
    assert answer.status_code == 303 and answer.headers["location"] == "/projects/HELP"
    project = await ctx.db.run(find_project, "HELP")
    assert project is not None
    assert (project.name, project.smtp, project.notify, project.default_reporter) == (
        "Help desk",
        "second",
        False,  # the box was not ticked
        "desk@example.com",
    )
    [event] = [e for e in await audit_log(ctx) if e["action"] == "project.set"]
    assert event["detail"] == "name, smtp, notify, default_reporter"
    unknown = await admin.post("/projects/HELP", {"name": "Help desk", "smtp": "nope"})
    assert unknown.status_code == 400 and "No SMTP server &#39;nope&#39;" in unknown.text


async def test_each_project_shows_its_mailboxes_and_the_smtp_server_that_answers(
    ctx: Context, admin: WebClient
) -> None:
    await add_project(ctx, "HELP", "Help")
    await add_project(ctx, "OPS", "Operations")
    await mailbox(ctx, "support", "HELP")
    await mailbox(ctx, "billing", "HELP")
    page = await admin.get("/projects")
    row = page.text.split('data-project="HELP"')[1].split("</tr>")[0]
    assert row.index(">billing</a>") < row.index(">support</a>")
    assert "none sent" in row  # no SMTP server at all
    ops = page.text.split('data-project="OPS"')[1].split("</tr>")[0]
    assert "no mailbox" in ops
    await smtp(ctx, "out")
    page = await admin.get("/projects")
    row = page.text.split('data-project="HELP"')[1].split("</tr>")[0]
    assert 'href="/smtp/out">out</a>' in row and "(the only SMTP server)" in row
    await smtp(ctx, "second")  # two servers and the project names neither: nothing is sent
    detail = await admin.get("/projects/HELP")
    assert "none sent" in detail.text
    assert "not-shown" not in detail.text


async def test_an_unknown_project_is_not_found(admin: WebClient) -> None:
    page = await admin.get("/projects/NOPE")
    assert page.status_code == 404 and "No project &#39;NOPE&#39;" in page.text


async def test_an_agent_is_refused(agent: WebClient) -> None:
    assert (await agent.get("/projects")).status_code == 403
    assert (await agent.post("/projects", {"key": "HELP", "name": "x"})).status_code == 403
