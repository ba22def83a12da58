"""The layers of the package, held by reading every module's imports (AST, no import is run).

Every ``import`` and ``from … import`` counts, at module level or inside a function, and so does
``importlib.import_module("…")`` / ``__import__("…")`` with a literal name. The rules:

* the core (``m6rec_bench``) never imports the built-in plugins (``m6rec_plugins``): anything the
  core needs from a plugin is a ``Plugin`` hook, which any installed plugin can fill;
* the built-in plugins import from ``m6rec_bench`` only the plugin API (:mod:`m6rec_bench.plugin_api`)
  — what a stranger's plugin gets, and no more;
* ``protocols``, ``datasets``, ``results`` and ``leaderboard`` never import ``engine``, ``cli`` or
  ``pipeline`` (data flows down; imports point down).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

import m6rec_bench.plugin_api as plugin_api

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "m6rec_bench"
PLUGINS = ROOT / "plugins" / "m6rec_plugins"

#: What a plugin may import from m6rec_bench: the plugin API module, nothing below or beside it.
PLUGIN_MAY_IMPORT = frozenset({"m6rec_bench.plugin_api"})

#: The lower layers and what they must never import.
LOWER = ("protocols", "datasets", "results", "leaderboard")
UPPER = ("m6rec_bench.engine", "m6rec_bench.cli", "m6rec_bench.pipeline")


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path, root: Path) -> Iterator[tuple[int, str]]:
    """``(line, absolute module name)`` of every import in the file, relative ones resolved; a
    ``from pkg import name`` yields ``pkg.name`` too (it may be a submodule)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = _module_name(path, root)
    if path.name != "__init__.py":
        package = package.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            yield node.lineno, base
            for alias in node.names:
                if alias.name != "*":
                    yield node.lineno, f"{base}.{alias.name}"
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) \
                and isinstance(node.args[0].value, str):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in ("import_module", "__import__"):
                yield node.lineno, node.args[0].value


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.py") if "__pycache__" not in p.parts)


def test_the_walker_sees_every_kind_of_import(tmp_path):
    pkg = tmp_path / "m6rec_bench" / "leaderboard"
    pkg.mkdir(parents=True)
    (pkg / "probe.py").write_text(
        "import m6rec_plugins.text\n"
        "from m6rec_bench import engine\n"
        "from ..cli import run\n"
        "def late():\n"
        "    import importlib\n"
        "    from m6rec_bench.pipeline import go\n"
        "    importlib.import_module('m6rec_plugins.kg')\n"
        "    __import__('m6rec_bench.engine.cell')\n"
    )
    found = {m for _, m in imports(pkg / "probe.py", tmp_path / "m6rec_bench")}
    assert {"m6rec_plugins.text", "m6rec_bench.engine", "m6rec_bench.cli.run", "m6rec_bench.pipeline.go",
            "m6rec_plugins.kg", "m6rec_bench.engine.cell"} <= found


def test_core_never_imports_the_builtin_plugins():
    bad = [f"{p.relative_to(ROOT)}:{line} imports {m}" for p in _files(CORE) for line, m in imports(p, CORE)
           if _within(m, "m6rec_plugins")]
    assert not bad, "the core names a plugin; make it a Plugin hook instead:\n" + "\n".join(bad)


def test_plugins_import_only_the_plugin_api_from_the_core():
    files = _files(PLUGINS)
    assert len(files) > 5
    bad = []
    for p in files:
        for line, m in imports(p, PLUGINS):
            if not _within(m, "m6rec_bench"):
                continue
            if m == "m6rec_bench" or any(_within(m, ok) for ok in PLUGIN_MAY_IMPORT):
                continue  # "from m6rec_bench import plugin_api" yields "m6rec_bench" first
            bad.append(f"{p.relative_to(ROOT)}:{line} imports {m}")
    assert not bad, "plugins may import only m6rec_bench.plugin_api (add to its __all__ if needed):\n" + "\n".join(bad)


@pytest.mark.parametrize("layer", LOWER)
def test_lower_layers_never_import_engine_cli_or_pipeline(layer):
    bad = [f"{p.relative_to(ROOT)}:{line} imports {m}" for p in _files(CORE / layer) for line, m in imports(p, CORE)
           if any(_within(m, up) for up in UPPER)]
    assert _files(CORE / layer)
    assert not bad, f"{layer} imports an upper layer:\n" + "\n".join(bad)


def test_plugin_api_lists_what_it_exports_and_every_name_resolves():
    assert len(set(plugin_api.__all__)) == len(plugin_api.__all__)
    for name in plugin_api.__all__:
        assert getattr(plugin_api, name) is not None, name
    with pytest.raises(AttributeError, match="__all__"):
        plugin_api.engine  # noqa: B018 - not part of the API


def test_plugin_api_and_the_builtin_cards_import_light():
    """A package's PLUGIN_CARDS module imports the plugin API: that must not pull in torch, pandas or RecBole."""
    import subprocess
    import sys

    code = ("import sys, m6rec_bench.plugin_api, m6rec_plugins; "
            "print(sorted(m for m in ('torch', 'pandas', 'recbole', 'sentence_transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
