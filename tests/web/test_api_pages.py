"""Lists of the REST API read whole and cut into pages (`page_of`): the page after a cursor
whose item is gone (deleted meanwhile) goes on from where the item stood in the list's order,
ascending or descending; only a list in no order of its keys asks to start again."""

from __future__ import annotations

import httpx2
import pytest

from mailgate.context import Context
from mailgate.errors import BadInput
from mailgate.tracker.webhooks import add_webhook
from mailgate.web.api.common import encode_cursor, page_of


def keys_after(rows: list[int | str], cursor: int | str, limit: int = 2) -> list[int | str]:
    page = page_of(rows, encode_cursor(cursor), limit, key=lambda row: row)
    return page.items


def test_the_page_after_an_item_still_there_starts_after_it() -> None:
    page = page_of([1, 2, 3, 4, 5], encode_cursor(2), 2, key=lambda row: row)
    assert page.items == [3, 4] and page.next == encode_cursor(4)
    last = page_of([1, 2, 3, 4, 5], page.next, 2, key=lambda row: row)
    assert last.items == [5] and last.next is None


def test_an_item_gone_from_an_ascending_list_goes_on_with_the_next_greater_key() -> None:
    assert keys_after([1, 2, 4, 5, 7], 3) == [4, 5]
    assert keys_after(["ann", "bob", "dan", "eve"], "carl") == ["dan", "eve"]
    assert keys_after([1, 2], 9) == []  # it was the last: nothing follows


def test_an_item_gone_from_a_descending_list_goes_on_with_the_next_smaller_key() -> None:
    assert keys_after([9, 7, 4, 2, 1], 5) == [4, 2]
    assert keys_after(["eve", "dan", "bob"], "carl") == ["bob"]
    assert keys_after([9, 7], 1) == []


def test_a_list_in_no_order_asks_to_start_again() -> None:
    with pytest.raises(BadInput, match="start again"):
        keys_after([3, 1, 2], 5)
    assert keys_after([3, 1, 2], 1) == [2]  # an item still there is found in any order


def test_a_cursor_of_the_wrong_kind_asks_to_start_again() -> None:
    with pytest.raises(BadInput, match="start again"):
        keys_after([1, 2, 3], "two")
    with pytest.raises(BadInput, match="start again"):
        keys_after(["a", "b"], 1)


async def test_the_webhooks_list_goes_on_past_a_webhook_deleted_between_pages(
    ctx: Context, admin_api: httpx2.AsyncClient
) -> None:
    names = ["alpha", "bravo", "charlie", "delta", "echo"]
    for name in names:
        await add_webhook(ctx, name, "https://hooks.example.com/mailgate", ["issue.created"])
    first = (await admin_api.get("/webhooks", params={"limit": 2})).json()
    assert [hook["name"] for hook in first["items"]] == ["alpha", "bravo"]
    assert (await admin_api.delete("/webhooks/bravo")).status_code == 204
    second = await admin_api.get("/webhooks", params={"limit": 2, "cursor": first["next"]})
    assert second.status_code == 200, second.text
    assert [hook["name"] for hook in second.json()["items"]] == ["charlie", "delta"]
    last = (await admin_api.get("/webhooks", params={"cursor": second.json()["next"]})).json()
    assert [hook["name"] for hook in last["items"]] == ["echo"] and last["next"] is None
