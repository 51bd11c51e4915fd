"""The dashboard's rules without a database: the order of what needs the admin, a mailbox's
activity from its loop's status and its lease, counts from receipts."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from mailgate.runtime.overview import (
    Activity,
    Attention,
    AttentionKind,
    Counts,
    Severity,
    activity,
    ordered,
)


def item(subject: str, severity: Severity, since: datetime | None) -> Attention:
    return Attention(
        AttentionKind.MAILBOX_FAILING, severity, subject, since, "why", "act", "/x", subject
    )


def day(n: int) -> datetime:
    return datetime(2026, 5, n, tzinfo=UTC)


def test_errors_come_first_then_the_oldest_and_undated_last() -> None:
    items = [
        item("new warning", Severity.WARNING, day(9)),
        item("undated error", Severity.ERROR, None),
        item("old warning", Severity.WARNING, day(1)),
        item("new error", Severity.ERROR, day(8)),
        item("old error", Severity.ERROR, day(2)),
    ]
    assert [a.subject for a in ordered(items)] == [
        "old error",
        "new error",
        "undated error",
        "old warning",
        "new warning",
    ]


def test_an_item_as_json_names_its_kind_and_date() -> None:
    data = item("mailbox support", Severity.ERROR, day(3)).as_json()
    assert data["kind"] == "mailbox-failing" and data["severity"] == "error"
    assert data["since"] == "2026-05-03T00:00:00+00:00"
    assert item("x", Severity.WARNING, None).as_json()["since"] is None


@pytest.mark.parametrize(
    ("status", "running", "expected", "words"),
    [
        ("idle", True, Activity.IDLE, "IDLE connected"),
        ("polling", True, Activity.POLLING, "polling every 60 s"),
        ("new", True, Activity.CONNECTING, "connecting"),
        ("connected", True, Activity.CONNECTING, "connecting"),
        # The status a stopped or dead process left behind is not live.
        ("idle", False, Activity.NOT_RUNNING, "not running"),
        ("polling", False, Activity.NOT_RUNNING, "not running"),
        # A failure stays a failure, running or not: the admin has to hear of it.
        ("failing", True, Activity.FAILING, "failing"),
        ("auth-failed", False, Activity.FAILING, "sign-in refused"),
        ("needs-reauthorization", True, Activity.FAILING, "needs re-authorization"),
    ],
)
def test_activity(status: str, running: bool, expected: Activity, words: str) -> None:
    assert activity(status, running, 60) == (expected, words)


def test_counts_leave_out_the_backlog_skipped() -> None:
    counts = Counts.of(
        {"created": 3, "commented": 2, "quarantined": 1, "ignored": 4, "duplicate": 1, "skipped": 9}
    )
    assert counts == Counts(taken=11, created=3, commented=2, quarantined=1, ignored=5)
