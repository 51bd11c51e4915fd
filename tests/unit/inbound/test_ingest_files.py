"""Reading messages from files for `mailgate ingest`: the mbox reader splits as the stdlib does."""

from __future__ import annotations

import mailbox
from email.message import EmailMessage
from pathlib import Path

import pytest

from mailgate.inbound.ingest import mbox_messages, messages


def _message(n: int, body: str) -> bytes:
    message = EmailMessage()
    message["From"] = f"someone{n}@example.net"
    message["Subject"] = f"number {n}"
    message.set_content(body)
    return bytes(message)


def test_the_mbox_reader_agrees_with_the_stdlib(tmp_path: Path) -> None:
    path = tmp_path / "archive.mbox"
    box = mailbox.mbox(path)
    bodies = ["plain", "From the start of a line\n", "\n\nblank lines\n\n", ">From quoted", ""]
    for n, body in enumerate(bodies):
        box.add(_message(n, body))
    box.flush()
    stdlib = [box.get_bytes(key) for key in box.iterkeys()]
    assert list(mbox_messages(path)) == stdlib
    assert len(stdlib) == len(bodies)


def test_an_empty_file_holds_no_message(tmp_path: Path) -> None:
    (tmp_path / "empty.eml").write_bytes(b"")
    (tmp_path / "empty.mbox").write_bytes(b"")
    assert list(messages([tmp_path / "empty.eml", tmp_path / "empty.mbox"])) == []


@pytest.mark.parametrize(
    "content",
    [
        b"From a\nFrom b\nSubject: x\n\nbody\n",
        b"From a\n",
        b"From a\n\nFrom b\nSubject: y\n\n",
        b"junk before\nFrom a\nSubject: z\n\nbody",
    ],
)
def test_empty_and_odd_mbox_files_split_like_the_stdlib(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "odd.mbox"
    path.write_bytes(content)
    box = mailbox.mbox(path)
    assert list(mbox_messages(path)) == [box.get_bytes(key) for key in box.iterkeys()]
