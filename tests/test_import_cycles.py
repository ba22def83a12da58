"""No import cycle among m6rec_bench modules (issue #15).

The graph is built with :mod:`ast` over ``m6rec_bench/``: every ``import`` and ``from … import``,
at module level AND inside functions (a function-level import is a cycle deferred, not removed);
only ``if TYPE_CHECKING:`` blocks are left out (they never run). ``from pkg import name`` points at
``pkg.name`` when that is a module, else at ``pkg``. Run ``python tests/test_import_cycles.py`` for
the counts (modules, edges, cycles, upward imports) and the cycles themselves.

Layers (what may import what, from ARCHITECTURE.md): an import from a lower layer into a higher one
is "upward". The counts are reported; only cycles fail the test.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "m6rec_bench"

#: Layer of a module, by longest matching prefix (higher imports lower).
LAYERS: dict[str, int] = {
    # the console script (launch: what precedes the CLI's imports) and ``python -m m6rec_bench``
    "m6rec_bench.launch": 10, "m6rec_bench.__main__": 10,
    "m6rec_bench.cli": 9, "m6rec_bench.serve": 9, "m6rec_bench.explain": 9,
    "m6rec_bench.pipeline": 8,  # tune → run → aggregate → write
    "m6rec_bench.tuning": 7,  # called by the pipeline, never by the engine
    "m6rec_bench.engine": 6,  # run a resolved cell, its variants, suites
    # leaf utilities that live in engine/ but import nothing of it (candidates to move down)
    "m6rec_bench.engine.environment": 3, "m6rec_bench.engine.fast_eval": 3, "m6rec_bench.engine.checkpoint": 3,
    "m6rec_bench.engine.threads": 3, "m6rec_bench.engine.workers": 3, "m6rec_bench.engine.fast_train": 3,
    "m6rec_bench.engine.engines": 3, "m6rec_bench.engine.pair_scores": 3,
    # below the engine: a cell resolved, RecBole set-up and training, artifacts
    "m6rec_bench.resolve": 4, "m6rec_bench.training": 4, "m6rec_bench.artifacts": 4,
}
DEFAULT_LAYER = 2  # protocols, models, datasets, results, leaderboard, compat, io, errors, …


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST) -> list[tuple[str, list[str], int]]:
    """(module, names, level) of every import outside ``if TYPE_CHECKING:`` blocks."""
    out: list[tuple[str, list[str], int]] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            out.extend((a.name, [], 0) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            out.append((node.module or "", [a.name for a in node.names], node.level))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return out


def import_graph() -> dict[str, set[str]]:
    """module → the m6rec_bench modules it imports (module- and function-level)."""
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in files}
    for mod, path in files.items():
        is_pkg = path.name == "__init__.py"
        for target, names, level in _imports(ast.parse(path.read_text(), str(path))):
            if level:
                base = mod.split(".") if is_pkg else mod.split(".")[:-1]
                base = base[: len(base) - (level - 1)]
                target = ".".join([*base, target] if target else base)
            if not target.startswith("m6rec_bench"):
                continue
            hits = [f"{target}.{n}" for n in names if f"{target}.{n}" in files]
            if len(hits) < len(names) or not names:
                t = target
                while t not in files and "." in t:
                    t = t.rsplit(".", 1)[0]
                hits.append(t)
            graph[mod].update(h for h in hits if h != mod)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def strong(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(10_000, limit))
    try:  # restored after: later tests must see the interpreter's own limit
        for v in sorted(graph):
            if v not in index:
                strong(v)
    finally:
        sys.setrecursionlimit(limit)
    return out


def layer(mod: str) -> int:
    best = max((p for p in LAYERS if mod == p or mod.startswith(p + ".")), key=len, default=None)
    return LAYERS[best] if best is not None else DEFAULT_LAYER


def upward(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    """Imports from a lower layer into a higher one."""
    return sorted((a, b) for a, targets in graph.items() for b in targets if layer(b) > layer(a))


def test_no_import_cycle_among_m6rec_bench_modules():
    found = cycles(import_graph())
    assert not found, "import cycles: " + "; ".join(" ↔ ".join(c) for c in found)


def test_the_engine_is_not_imported_from_below_it():
    """artifacts, tuning trials' set-up and the cell resolution sit below the engine; the engine never tunes."""
    assert upward(import_graph()) == []


def test_the_graph_sees_function_level_imports(tmp_path):
    """The checker itself: a function-level import counts, a TYPE_CHECKING one does not."""
    tree = ast.parse("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import m6rec_bench.a\n"
                     "def f():\n    from m6rec_bench import b\n")
    assert [t for t, _, _ in _imports(tree) if t.startswith("m6rec_bench")] == ["m6rec_bench"]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


if __name__ == "__main__":
    g = import_graph()
    cyc = cycles(g)
    up = upward(g)
    print(f"modules {len(g)}, edges {sum(map(len, g.values()))}, cycles (SCCs > 1 module) {len(cyc)}, "
          f"modules in cycles {sum(map(len, cyc))}, upward imports {len(up)}")
    for c in cyc:
        print("  cycle:", " ".join(c))
    for a, b in up:
        print(f"  upward: {a} -> {b}")
