"""The contract every registered plugin passes, and a meta-test that every plugin has its own tests.

Contract (issue #4): trains one epoch on a small ml-100k slice through the shared engine, under the
plugin's own protocol (``default`` for general models, ``sequential`` for sequential ones);
``full_sort_predict`` has shape [users × items] and is finite; the same seed gives the same scores;
the config round-trips through JSON; the search space proposes valid configs.

In the default suite the content vectors come from the cheap stand-ins of ``tests/stand_ins.py``
(MiniLM text vectors, M6-Fusion's KG vectors), with the cheaper settings of :data:`CHEAP`;
``test_contract_with_real_content`` (``-m slow``) runs the same contract on the real encoders with
each plugin's own settings. The real encoders themselves are checked in the
default suite on small data by ``tests/plugins/test_text.py`` and ``tests/plugins/test_kg.py``.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import optuna
import pytest
import torch

from m6rec_bench.engine.cell import CellSpec, build_config_dict, train_and_evaluate
from m6rec_bench.models import registry
from m6rec_bench.models.plugin import MODEL_TYPES
from m6rec_bench.protocols import get_protocol, home_protocol, protocols_for

PLUGINS = sorted(registry.plugins())
TESTS = Path(__file__).parent


def test_plugins_are_installed():
    assert PLUGINS, "no plugin found: did you `pip install -e ./plugins`?"
    assert not registry.broken_plugins(), registry.broken_plugins()


def _scores(name: str, ds, seed: int, overrides: dict | None = None) -> tuple[torch.Tensor, int]:
    """Scores after one epoch under the plugin's own protocol (``default``; ``sequential`` for sequential
    models; the first of ``Plugin.protocols`` for a plugin restricted to some)."""
    entry = registry.get(name)
    only = entry.plugin.protocols if entry.plugin is not None else None
    protocol = get_protocol(only[0]) if only else home_protocol(entry.model_type)
    spec = CellSpec(dataset=ds.name, model=name, protocol=protocol.name, seed=seed, epochs=1, overrides=overrides or {})
    split, extra = protocol.prepare(ds, seed)
    config = build_config_dict(spec, entry, protocol, ds, extra)
    run = train_and_evaluate(entry, split, config)
    batch = next(iter(run.test_data))
    interaction = batch[0].to(run.model.device)
    run.model.eval()
    with torch.no_grad():
        scores = run.model.full_sort_predict(interaction)
    n_users = len(interaction[run.model.USER_ID])
    return scores.detach().cpu().view(n_users, -1), run.dataset.item_num


#: Contract cells over ~50 s on 2 cores (a Transformer decoder with beam search; a GRU over session graphs):
#: only in the slow run's real-content contract; their own test files cover them in the default suite.
SLOW_CONTRACTS = {"GenRec-TIGER", "SeqGNN-GRU"}
#: Plugins that read content (text, KG), and the slow ones: the slow run checks their contract on the
#: real encoders with the plugin's own settings.
REAL_CONTENT = sorted({n for n, plugin in registry.plugins().items() if plugin.needs - {"inter"}} | SLOW_CONTRACTS)
#: Cheaper settings in the default suite: one-time set-up shrunk, cached and then trained on exactly as
#: the full one (KG-TransE's PyKEEN embedding: 1 epoch, not 15; M6-Adapt's source-task pretraining: 1,
#: not 10), and GenRec-TIGER-Cold's one epoch on 3 % of each batch's rows, not 12.5 % (as "fewer epochs").
CHEAP = {"KG-TransE": {"kg_epochs": 1}, "M6-Adapt": {"pretrain_epochs": 1}, "GenRec-TIGER-Cold": {"train_share": 0.03}}


def _contract(name: str, ds, overrides: dict | None = None) -> None:
    plugin = registry.plugins()[name]
    if not plugin.needs <= ds.features.provides():
        pytest.skip(f"{name} needs {plugin.needs}")
    scores, n_items = _scores(name, ds, seed=2020, overrides=overrides)
    assert scores.shape[1] == n_items
    assert torch.isfinite(scores[:, 1:]).all(), "scores of real items must be finite"
    again, _ = _scores(name, ds, seed=2020, overrides=overrides)
    assert torch.equal(scores, again), "same seed must give the same scores"

    assert plugin.model_type in MODEL_TYPES and home_protocol(plugin.model_type).name in protocols_for(plugin.model_type)
    assert all(p in protocols_for(plugin.model_type) for p in plugin.protocols or ())
    cfg = plugin.default_config()
    assert plugin.config_cls.model_validate(json.loads(cfg.model_dump_json())) == cfg
    if plugin.search_space is not None:
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
        for _ in range(3):
            proposed = plugin.search_space(study.ask())
            plugin.config_cls(**{k: v for k, v in proposed.items() if k in plugin.config_cls.model_fields})


@pytest.mark.parametrize("name", [n for n in PLUGINS if n not in SLOW_CONTRACTS])
def test_contract(name, ml100k_slice, fusion_content):
    """The contract with stand-in content vectors and the settings of :data:`CHEAP` (see the module docstring)."""
    _contract(name, ml100k_slice, CHEAP.get(name))


@pytest.mark.slow  # the real MiniLM and PyKEEN encoders on the slice's whole catalogue: minutes on 2 cores
@pytest.mark.parametrize("name", REAL_CONTENT)
def test_contract_with_real_content(name, ml100k_slice):
    _contract(name, ml100k_slice)


def _is_slow(node: ast.AST) -> bool:
    """Whether an expression holds ``pytest.mark.slow``."""
    return any(isinstance(n, ast.Attribute) and n.attr == "slow" for n in ast.walk(node))


def _refs(node: ast.AST) -> tuple[set[str], set[str]]:
    """The string constants and the names (arguments included) in ``node``'s code, docstrings aside;
    a ``pytest.param(..., marks=pytest.mark.slow)`` is skipped: it runs only with ``-m slow``."""
    strings: set[str] = set()
    names: set[str] = set()

    def visit(n: ast.AST) -> None:
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr == "param" \
                and any(k.arg == "marks" and _is_slow(k.value) for k in n.keywords):
            return
        body = getattr(n, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
            children = [c for c in ast.iter_child_nodes(n) if c is not body[0]]  # a docstring only talks
        else:
            children = list(ast.iter_child_nodes(n))
        if isinstance(n, ast.Constant) and isinstance(n.value, str):
            strings.add(n.value)
        elif isinstance(n, ast.Name):
            names.add(n.id)
        elif isinstance(n, ast.arg):
            names.add(n.arg)
        for child in children:
            visit(child)

    visit(node)
    return strings, names


def default_suite_strings(source: str) -> set[str]:
    """Strings the default suite's tests in ``source`` use: each ``test_*`` function not marked slow,
    with the module constants, helpers and module fixtures it names (followed transitively)."""
    tree = ast.parse(source)
    constants: dict[str, set[str]] = {}
    functions: dict[str, ast.AST] = {}
    for stmt in tree.body:
        if isinstance(stmt, ast.FunctionDef):
            functions[stmt.name] = stmt
        elif isinstance(stmt, ast.Assign | ast.AnnAssign) and stmt.value is not None:
            for target in stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]:
                if isinstance(target, ast.Name) and target.id == "pytestmark" and _is_slow(stmt.value):
                    return set()
                if isinstance(target, ast.Tuple) and isinstance(stmt.value, ast.Tuple) \
                        and len(target.elts) == len(stmt.value.elts):  # A, B = "a", "b"
                    pairs = list(zip(target.elts, stmt.value.elts, strict=True))
                else:
                    pairs = [(t, stmt.value) for t in ast.walk(target) if isinstance(t, ast.Name)]
                for name, value in pairs:
                    if isinstance(name, ast.Name):
                        constants.setdefault(name.id, set()).update(_refs(value)[0])
    found: set[str] = set()
    for name, fn in functions.items():
        if not name.startswith("test_") or any(isinstance(d, ast.Attribute) and d.attr == "slow" for d in fn.decorator_list):
            continue
        todo, seen = [fn], {name}
        while todo:
            strings, names = _refs(todo.pop())
            found |= strings
            for ref in names - seen:
                seen.add(ref)
                found |= constants.get(ref, set())
                if ref in functions:
                    todo.append(functions[ref])
    return found


def test_the_meta_test_reads_only_default_suite_tests():
    source = '''
"""Mentions "Docstring" only."""
import pytest
SEQ, COLD = "Seq", "Cold"
ONLY_SLOW = "OnlySlow"
def _helper():
    return SEQ
@pytest.fixture
def built():
    return "ViaFixture"
def test_a(built):
    """Talks about "InDocstring"."""
    assert _helper()  # "InComment"
@pytest.mark.parametrize("m", ["Param", pytest.param("SlowParam", marks=pytest.mark.slow)])
def test_b(m):
    pass
@pytest.mark.slow
def test_c():
    assert ONLY_SLOW and COLD
def unused():
    return "NotATest"
'''
    found = default_suite_strings(source)
    assert {"Seq", "ViaFixture", "Param"} <= found
    assert not found & {"Docstring", "InDocstring", "InComment", "SlowParam", "OnlySlow", "Cold", "NotATest"}
    assert default_suite_strings("import pytest\npytestmark = pytest.mark.slow\ndef test_a():\n    assert 'X'\n") == set()


def test_every_plugin_has_its_own_tests():
    """PyKEEN-style meta-test: every registered plugin is named, as a string in code (not a comment or a
    docstring), by a default-suite test under tests/plugins/ (a test function not marked slow, or a
    constant, helper or fixture it uses), so each plugin keeps its own test when ``-m slow`` is not run."""
    covered: set[str] = set()
    for path in sorted((TESTS / "plugins").glob("test_*.py")):
        covered |= default_suite_strings(path.read_text())
    uncovered = [n for n in PLUGINS if n not in covered]
    assert not uncovered, f"plugins no default-suite test under tests/plugins/ names: {uncovered}"
