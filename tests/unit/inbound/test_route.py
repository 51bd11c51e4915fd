import pytest

from mailgate.inbound.route import (
    AddComment,
    Create,
    Duplicate,
    Ignore,
    Match,
    Quarantine,
    RouteOptions,
    comment_body,
    decide,
)

NOTHING = Match(issue_id=None)
FOUND = Match(issue_id=7, sender_is_participant=False)


def route(automated: str | None = None, match: Match = NOTHING, **options: object) -> object:
    return decide(
        automated=automated,
        recipients=["support@example.com"],
        options=RouteOptions(**options),
        match=match,
    )  # type: ignore[arg-type]


def test_new_message_creates_an_issue() -> None:
    assert route() == Create()


def test_a_known_issue_gets_a_comment_whoever_sent_it() -> None:
    assert route(match=FOUND) == AddComment(7)


def test_participants_only_option_opens_a_new_issue_for_strangers() -> None:
    assert route(match=FOUND, comments_from_participants_only=True) == Create()
    insider = Match(issue_id=7, sender_is_participant=True)
    assert route(match=insider, comments_from_participants_only=True) == AddComment(7)


def test_create_handler_always_creates() -> None:
    assert route(match=FOUND, handler="create") == Create()


def test_comment_handler_quarantines_what_matches_nothing() -> None:
    assert isinstance(route(handler="comment"), Quarantine)


@pytest.mark.parametrize("automated", ["auto-reply", "bounce", "bulk", "list"])
def test_automated_mail_is_ignored_by_default(automated: str) -> None:
    assert isinstance(route(automated), Ignore)
    assert route(automated, bulk="accept") == Create()


def test_own_mail_is_always_ignored() -> None:
    assert isinstance(route("own", bulk="accept"), Ignore)


def test_catch_address() -> None:
    assert isinstance(route(catch_address="sales@example.com"), Ignore)
    assert route(catch_address="SUPPORT@example.com") == Create()


def test_duplicate() -> None:
    assert route(match=Match(issue_id=None, duplicate_of=3)) == Duplicate(3)


def test_comment_body() -> None:
    options = RouteOptions()
    assert comment_body("Thanks!", "Thanks!\n\nOn … wrote:\n> old", options) == "Thanks!"
    assert comment_body("", "only body", options) == "only body"
    assert comment_body("a", "a\n> b", RouteOptions(whole_body=True)) == "a\n> b"
    assert comment_body("keep\n--\nsig", "", RouteOptions(split_regex=r"^--$")) == "keep"


def test_bulk_options_are_checked() -> None:
    from mailgate.errors import BadInput
    from mailgate.mail.mailboxes import check_route_options

    assert check_route_options({"bulk": "forward:Postmaster@Example.com"}) == {
        "bulk": "forward:postmaster@example.com"
    }
    assert check_route_options({"bulk": "delete"}) == {"bulk": "delete"}
    with pytest.raises(BadInput, match="not an email address"):
        check_route_options({"bulk": "forward:nobody"})
    with pytest.raises(BadInput, match="--bulk"):
        check_route_options({"bulk": "shred"})
