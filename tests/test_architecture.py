"""The shape of the package: imports point down, edges own their libraries, commands
start without loading what they do not use."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from modbot.store.sqlite import open_sqlite
from tests.conftest import ROOT

PACKAGE = ROOT / "modbot"
PURE = ("records", "incidents", "planner", "machine", "commands", "markdown", "codec", "timeline")
EDGE_LIBRARIES = {
    "asyncpraw": {"reddit"},
    "asyncprawcore": {"reddit"},
    "aiohttp": {"reddit"},
    "httpx": {"httpfetch"},
    "feedparser": {"feeds"},
    "sqlite3": {"store.sqlite", "store.sqlite_legacy"},
    "psycopg": {"store.postgres"},
}
HEAVY = ("asyncpraw", "aiohttp", "httpx", "jinja2", "pydantic")


def imported_modules(path: Path) -> set[str]:
    """Top-level names a module imports at run time (``TYPE_CHECKING`` blocks left out)."""
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            node.body = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


def loaded_after(code: str) -> set[str]:
    """The modules loaded in a fresh interpreter after running ``code``."""
    script = f"import sys\n{code}\nprint(' '.join(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return set(done.stdout.split())


def module_name(path: Path) -> str:
    """``store.sqlite`` for ``modbot/store/sqlite.py``; ``store`` for its ``__init__``."""
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@pytest.mark.parametrize("library", sorted(EDGE_LIBRARIES))
def test_only_its_edge_imports_each_outside_library(library: str) -> None:
    users = {
        module_name(path)
        for path in PACKAGE.rglob("*.py")
        if any(name.split(".")[0] == library for name in imported_modules(path))
    }
    assert users <= EDGE_LIBRARIES[library]
    assert users  # the table names modules that exist


@pytest.mark.slow
def test_reading_the_database_setting_loads_no_database_library() -> None:
    loaded = loaded_after("from modbot.settings import load_settings\nload_settings(env_file=None)")
    assert "modbot.store.url" in loaded
    assert not loaded & {"sqlite3", "psycopg", "modbot.store.sqlite", "modbot.store.postgres"}


def test_records_import_nothing_of_ours() -> None:
    ours = {n for n in imported_modules(PACKAGE / "records.py") if n.startswith("modbot")}
    assert ours == set()


@pytest.mark.slow
@pytest.mark.parametrize("module", PURE)
def test_the_pure_modules_load_no_io_library(module: str) -> None:
    loaded = loaded_after(f"import modbot.{module}")
    assert not loaded & {"httpx", "asyncpraw", "aiohttp", "sqlite3", "jinja2"}


@pytest.mark.slow
@pytest.mark.parametrize(
    "argv",
    [["--help"], ["run", "--help"], ["status", "--help"], ["post", "--help"], ["check", "-h"]],
)
def test_help_loads_no_heavy_library(argv: list[str]) -> None:
    loaded = loaded_after(
        "from modbot.cli import main\n"
        f"try:\n    main({argv!r})\nexcept SystemExit:\n    pass\n"
        "sys.stdout.flush()\nprint()"
    )
    assert not loaded & set(HEAVY)


@pytest.mark.slow
async def test_status_loads_no_reddit_or_http_library(tmp_path: Path) -> None:
    database = tmp_path / "state.sqlite3"
    await (await open_sqlite(database)).close()
    loaded = loaded_after(
        "import os\n"
        f"os.environ['MODBOT_DATABASE'] = {str(database)!r}\n"
        "from modbot.cli import main\n"
        "assert main(['status']) == 0\n"
        "print()"
    )
    assert "modbot.store.sqlite" in loaded
    assert not loaded & {"asyncpraw", "aiohttp", "httpx", "jinja2", "psycopg"}
