"""The core's imports point one way: no module of purify_core imports another that imports it back,
and none imports the app (`ui`, `app_pages`), so the CLI and the benchmarks never load a web server's rules."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every module `path` imports at run time (also inside functions; not under `if TYPE_CHECKING`)."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    tree = ast.parse(path.read_text())
    typing_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
                   for statement in node.body for n in ast.walk(statement)}
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            target = ".".join(base + [node.module] if node.module else base)
            found |= {target} | {f"{target}.{alias.name}" for alias in node.names}
    return found


def import_graph(folder: str) -> dict[str, set[str]]:
    """Module -> the modules of `folder` it imports (a package's own parents left out: importing a submodule loads them)."""
    modules = {_module_name(p): p for p in (ROOT / folder).rglob("*.py")}
    return {m: {t for t in _imports(p) if t in modules and t != m and not m.startswith(t + ".")} for m, p in modules.items()}


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The groups of modules that import each other, directly or through others (Tarjan's strongly connected components)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_circle_finder_finds_a_circle_through_a_lazy_import():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert circles({"a": {"b"}, "b": set()}) == []


def test_no_module_of_the_core_imports_one_that_imports_it_back():
    assert circles(import_graph("purify_core")) == []


def test_the_core_never_imports_the_app():
    for path in (ROOT / "purify_core").rglob("*.py"):
        app = {name for name in _imports(path) if name.split(".")[0] in ("ui", "app_pages", "app")}
        assert not app, f"{path.relative_to(ROOT)} imports {sorted(app)}"


def folder_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """The same arrows between the core's folders (and top-level modules): `purify_core.method.purify` -> `method`."""
    def folder(module: str) -> str:
        return module.split(".")[1] if module.count(".") else module

    arrows: dict[str, set[str]] = {}
    for source, targets in graph.items():
        arrows.setdefault(folder(source), set()).update(folder(t) for t in targets if folder(t) != folder(source))
    return arrows


def test_the_cores_folders_import_one_way():
    """data -> models -> store and method -> evaluation -> cli: a folder never imports one that imports it back."""
    assert circles(folder_graph(import_graph("purify_core"))) == []
    assert folder_graph({"purify_core.store.zoo": {"purify_core.models.train"}}) == {"store": {"models"}}


def test_the_cli_never_imports_the_benchmarks():
    for path in (ROOT / "purify_core" / "cli").rglob("*.py"):
        bench = {name for name in _imports(path) if name.startswith("purify_core.bench")}
        assert not bench, f"{path.relative_to(ROOT)} imports {sorted(bench)}"
