"""The shape of the package: its folders are its layers, imports point down them, no two
modules import each other, edges own their libraries, and commands start without
loading what they do not use."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from modbot.store.sqlite import open_sqlite
from tests.conftest import ROOT

PACKAGE = ROOT / "modbot"

# Each part of the package and its layer, bottom first. A module may import a part of a
# lower layer, or a sibling in its own part; never a part above it, and never another
# part of its own layer (edges stand beside each other and do not know each other).
LAYERS: dict[str, int] = {
    "modbot": 0,  # the package itself: its version
    "modbot.errors": 0,
    "modbot.core": 1,
    "modbot.ports": 2,
    "modbot.config": 2,
    "modbot.sources": 3,
    "modbot.reddit": 3,
    "modbot.store": 3,
    "modbot.rendering": 3,
    "modbot.monitor": 3,
    "modbot.shell": 4,
    "modbot.app": 5,
    "modbot.cli": 6,
    "modbot.__main__": 7,
}
PURE = "modbot.core"
EDGE_LIBRARIES = {
    "asyncpraw": {"modbot.reddit.client"},
    "asyncprawcore": {"modbot.reddit.client"},
    "aiohttp": {"modbot.reddit.client"},
    "httpx": {"modbot.sources.fetch"},
    "feedparser": {"modbot.sources.feeds"},
    "sqlite3": {"modbot.store.sqlite", "modbot.store.sqlite_legacy"},
    "psycopg": {"modbot.store.postgres"},
    "prometheus_client": {"modbot.monitor.metrics"},
}
HEAVY = ("asyncpraw", "aiohttp", "httpx", "jinja2", "pydantic")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    """Every module of the package, by dotted name."""
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def part_of(module: str) -> str:
    """The layer part a module belongs to (its folder, or itself at the top)."""
    return max((p for p in LAYERS if module == p or module.startswith(p + ".")), key=len)


def imports(path: Path, *, runtime_only: bool = False) -> Iterator[str]:
    """Every module a file imports, anywhere in it (inside functions too, and in
    ``TYPE_CHECKING`` blocks unless ``runtime_only``), as dotted names."""
    tree = ast.parse(path.read_text())
    if runtime_only:
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                node.body = []
    known = modules()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                yield submodule if submodule in known else node.module


def our_imports(path: Path) -> set[str]:
    return {name for name in imports(path) if name == "modbot" or name.startswith("modbot.")}


def test_every_module_has_a_layer() -> None:
    unplaced = [m for m in modules() if not any(m == p or m.startswith(p + ".") for p in LAYERS)]
    assert unplaced == []


def test_the_folders_are_the_layers() -> None:
    # Every folder of the package is one part of one layer: the tree reads like the
    # Architecture table of the README.
    folders = {module_name(p.parent / "__init__.py") for p in PACKAGE.rglob("*/__init__.py")}
    assert folders <= set(LAYERS)
    readme = (ROOT / "README.md").read_text()
    for folder in folders:
        assert f"`{folder.removeprefix('modbot.')}/`" in readme, folder


@pytest.mark.parametrize("module", sorted(modules()))
def test_imports_point_down_the_layers(module: str) -> None:
    mine = part_of(module)
    wrong = []
    for target in our_imports(modules()[module]):
        theirs = part_of(target)
        if theirs == mine:
            continue  # a sibling in the same folder
        if LAYERS[theirs] >= LAYERS[mine]:
            wrong.append(target)
    assert wrong == [], f"{module} imports {wrong}, which are not below it"


def test_no_two_modules_import_each_other() -> None:
    graph = {name: our_imports(path) - {name} for name, path in modules().items()}
    cycles = []
    for name, targets in graph.items():
        # Any path back to ``name``: a cycle of any length.
        seen: set[str] = set()
        stack = [t for t in targets if t in graph]
        while stack:
            current = stack.pop()
            if current == name:
                cycles.append(name)
                break
            if current not in seen:
                seen.add(current)
                stack += [t for t in graph.get(current, ()) if t in graph]
    assert cycles == []


@pytest.mark.parametrize("library", sorted(EDGE_LIBRARIES))
def test_only_its_edge_imports_each_outside_library(library: str) -> None:
    users = {
        name
        for name, path in modules().items()
        if any(n.split(".")[0] == library for n in imports(path, runtime_only=True))
    }
    assert users <= EDGE_LIBRARIES[library]


@pytest.mark.slow
def test_reading_the_database_setting_loads_no_database_library() -> None:
    loaded = loaded_after(
        "from modbot.config.settings import load_settings\nload_settings(env_file=None)"
    )
    assert "modbot.config.database" in loaded
    assert not loaded & {"sqlite3", "psycopg", "modbot.store.sqlite", "modbot.store.postgres"}


def test_records_import_nothing_of_ours() -> None:
    assert our_imports(modules()["modbot.core.records"]) == set()


def loaded_after(code: str) -> set[str]:
    """The modules loaded in a fresh interpreter after running ``code``."""
    script = f"import sys\n{code}\nprint(' '.join(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return set(done.stdout.split())


@pytest.mark.slow
def test_the_pure_core_loads_no_io_library() -> None:
    pure = [m for m in modules() if m.startswith(PURE + ".") and m != "modbot.core.render"]
    loaded = loaded_after("\n".join(f"import {m}" for m in pure))
    assert not loaded & {"httpx", "asyncpraw", "aiohttp", "sqlite3", "psycopg", "jinja2", "asyncio"}


@pytest.mark.slow
@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["run", "--help"],
        ["status", "--help"],
        ["post", "--help"],
        ["check", "-h"],
        ["reports", "explain", "--help"],
    ],
)
def test_help_loads_no_heavy_library(argv: list[str]) -> None:
    loaded = loaded_after(
        "from modbot.cli.main import main\n"
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
        "from modbot.cli.main import main\n"
        "assert main(['status']) == 0\n"
        "print()"
    )
    assert "modbot.store.sqlite" in loaded
    assert not loaded & {"asyncpraw", "aiohttp", "httpx", "jinja2", "psycopg"}


def test_the_app_builds_each_piece_with_what_it_needs_and_wires_nothing_in_afterwards() -> None:
    """No attribute of another object is set in ``app.py`` (a poller's thread, a
    client's fence), and the wiring needs no ``type: ignore``."""
    source = (PACKAGE / "app.py").read_text()
    assert "type: ignore" not in source
    assigned = []
    for node in ast.walk(ast.parse(source)):
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AnnAssign | ast.AugAssign):
            targets = [node.target]
        for target in targets:
            for part in target.elts if isinstance(target, ast.Tuple | ast.List) else [target]:
                owner = part.value if isinstance(part, ast.Attribute) else None
                if owner is not None and not (isinstance(owner, ast.Name) and owner.id == "self"):
                    assigned.append(f"line {node.lineno}: {ast.unparse(part)}")
    assert assigned == []
