"""A person at mailgate's start link, as a browser does it: open the page, press Continue."""

from __future__ import annotations

import re
from html import unescape

import httpx2

_FORM = re.compile(r'<form method="post" action="([^"]+)">')
_TOKEN = re.compile(r'<input type="hidden" name="request" value="([^"]+)">')


async def press_continue(browser: httpx2.AsyncClient, start_url: str) -> httpx2.Response:
    """Open the start link (a page that changes nothing), then press its Continue button: the
    answer redirects to the provider (303) or says why not."""
    page = await browser.get(start_url)
    form, token = _FORM.search(page.text), _TOKEN.search(page.text)
    if page.status_code != 200 or form is None or token is None:
        return page
    return await browser.post(unescape(form.group(1)), data={"request": unescape(token.group(1))})
