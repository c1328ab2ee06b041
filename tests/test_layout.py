"""The package's layout, kept: no import cycles, no oversized modules, no private names borrowed
across modules, and the import-linter layers contract (core < capturing < analysis < wire <
report < widget < api < shells). Each failure names what broke it."""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys

import grimp

import tx_magic

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "tx_magic"
#: A module past this many lines is doing more than one thing: split it.
MAX_LINES = 400


def modules() -> dict[str, pathlib.Path]:
    """Every module of the package (dotted name -> file), the built renderer bundle left out."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if "static" in parts:
            continue
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def strongly_connected(edges: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components of more than one module (or a module importing itself)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in edges.get(v, ()):
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_the_checked_package_is_this_checkout():
    assert pathlib.Path(tx_magic.__file__).resolve().parent == PACKAGE, (
        f"tx_magic imports from {tx_magic.__file__}, not {PACKAGE}: the layout checks would look at another copy")


def test_strongly_connected_finds_cycles():
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"d"}, "e": {"a"}}
    assert strongly_connected(edges) == [["a", "b", "c"], ["d"]]


def test_no_import_cycles_counting_function_level_and_type_checking_imports():
    graph = grimp.build_graph("tx_magic", cache_dir=None)  # grimp reads every import statement in a module
    assert graph.direct_import_exists(importer="tx_magic", imported="tx_magic.magics"), (
        "grimp no longer sees imports inside functions (tx_magic.load_ipython_extension imports .magics)")
    edges = {m: set(graph.find_modules_directly_imported_by(m)) for m in graph.modules}
    cycles = strongly_connected(edges)

    def lines(component: list[str]) -> str:
        inside = set(component)
        return "\n".join(
            f"    {d['importer']}:{d['line_number']}  {d['line_contents']}"
            for m in component for other in sorted(edges[m] & inside)
            for d in graph.get_import_details(importer=m, imported=other))

    assert not cycles, "import cycles among tx_magic's modules:\n" + "\n".join(
        f"  {' <-> '.join(c)}\n{lines(c)}" for c in cycles)


def test_no_module_is_over_the_line_limit():
    long = {name: n for name, path in modules().items()
            if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines (split them): " + ", ".join(
        f"{name} ({n})" for name, n in sorted(long.items()))


def _imported_from(module: str, is_package: bool, node: ast.ImportFrom) -> str | None:
    """The absolute module a `from X import ...` reads from, when it is inside tx_magic."""
    if node.level == 0:
        name = node.module or ""
        return name if name == "tx_magic" or name.startswith("tx_magic.") else None
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[:len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def private_imports() -> list[str]:
    """`from .a import _b` anywhere in the package where `.a` is another module (dunders are fine)."""
    found = []
    for module, path in modules().items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.ImportFrom):
                continue
            source = _imported_from(module, path.name == "__init__.py", node)
            if source is None or source == module:
                continue
            for alias in node.names:
                if alias.name.startswith("_") and not (alias.name.startswith("__") and alias.name.endswith("__")):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}  from {source} import {alias.name}")
    return found


def test_private_import_detection():
    tree = ast.parse("from .html import _block_cost\nfrom ..core import trace\nfrom tx_magic.wire import x\n")
    nodes = [n for n in tree.body if isinstance(n, ast.ImportFrom)]
    assert [_imported_from("tx_magic.report.page", False, n) for n in nodes] == [
        "tx_magic.report.html", "tx_magic.core", "tx_magic.wire"]
    assert _imported_from("tx_magic.report", True, nodes[0]) == "tx_magic.report.html"


def test_no_private_name_is_imported_from_another_module():
    found = private_imports()
    assert not found, ("private names imported from another module of tx_magic (make them public, or keep "
                       "the use in their module):\n  " + "\n  ".join(found))


def test_import_linter_layers_contract_is_kept():
    run = subprocess.run(
        [sys.executable, "-c", "import sys; from importlinter.cli import lint_imports; "
                               "sys.exit(lint_imports(no_cache=True, no_logo=True))"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, (
        "lint-imports (the layers contract in pyproject.toml) failed:\n" + run.stdout + run.stderr)
