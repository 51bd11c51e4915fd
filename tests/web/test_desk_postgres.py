"""The desk on PostgreSQL: the same tests as on SQLite — search (GIN full-text indexes instead
of FTS5), the issue list and page, comments once per Idempotency-Key, close, reopen, assign —
against a real PostgreSQL started by the suite (tests/support/postgres.py), a fresh database
each."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailgate.config import Settings
from tests.unit.tracker.test_search import (  # noqa: F401 (collected here too)
    test_an_issue_is_found_by_its_new_comment_in_the_same_transaction,
    test_filters_sorts_and_pages,
    test_query_syntax_typed_is_only_words,
    test_words_find_issues_in_every_field,
)
from tests.web.test_api_idempotency import (  # noqa: F401
    test_a_comment_retried_after_24_hours_is_a_new_comment,
)
from tests.web.test_api_issues import (  # noqa: F401
    test_a_comment_is_made_once_per_idempotency_key,
    test_an_agents_token_finds_issues_a_page_at_a_time,
    test_an_issue_with_its_conversation_and_attachments,
    test_close_reopen_and_assign,
    test_comments_come_a_page_at_a_time,
)
from tests.web.test_desk_issues import (  # noqa: F401
    test_an_agents_comment_is_mailed_threaded_to_reporter_and_watchers,
    test_search_and_filters_find_the_issues,
    test_the_list_pages_by_cursor_newest_first,
)


@pytest.fixture
def settings(home: Path, postgres_url: str) -> Settings:
    return Settings(home=home, database_url=postgres_url, base_url="https://mailgate.test")
