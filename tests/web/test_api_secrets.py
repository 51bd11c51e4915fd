"""No API answer holds a secret: with a client secret, tokens and passwords set to canary values,
every GET route of the API's route table, with real objects put in its path, answers without
one — nor do the answers that save those secrets."""

from __future__ import annotations

import re

import httpx2

from mailgate.context import Context
from mailgate.web.api import PREFIX
from tests.web.test_no_secret_in_pages import CANARIES, _configure
from tests.web.test_route_table import _table

# What each kind of object in a path is called in the configured world.
PATHS = {
    "/integrations/": "m365",
    "/mailboxes/": "support",
    "/smtp-servers/": "outgoing",
    "/users/": "api-admin@example.com",
    "/projects/": "HELP",
}


def fill(template: str, names: dict[str, str]) -> str:
    def value(match: re.Match[str]) -> str:
        param = match.group(1)
        for prefix, name in PATHS.items():
            if template.startswith(prefix):
                return name
        return {"credential_id": names["id"]}.get(param, "1")

    return re.sub(r"\{([^}]+)\}", value, template)


def assert_no_secret(answer: httpx2.Response, where: str) -> None:
    for what, canary in CANARIES.items():
        assert canary not in answer.text, f"the {what} is in the answer to {where}"
        assert canary not in str(answer.headers), f"the {what} is in a header of {where}"


async def test_no_api_answer_holds_a_secret(ctx: Context, admin_api: httpx2.AsyncClient) -> None:
    names = await _configure(ctx)
    app = admin_api._transport.app  # type: ignore[attr-defined]
    templates = [t[len(PREFIX) :] for m, t in _table(app) if m == "GET" and t.startswith(PREFIX)]
    answered = []
    for template in templates:
        path = fill(template, names)
        answer = await admin_api.get(path)
        assert answer.status_code < 500, f"GET {path}: {answer.status_code}"
        assert_no_secret(answer, f"GET {path}")
        if answer.status_code == 200:
            answered.append(template)
    for listed in ("/integrations", "/credentials", "/mailboxes", "/smtp-servers", "/users"):
        assert listed in answered and f"{listed}/{{" in " ".join(answered), listed
    shown = (await admin_api.get("/integrations/m365")).json()
    assert shown["client_secret_set"] is True and "client_secret" not in shown
    assert (await admin_api.get("/credentials/" + names["id"])).json()["has_refresh_token"]


async def test_the_answers_that_save_a_secret_hold_none(
    ctx: Context, admin_api: httpx2.AsyncClient
) -> None:
    await _configure(ctx)
    changed = await admin_api.patch(
        "/integrations/m365", json={"client_secret": CANARIES["client secret"] + "-new"}
    )
    assert changed.status_code == 200 and changed.json()["client_secret_set"]
    mailbox = await admin_api.patch(
        "/mailboxes/support", json={"password": CANARIES["mailbox password"]}
    )
    smtp = await admin_api.post(
        "/smtp-servers",
        json={
            "name": "relay",
            "host": "127.0.0.1",
            "username": "relay@example.com",
            "password": CANARIES["smtp password"],
            "from": "relay@example.com",
        },
    )
    assert (mailbox.status_code, smtp.status_code) == (200, 201), smtp.text
    for answer in (changed, mailbox, smtp):
        assert_no_secret(answer, str(answer.request.url))
    assert mailbox.json()["auth"] == smtp.json()["auth"] == "password"
