"""The admin's and the agents' pages, one module per section, each a router built from the same
service functions the CLI calls. `routers` lists them in the navigation's order."""

from __future__ import annotations

from fastapi import APIRouter

from mailgate.context import Context
from mailgate.web.pages import (
    audit,
    credentials,
    dashboard,
    desk,
    integration_actions,
    integration_device,
    integrations,
    issues,
    mailboxes,
    projects,
    smtp,
    users,
    webhooks,
)


def routers(ctx: Context) -> list[APIRouter]:
    return [
        dashboard.router(ctx),
        integrations.router(ctx),
        integration_actions.router(ctx),
        integration_device.router(ctx),
        credentials.router(ctx),
        mailboxes.router(ctx),
        smtp.router(ctx),
        projects.router(ctx),
        issues.router(ctx),
        desk.router(ctx),
        webhooks.router(ctx),
        users.router(ctx),
        audit.router(ctx),
    ]
