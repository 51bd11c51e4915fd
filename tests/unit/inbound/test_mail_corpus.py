"""Every message of the corpus (tests/data/mail/NAME.eml) against its expected fields
(NAME.expected.json): only the fields that matter for that case are listed there.

An expected value must equal the `parse --json` value; lists must have the same length and each
item match; objects match on the keys given. Two extra key forms check text loosely:
``"body_text~contains": [...]`` and ``"body_text~excludes": [...]``.

Each message is parsed twice: as stored (LF line ends) and as a mail server hands it over
(CRLF), with the same expectations.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mailgate.inbound.parse import parse_message

CORPUS = Path(__file__).resolve().parents[2] / "data" / "mail"
CASES = sorted(CORPUS.glob("*.eml"))


def test_every_message_has_expectations() -> None:
    assert len(CASES) >= 30
    missing = [case.name for case in CASES if not case.with_suffix(".expected.json").exists()]
    assert missing == []


@pytest.mark.parametrize("line_end", ["lf", "crlf"])
@pytest.mark.parametrize("case", CASES, ids=[case.stem for case in CASES])
def test_corpus_message(case: Path, line_end: str) -> None:
    raw = case.read_bytes()
    if line_end == "crlf":
        raw = raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    expected = json.loads(case.with_suffix(".expected.json").read_text(encoding="utf-8"))
    actual = parse_message(raw).as_json(str(case))
    for key, want in expected.items():
        field, _, check = key.partition("~")
        got = actual[field]
        if check == "contains":
            for text in want:
                assert text in got, f"{field} should contain {text!r}"
        elif check == "excludes":
            for text in want:
                assert text not in got, f"{field} should not contain {text!r}"
        else:
            assert _matches(got, want), f"{field}: expected {want!r}, got {got!r}"


def _matches(got: Any, want: Any) -> bool:
    if isinstance(want, dict):
        return isinstance(got, dict) and all(
            key in got and _matches(got[key], value) for key, value in want.items()
        )
    if isinstance(want, list):
        return (
            isinstance(got, list)
            and len(got) == len(want)
            and all(_matches(g, w) for g, w in zip(got, want, strict=True))
        )
    return bool(got == want)
