"""The import graph of the source, read with `ast` and never imported (imports inside functions count too).

Dependencies run worker -> webapp -> engine (launcher.py and app.py on top); the engine loads no web or
queue framework; the feature packages of webapp (one node each) import each other without a circle; the
modules at the top of webapp are the shared layer below every feature package, except the app layer that
puts the features together, which nothing below it imports. A failure names every import at fault, as
`file:line importer -> imported`.
"""
from __future__ import annotations

import ast
from collections import defaultdict
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("engine", "webapp", "worker")
SCRIPTS = ("launcher.py", "app.py")
LAYERS = {"engine": 0, "webapp": 1, "worker": 2, "launcher": 3, "app": 3}  # an import never goes to a higher one
WEB_AND_QUEUE = frozenset({"flask", "celery", "sqlalchemy", "redis", "kombu", "werkzeug", "alembic"})  # + flask_*
# Above the feature packages: the app factory and the WSGI entry point, which put the features together, the
# views that report on several features at once (health, the workers page, the metrics), and the list of every
# kind of background work.
APP_LAYER = frozenset({"webapp", "webapp.wsgi", "webapp.health", "webapp.workers_pages", "webapp.api_docs",
                       "webapp.metrics", "webapp.background"})

# Imports (importer module, imported module) that break a rule below and are still there in a module being
# rewritten (webapp/release/evaluation.py). Each is exempt from the rules until it goes; this set must end
# empty, and test_every_pending_import_is_still_there makes sure an entry leaves with its import.
PENDING = frozenset()


@dataclass(frozen=True)
class Import:
    importer: str  # dotted module name
    imported: str  # dotted name: a module of the source when it names one, else what the statement names
    path: str
    line: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line} {self.importer} -> {self.imported}"


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def source_files() -> list[Path]:
    return [path for package in PACKAGES for path in sorted((ROOT / package).rglob("*.py"))] + \
        [ROOT / script for script in SCRIPTS]


def _absolute(node: ast.ImportFrom, package: str) -> str:
    """The module a `from ... import` statement reads from, relative ones resolved against `package`."""
    if not node.level:
        return node.module
    parts = package.split(".")
    base = parts[:len(parts) - node.level + 1]
    return ".".join(base + [node.module] if node.module else base)


def imports_in(path: Path, modules: frozenset[str], root: Path = ROOT) -> list[Import]:
    """Every import statement of the file, wherever it stands; `from x import y` names x.y when y is one of
    the `modules`."""
    importer = module_name(path, root)
    package = importer if path.name == "__init__.py" else importer.rpartition(".")[0]
    where = str(path.relative_to(root))
    found = []
    for node in ast.walk(ast.parse(path.read_bytes(), where)):
        if isinstance(node, ast.Import):
            found += [Import(importer, alias.name, where, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, package)
            for alias in node.names:
                inner = f"{base}.{alias.name}"
                found.append(Import(importer, inner if inner in modules else base, where, node.lineno))
    return found


@cache
def all_imports() -> tuple[Import, ...]:
    files = source_files()
    modules = frozenset(module_name(path) for path in files)
    return tuple(found for path in files for found in imports_in(path, modules))


def checked_imports() -> list[Import]:
    return [found for found in all_imports() if (found.importer, found.imported) not in PENDING]


def top(name: str) -> str:
    return name.split(".")[0]


def feature_of(module: str) -> str | None:
    """The feature package a webapp module belongs to (`webapp.jobs` for webapp.jobs.api), else None."""
    parts = module.split(".")
    if parts[0] != "webapp" or len(parts) < 2 or not (ROOT / "webapp" / parts[1]).is_dir():
        return None
    return f"webapp.{parts[1]}"


def is_shared(module: str) -> bool:
    """A module at the top of webapp that is not part of the app layer."""
    return top(module) == "webapp" and feature_of(module) is None and module not in APP_LAYER


def listing(imports: list[Import]) -> str:
    return "\n".join(f"  {found}" for found in sorted(set(imports), key=lambda found: (found.path, found.line)))


def test_imports_run_down_the_layers():
    """worker -> webapp -> engine: nothing imports a layer above its own."""
    upward = [found for found in checked_imports()
              if LAYERS.get(top(found.imported), -1) > LAYERS[top(found.importer)]]
    assert not upward, "imports of a higher layer:\n" + listing(upward)


def test_the_engine_imports_no_web_or_queue_framework():
    loaded = [found for found in checked_imports() if top(found.importer) == "engine" and
              (top(found.imported) in WEB_AND_QUEUE or found.imported.startswith("flask_"))]
    assert not loaded, "the engine imports a web or queue framework:\n" + listing(loaded)


def test_the_shared_layer_imports_no_feature_package():
    reaching_up = [found for found in checked_imports()
                   if is_shared(found.importer) and feature_of(found.imported) is not None]
    assert not reaching_up, "shared modules of webapp import a feature package:\n" + listing(reaching_up)


def test_only_the_app_layer_imports_the_app_layer():
    """The factory, the WSGI entry and the views over several features sit on top: no module of webapp
    below them imports them (the worker and the launcher may create the app)."""
    reaching_up = [found for found in checked_imports() if top(found.importer) == "webapp"
                   and found.importer not in APP_LAYER and found.imported in APP_LAYER]
    assert not reaching_up, "webapp modules import the app layer:\n" + listing(reaching_up)


def feature_edges() -> dict[tuple[str, str], list[Import]]:
    """(importing feature, imported feature) -> the imports that make the edge."""
    edges = defaultdict(list)
    for found in checked_imports():
        source, target = feature_of(found.importer), feature_of(found.imported)
        if source and target and source != target:
            edges[source, target].append(found)
    return edges


def circles(edges) -> list[list[str]]:
    """The strongly connected groups of more than one feature (Tarjan's algorithm)."""
    graph = defaultdict(set)
    for source, target in edges:
        graph[source].add(target)
    index, low, stack, on_stack, groups = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while not group or group[-1] != node:
                group.append(stack.pop())
                on_stack.discard(group[-1])
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


def chain(group: list[str], edges) -> list[str]:
    """One circle through the group, from its first feature back to it."""
    path, seen = [group[0]], {group[0]}
    while True:
        targets = sorted(target for source, target in edges if source == path[-1] and target in group)
        back = group[0] in targets
        if back and len(path) > 1:
            return path + [group[0]]
        fresh = [target for target in targets if target not in seen]
        if not fresh:
            return path + [group[0]]
        path.append(fresh[0])
        seen.add(fresh[0])


def test_no_circle_between_feature_packages():
    edges = feature_edges()
    report = []
    for group in circles(edges):
        inside = [found for (source, target), found_here in edges.items()
                  if source in group and target in group for found in found_here]
        report.append(" -> ".join(chain(group, edges)) + ":\n" + listing(inside))
    assert not report, "feature packages import each other in a circle:\n" + "\n".join(report)


def test_every_pending_import_is_still_there():
    present = {(found.importer, found.imported) for found in all_imports()}
    assert sorted(PENDING - present) == [], "no longer imported: remove these from PENDING"


def test_the_reader_sees_every_kind_of_import(tmp_path):
    """Imports in function bodies, relative ones, and a submodule named by `from package import name`."""
    source = tmp_path / "webapp" / "jobs" / "api.py"
    source.parent.mkdir(parents=True)
    source.write_text("from webapp.jobs import events, api\n"
                      "def view():\n"
                      "    from . import status\n"
                      "    from ..release.services import catalog\n"
                      "    import redis.client\n")
    found = sorted(imports_in(source, frozenset({"webapp.jobs.events", "webapp.jobs.status"}), tmp_path),
                   key=lambda found: (found.line, found.imported))
    assert [(found.imported, found.line) for found in found] == [
        ("webapp.jobs", 1), ("webapp.jobs.events", 1), ("webapp.jobs.status", 3), ("webapp.release.services", 4),
        ("redis.client", 5)]
    assert str(found[2]) == "webapp/jobs/api.py:3 webapp.jobs.api -> webapp.jobs.status"
    assert feature_of("webapp.jobs.runner") == "webapp.jobs" and feature_of("webapp.models") is None
