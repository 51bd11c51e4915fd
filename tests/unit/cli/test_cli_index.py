"""`mailgate --help` lists every command from the index in mailgate/cli/app.py without importing
the command's module: the summaries there are the commands' own, every command is listed, and
listing them imports none."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import typer

import mailgate.cli
from mailgate.cli.app import INDEX, load

SHARED = {"__init__", "app", "common", "mailbox_options"}


def test_each_summary_is_the_first_paragraph_of_the_command_s_own_help() -> None:
    for name, entry in INDEX.items():
        help_text = load(name).help or ""
        assert help_text.split("\n\n")[0] == entry.summary, name


def test_every_command_module_is_indexed_with_each_of_its_commands() -> None:
    folder = Path(mailgate.cli.__file__).parent
    assert {path.stem for path in folder.glob("*.py")} - SHARED == {
        entry.module for entry in INDEX.values()
    }
    for module in {entry.module for entry in INDEX.values() if not entry.group}:
        app = importlib.import_module(f"mailgate.cli.{module}").app
        for name in typer.main.get_group(app).commands:
            assert INDEX[name].module == module, name


def test_the_list_of_commands_imports_no_command_module() -> None:
    listing = (
        "import sys\n"
        "from mailgate.cli import app\n"
        "app(['--help'], prog_name='mailgate', standalone_mode=False)\n"
        "print(' '.join(m for m in sys.modules if m.startswith(('mailgate.cli.', 'mailgate.oauth'))))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", listing], capture_output=True, text=True, check=True, timeout=60
    )
    assert "integration" in done.stdout  # the help was printed...
    imported = set(done.stdout.strip().splitlines()[-1].split())
    assert imported == {"mailgate.cli.app"}  # ...from the index alone
