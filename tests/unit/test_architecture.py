"""The structure of docs/architecture.md, held: modules stay small, no import hides in a function
to dodge a cycle, and comments name files that exist. (The layers themselves are checked by
`make layers`: import-linter with the contracts in pyproject.toml.)"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = [ROOT / "src" / "mailgate", ROOT / "src" / "mailgate_emulator"]
MAX_LINES = 600

# Imports of mailgate's own modules that stay inside a function, each for start-up time (the
# module is heavy and most commands never need it), never for a cycle.
LAZY = {
    ("mailgate.context", "mailgate.http"),  # the HTTP stack: most commands make no request
}

# Files a comment may name that are not in the repository: the user's own.
USERS_FILES = {"mailgate.toml"}
# Module files, documents and configuration (not .html or .json: `self.html`, `response.json`
# are attributes in the comments that show code).
FILE_NAME = re.compile(r"(?<![\w.$/-])((?:[\w-]+/)*[\w-]+\.(?:py|md|toml|sh|ini))(?![\w/])")


def modules() -> list[tuple[str, Path]]:
    found = []
    for package in PACKAGES:
        for path in sorted(package.rglob("*.py")):
            parts = path.relative_to(package.parent).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found.append((name, path))
    return found


def imported(node: ast.Import | ast.ImportFrom, module: str, path: Path) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if not node.level:
        return [node.module or ""]
    base = module.split(".")
    if path.name != "__init__.py":
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return [".".join([*base, *([node.module] if node.module else [])])]


def test_no_module_is_over_600_lines_but_the_migrations() -> None:
    long = [
        f"{path.relative_to(ROOT)}: {lines} lines"
        for _, path in modules()
        if "migrations" not in path.parts
        and (lines := len(path.read_text().splitlines())) > MAX_LINES
    ]
    assert long == []


def test_no_import_of_mailgate_hides_in_a_function() -> None:
    """An import inside a function hides a dependency from the layers check; only the ones
    kept lazy for start-up time (LAZY) may."""
    hidden = []
    for module, path in modules():
        for function in ast.walk(ast.parse(path.read_text())):
            if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(function):
                if not isinstance(node, ast.Import | ast.ImportFrom):
                    continue
                for name in imported(node, module, path):
                    top = name.split(".")[0]
                    if top in ("mailgate", "mailgate_emulator") and (module, name) not in LAZY:
                        hidden.append(f"{path.relative_to(ROOT)}:{node.lineno}: {name}")
    assert hidden == []


def test_comments_and_docstrings_name_only_files_that_exist() -> None:
    """A comment that points a reader to a file points to one in the repository (a project
    file, a template, a document under docs/)."""
    missing = []
    for _, path in modules():
        text = path.read_text()
        places = [
            ROOT,
            ROOT / "src",
            ROOT / "src" / "mailgate",
            ROOT / "docs",
            path.parent,
            path.parent.parent,
            *(folder for folder in path.parent.glob("*") if folder.is_dir()),
        ]
        for match in FILE_NAME.finditer(text):
            name = match.group(1)
            if name in USERS_FILES or any((place / name).exists() for place in places):
                continue
            line = text.count("\n", 0, match.start()) + 1
            missing.append(f"{path.relative_to(ROOT)}:{line}: {name}")
    assert missing == []


def test_the_file_name_pattern_finds_what_a_reader_follows() -> None:
    """The check above can fail: it finds paths and module files, not attribute access."""
    found = FILE_NAME.findall("see `mail/imap.py`, docs/cli.md and (INTERFACE.md); self.html")
    assert found == ["mail/imap.py", "docs/cli.md", "INTERFACE.md"]
