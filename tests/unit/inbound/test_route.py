import pytest

from mailgate.inbound.route import (
    AddComment,
    Create,
    Duplicate,
    Ignore,
    Match,
    Quarantine,
    RouteOptions,
    cc_watchers,
    comment_body,
    decide,
    keys_to_follow,
    left_out_note,
)

NOTHING = Match(issue_id=None)
FOUND = Match(issue_id=7, sender_is_participant=False, issue_key="HELP-7")


def route(automated: str | None = None, match: Match = NOTHING, **options: object) -> object:
    return decide(
        automated=automated,
        recipients=["support@example.com"],
        options=RouteOptions(**options),
        match=match,
    )  # type: ignore[arg-type]


def test_new_message_creates_an_issue() -> None:
    assert route() == Create()


def test_a_participant_comments_on_the_issue_named() -> None:
    insider = Match(issue_id=7, sender_is_participant=True)
    assert route(match=insider) == AddComment(7)


def test_a_stranger_starts_a_new_issue_by_default() -> None:
    assert route(match=FOUND) == Create()


def test_a_stranger_can_be_held_for_an_agent_with_the_issue() -> None:
    held = route(match=FOUND, non_participants="hold")
    assert isinstance(held, Quarantine) and held.issue_id == 7
    assert "not the reporter or a watcher of HELP-7" in held.reason
    assert "--as-comment" in held.reason


def test_a_stranger_comments_only_when_the_admin_says_so() -> None:
    assert route(match=FOUND, non_participants="comment") == AddComment(7)


def test_the_comment_handler_holds_a_strangers_mail_it_cannot_turn_into_an_issue() -> None:
    held = route(match=FOUND, handler="comment")
    assert isinstance(held, Quarantine) and held.issue_id == 7


def test_too_many_comments_from_one_sender_on_one_issue_are_held() -> None:
    limit = RouteOptions().max_comments_per_issue_hour
    busy = Match(issue_id=7, sender_is_participant=True, sender_comments_last_hour=limit - 1)
    assert route(match=busy) == AddComment(7)
    looping = Match(issue_id=7, sender_is_participant=True, sender_comments_last_hour=limit)
    held = route(match=looping)
    assert isinstance(held, Quarantine) and held.issue_id == 7
    assert route(match=looping, max_comments_per_issue_hour=0) == AddComment(7)  # off


def test_a_sender_without_a_usable_address_is_quarantined_not_given_a_default() -> None:
    decided = decide(
        automated=None,
        recipients=[],
        options=RouteOptions(),
        match=NOTHING,
        sender_problem="the From address 'root' is not a mailbox mail can be sent to",
    )
    assert isinstance(decided, Quarantine) and "'root'" in decided.reason
    # Automated mail from nobody in particular (a bounce) is still just ignored.
    bounce = decide(
        automated="bounce",
        recipients=[],
        options=RouteOptions(),
        match=NOTHING,
        sender_problem="the From header gives no address",
    )
    assert isinstance(bounce, Ignore)


def test_only_keys_of_the_mailboxs_own_project_are_followed() -> None:
    keys = ["SEC-1", "HELP-3", "HELPDESK-4", "HELP-12"]
    assert keys_to_follow(keys, "HELP", RouteOptions()) == ["HELP-3", "HELP-12"]
    allowing = RouteOptions(keys_of_other_projects=True)
    assert keys_to_follow(keys, "HELP", allowing) == keys


def test_cc_watchers_are_capped_and_never_the_desk_the_sender_or_no_mailbox() -> None:
    cc = [
        "Desk@example.com",
        "carol@example.net",
        "root",
        *[f"p{n}@example.org" for n in range(12)],
    ]
    kept, left_out = cc_watchers(
        [*cc, "p0@example.org"],
        options=RouteOptions(),
        never={"desk@example.com", "carol@example.net"},
        may_watch=lambda address: "@" in address,
    )
    assert kept == [f"p{n}@example.org" for n in range(10)]
    assert left_out == ["p10@example.org", "p11@example.org"]
    none, all_left = cc_watchers(
        cc[3:], options=RouteOptions(max_cc_watchers=0), never=(), may_watch=bool
    )
    assert none == [] and len(all_left) == 12
    off, _ = cc_watchers(cc[3:], options=RouteOptions(cc_watchers=False), never=(), may_watch=bool)
    assert off == []


def test_the_agent_reads_who_was_left_out() -> None:
    many = [f"p{n}@example.org" for n in range(12)]
    note = left_out_note(many, RouteOptions())
    assert note is not None and note.startswith("[12 more Cc'd addresses were not added")
    assert "at most 10 from one message" in note and "p9@example.org, …" in note
    assert "p10@" not in note
    assert left_out_note([], RouteOptions()) is None


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
    from mailgate.inbound.mailboxes import check_route_options

    assert check_route_options({"bulk": "forward:Postmaster@Example.com"}) == {
        "bulk": "forward:postmaster@example.com"
    }
    assert check_route_options({"bulk": "delete"}) == {"bulk": "delete"}
    with pytest.raises(BadInput, match="not an email address"):
        check_route_options({"bulk": "forward:nobody"})
    with pytest.raises(BadInput, match="--bulk"):
        check_route_options({"bulk": "shred"})


def test_the_old_participants_flags_are_aliases() -> None:
    from mailgate.errors import BadInput
    from mailgate.inbound.mailboxes import check_route_options

    only = check_route_options({"comments_from_participants_only": True})
    assert only == {"non_participants": "new-issue"}
    anyone = check_route_options({"comments_from_participants_only": False})
    assert anyone == {"non_participants": "comment"}
    with pytest.raises(BadInput, match="disagree"):
        check_route_options({"comments_from_participants_only": False, "non_participants": "hold"})
    with pytest.raises(BadInput, match="--non-participants"):
        check_route_options({"non_participants": "sometimes"})
