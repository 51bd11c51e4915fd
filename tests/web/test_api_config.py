"""The configuration in the REST API, as the CLI has it: projects, integrations, credentials,
mailboxes, SMTP servers and users — a PATCH changes only what it gives, a retried POST with its
Idempotency-Key creates nothing new, the client secret and passwords are write-only, an unknown
name is a 404 problem, a connection test answers the steps of `test --json`."""

from __future__ import annotations

import socket

import httpx2
from sqlalchemy import select

from mailgate.context import Context
from mailgate.store.models import IdempotencyKey
from mailgate.tracker.service import list_projects
from tests.web.test_no_secret_in_pages import _configure

PROBLEM = "application/problem+json"


async def test_projects_are_added_once_per_key_and_changed_field_by_field(
    ctx: Context, admin_api: httpx2.AsyncClient
) -> None:
    await _configure(ctx)  # project HELP, SMTP server "outgoing"
    body = {"key": "SALES", "name": "Sales", "smtp": "outgoing"}
    key = {"Idempotency-Key": "add-sales-1"}
    first = await admin_api.post("/projects", json=body, headers=key)
    again = await admin_api.post("/projects", json=body, headers=key)
    assert (first.status_code, again.status_code) == (201, 201)
    assert (
        first.json()
        == again.json()
        == {
            "key": "SALES",
            "name": "Sales",
            "smtp": "outgoing",
            "notify": True,
            "default_reporter": None,
        }
    )
    assert [p.key for p in await list_projects(ctx)] == ["HELP", "SALES"]
    twice = await admin_api.post("/projects", json=body)  # no key: a second add is refused
    assert twice.status_code == 400 and "already exists" in twice.json()["detail"]
    renamed = await admin_api.patch("/projects/SALES", json={"name": "Sales team"})
    assert renamed.json()["name"] == "Sales team" and renamed.json()["smtp"] == "outgoing"
    cleared = await admin_api.patch("/projects/SALES", json={"smtp": None, "notify": False})
    assert (cleared.json()["smtp"], cleared.json()["notify"], cleared.json()["name"]) == (
        None,
        False,
        "Sales team",
    )
    missing = await admin_api.get("/projects/NOPE")
    assert missing.status_code == 404 and missing.headers["content-type"] == PROBLEM
    typo = await admin_api.patch("/projects/SALES", json={"nmae": "x"})
    assert typo.status_code == 422 and typo.json()["errors"][0]["field"] == "nmae"


async def test_an_integration_keeps_its_secret_to_itself(admin_api: httpx2.AsyncClient) -> None:
    added = await admin_api.post(
        "/integrations",
        json={
            "name": "google",
            "provider": "google",
            "client_id": "1234.apps.googleusercontent.com",
            "client_secret": "GOCSPX-write-only",
            "client_secret_expires": "2099-06-30",
        },
    )
    assert added.status_code == 201, added.text
    shown = added.json()
    assert "GOCSPX-write-only" not in added.text and "client_secret" not in shown
    assert shown["client_secret_set"] and shown["client_secret_expires"] == "2099-06-30"
    assert shown["redirect_url"] == "https://mailgate.test/oauth2/callback"
    changed = await admin_api.patch(
        "/integrations/google", json={"client_secret_expires": "2099-12-31"}
    )
    assert changed.json()["client_secret_expires"] == "2099-12-31"
    assert changed.json()["client_id"] == shown["client_id"]  # only what was given changed
    listed = (await admin_api.get("/integrations")).json()
    assert [i["name"] for i in listed["items"]] == ["google"] and listed["next"] is None
    assert (await admin_api.delete("/integrations/google")).status_code == 204
    gone = await admin_api.get("/integrations/google")
    assert gone.status_code == 404 and "No integration named 'google'" in gone.json()["detail"]


async def test_credentials_are_listed_and_revoked_never_with_a_token(
    ctx: Context, admin_api: httpx2.AsyncClient
) -> None:
    names = await _configure(ctx)
    listed = (await admin_api.get("/credentials", params={"integration": "m365"})).json()
    [credential] = listed["items"]
    assert (credential["account"], credential["status"]) == ("support@contoso.example", "active")
    assert (await admin_api.get("/credentials", params={"integration": "other"})).json() == {
        "items": [],
        "next": None,
    }
    revoked = await admin_api.post(f"/credentials/{names['id']}/revoke")
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["status"] == "revoked" and not revoked.json()["has_refresh_token"]
    assert revoked.json()["revoked_at_provider"] is False  # Microsoft has no revocation endpoint
    assert (await admin_api.get("/credentials/999")).status_code == 404


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_a_mailbox_is_added_changed_tested_and_deleted(
    ctx: Context, admin_api: httpx2.AsyncClient
) -> None:
    await _configure(ctx)
    port = closed_port()
    added = await admin_api.post(
        "/mailboxes",
        json={
            "name": "sales",
            "protocol": "imap",
            "host": "127.0.0.1",
            "port": port,
            "username": "sales@example.com",
            "password": "app password",
            "project": "HELP",
            "poll": 120,
            "non_participants": "hold",
        },
        headers={"Idempotency-Key": "sales"},
    )
    assert added.status_code == 201, added.text
    view = added.json()
    assert (view["auth"], view["status"], view["poll_seconds"]) == ("password", "new", 120)
    assert view["route_options"] == {"non_participants": "hold"}
    changed = await admin_api.patch("/mailboxes/sales", json={"after": "move:Done"})
    assert changed.json()["after"] == "move:Done" and changed.json()["poll_seconds"] == 120
    tested = await admin_api.post("/mailboxes/sales/test")
    assert tested.status_code == 200
    report = tested.json()
    assert report["ok"] is False and report["diagnosis"]
    assert [s["step"] for s in report["steps"]] == ["resolve", "connect"]
    assert [s["ok"] for s in report["steps"]] == [True, False]
    refused = await admin_api.patch("/mailboxes/sales", json={"protocol": "pop3"})
    assert refused.status_code == 400 and "keeps that protocol" in refused.json()["detail"]
    assert (await admin_api.delete("/mailboxes/sales")).status_code == 204
    assert (await admin_api.post("/mailboxes/sales/test")).status_code == 404


async def test_an_smtp_server_is_added_and_its_test_says_where_it_failed(
    ctx: Context, admin_api: httpx2.AsyncClient
) -> None:
    await _configure(ctx)
    added = await admin_api.post(
        "/smtp-servers",
        json={
            "name": "relay",
            "host": "127.0.0.1",
            "port": closed_port(),
            "security": "starttls",
            "username": "relay@example.com",
            "password": "relay password",
            "from": "support@example.com",
            "from_name": "Support",
        },
    )
    assert added.status_code == 201, added.text
    assert (added.json()["from"], added.json()["from_name"]) == ("support@example.com", "Support")
    tested = await admin_api.post("/smtp-servers/relay/test", json={"to": "you@example.com"})
    assert tested.json()["ok"] is False
    assert [s["step"] for s in tested.json()["steps"]][-1] == "connect"
    bad = await admin_api.post("/smtp-servers/relay/test", json={"to": "not an address"})
    assert bad.status_code == 400
    assert (await admin_api.delete("/smtp-servers/outgoing")).status_code == 204


async def test_a_user_added_without_a_password_gets_a_one_time_link(
    ctx: Context, admin_api: httpx2.AsyncClient
) -> None:
    added = await admin_api.post("/users", json={"email": "New.Agent@Example.com"})
    assert added.status_code == 201
    user = added.json()
    assert (user["email"], user["role"], user["password_set"]) == (
        "new.agent@example.com",
        "agent",
        False,
    )
    assert user["link"]["url"].startswith("https://mailgate.test/welcome/")
    key = {"Idempotency-Key": "add-c"}
    first = await admin_api.post("/users", json={"email": "c@example.com"}, headers=key)
    again = await admin_api.post("/users", json={"email": "c@example.com"}, headers=key)
    assert first.json() == again.json() and first.json()["link"]["url"].startswith("https://")
    kept = await ctx.db.read(lambda s: s.scalars(select(IdempotencyKey.response)).all())
    assert kept and first.json()["link"]["url"] not in str(kept)  # kept encrypted
    with_password = await admin_api.post(
        "/users", json={"email": "b@example.com", "role": "admin", "password": "a long password"}
    )
    assert with_password.json()["link"] is None and with_password.json()["password_set"]
    assert "a long password" not in with_password.text
    disabled = await admin_api.patch("/users/new.agent@example.com", json={"disabled": True})
    assert disabled.json()["disabled"] is True and disabled.json()["role"] == "agent"
    reset = await admin_api.post("/users/b@example.com/reset")
    assert reset.json()["url"] != user["link"]["url"]
    last = await admin_api.patch("/users/api-admin@example.com", json={"role": "agent"})
    assert last.status_code == 200  # b@example.com is an admin too
    assert (await admin_api.get("/users")).status_code == 403  # the token has its user's role
