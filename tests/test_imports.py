"""No import cycle between the modules of ``snn_nas`` (the layering of ``docs/architecture.md``).

The graph is read from the source with ``ast``, never by importing. Its nodes are the modules of
the package (``snn_nas/space/codec.py`` is ``snn_nas.space.codec``, ``snn_nas/space/__init__.py``
is ``snn_nas.space``). There is an edge ``a -> b`` when the source of ``a`` holds an import
statement that names ``b``, wherever it stands: at module level, inside a function (a lazy
import is a dependency all the same, only deferred) or under ``if TYPE_CHECKING:`` (a type a
module needs is a dependency too, and such a back-reference is how a circle hides). A statement
names:

* ``import snn_nas.x.y``: the module ``snn_nas.x.y``;
* ``from snn_nas.x import y``: the module ``snn_nas.x.y`` when ``y`` is a module or package of
  its own, else ``snn_nas.x`` (the name is read from ``x``'s namespace); relative imports are
  resolved the same way; a name beyond the package's files (``snn_nas.x.nope``) names its longest
  existing prefix.

A package's ``__init__`` importing its submodules (to re-export them) gives edges like any other
module; so does a submodule that imports from its own package's namespace (``from snn_nas.space
import SearchSpace`` inside ``snn_nas/space/loading.py``): together they are the circle that
fails with "partially initialized module" depending on which module is imported first.

What is *not* an edge: the parent packages that Python initialises implicitly before a submodule
(``import snn_nas.space.codec`` runs ``snn_nas/space/__init__.py`` first). That is written in no
import statement, and counting it would make every package that re-exports a submodule a cycle
with each of that submodule's siblings, although Python handles that order: the package is in
``sys.modules`` before its submodules run, and ``from snn_nas.space.codec import x`` reads the
submodule, not the package's half-built namespace. Nor is a self-import an edge. A module that
needs a name its package's ``__init__`` defines takes it from a module below both:
``snn_nas.__version__`` lives in ``snn_nas.version`` for that reason.

Module names in strings (``importlib.import_module``) are not read; the lazy facades
(``snn_nas``, ``snn_nas.search``, ``snn_nas.training``) repeat each of theirs in an
``if TYPE_CHECKING:`` import, which is.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

import snn_nas

PACKAGE = "snn_nas"
PACKAGE_DIR = Path(snn_nas.__file__).parent

MAX_CYCLES = 200  # elementary cycles listed at most (a big tangle is reported, not enumerated to the end)


# ----------------------------------------------------------------------------- the graph
def module_files(root: Path, package: str) -> dict[str, Path]:
    """``{module name: file}`` of every module under ``root`` (the folder of ``package``)."""
    modules = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join((package, *parts))] = path
    return modules


def _resolve(name: str, modules: Mapping[str, Path]) -> str | None:
    """The module ``name`` or its longest prefix that is a module of the package (None: none)."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in modules:
            return candidate
        parts.pop()
    return None


def imported_modules(name: str, path: Path, modules: Mapping[str, Path], package: str) -> set[str]:
    """The modules of ``package`` that module ``name`` (at ``path``) imports (module docstring)."""
    is_package = path.name == "__init__.py"
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        targets: list[str | None] = []
        if isinstance(node, ast.Import):
            targets = [_resolve(alias.name, modules) for alias in node.names if _inside(alias.name, package)]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                here = name.split(".") if is_package else name.split(".")[:-1]
                anchor = here[: len(here) - (node.level - 1)]
                base = ".".join([*anchor, node.module] if node.module else anchor)
            else:
                base = node.module or ""
            if not _inside(base, package):
                continue
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                targets.append(submodule if submodule in modules else _resolve(base, modules))
        found.update(t for t in targets if t is not None and t != name)
    return found


def _inside(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def import_graph(root: Path = PACKAGE_DIR, package: str = PACKAGE) -> dict[str, set[str]]:
    """``{module: the modules it imports}`` for every module of ``package``."""
    modules = module_files(root, package)
    return {name: imported_modules(name, path, modules, package) for name, path in modules.items()}


# ----------------------------------------------------------------------------- the cycles
def strongly_connected(graph: Mapping[str, Iterable[str]]) -> list[set[str]]:
    """The strongly connected components of ``graph`` (Tarjan), singletons included."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            components.append(component)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return components


def find_cycles(graph: Mapping[str, Iterable[str]], limit: int = MAX_CYCLES) -> list[tuple[str, ...]]:
    """The elementary cycles of ``graph``, each once, as a tuple starting at its smallest module
    (``("a", "b")`` is ``a -> b -> a``); at most ``limit`` of them, sorted.

    Each strongly connected component with more than one node (or a self-loop) holds cycles; a
    depth-first walk from every node ``s`` of the component, through the component's nodes
    greater than ``s`` only, finds each cycle exactly once (from its smallest node).
    """
    cycles: list[tuple[str, ...]] = []

    def walk(path: list[str], component: set[str]) -> None:
        for w in sorted(graph.get(path[-1], ())):
            if len(cycles) >= limit:
                return
            if w == path[0]:
                cycles.append(tuple(path))
            elif w in component and w > path[0] and w not in path:
                walk([*path, w], component)

    for component in strongly_connected(graph):
        for start in sorted(component):
            walk([start], component)
    return sorted(cycles)


def cycle_text(cycle: tuple[str, ...]) -> str:
    """``a -> b -> a``."""
    return " -> ".join((*cycle, cycle[0]))


# ----------------------------------------------------------------------------- the tests
def test_the_cycle_finder_finds_hand_made_cycles():
    graph = {"a": {"b"}, "b": {"c", "d"}, "c": {"a"}, "d": {"b"}, "e": {"a"}, "f": {"f"}}
    assert find_cycles(graph) == [("a", "b", "c"), ("b", "d"), ("f",)]
    assert cycle_text(("a", "b", "c")) == "a -> b -> c -> a"
    assert find_cycles({"a": {"b", "c"}, "b": {"c"}, "c": set()}) == []  # a diamond is no cycle


def test_edges_follow_the_module_docstring(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    files = {
        "__init__.py": "from pkg.b import thing\nfrom pkg import sub\n",
        "a.py": "import os\n\ndef f():\n    import pkg.b\n    from pkg.sub.c import x\n",
        "b.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.a import f\n",
        "sub/__init__.py": "",
        "leaf.py": "",
        "sub/c.py": "from pkg import thing\nfrom pkg.sub import d\nfrom . import d\nfrom ..leaf import y\n",
        "sub/d.py": "from pkg.nope import z\nfrom pkg.sub.c import x  # the cycle c <-> d\n",
    }
    for name, text in files.items():
        (pkg / name).write_text(text)
    graph = import_graph(pkg, "pkg")
    assert graph == {
        "pkg": {"pkg.b", "pkg.sub"},  # an __init__'s re-exports count
        "pkg.a": {"pkg.b", "pkg.sub.c"},  # lazy imports count; parent packages are implicit
        "pkg.b": {"pkg.a"},  # TYPE_CHECKING imports count
        "pkg.leaf": set(),
        "pkg.sub": set(),
        "pkg.sub.c": {"pkg", "pkg.sub.d", "pkg.leaf"},  # a name of pkg's namespace names pkg; relative imports resolve
        "pkg.sub.d": {"pkg", "pkg.sub.c"},  # an unknown submodule names its existing prefix
    }
    assert [cycle_text(c) for c in find_cycles(graph)] == [
        "pkg -> pkg.b -> pkg.a -> pkg.sub.c -> pkg",
        "pkg -> pkg.b -> pkg.a -> pkg.sub.c -> pkg.sub.d -> pkg",
        "pkg.a -> pkg.b -> pkg.a",
        "pkg.sub.c -> pkg.sub.d -> pkg.sub.c",
    ]


def test_snn_nas_has_no_import_cycle():
    graph = import_graph()
    assert "snn_nas.space.search_space" in graph and "snn_nas.search.trial" in graph  # the walk found the package
    cycles = find_cycles(graph)
    message = "\n".join(cycle_text(c) for c in cycles)
    if len(cycles) >= MAX_CYCLES:
        message += f"\n... (listing stopped at {MAX_CYCLES})"
    if cycles:
        print(f"import cycles in snn_nas:\n{message}")
    assert not cycles, f"{len(cycles)} import cycle(s) in snn_nas (see tests/test_imports.py):\n{message}"
