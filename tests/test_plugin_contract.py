"""The contract every registered plugin passes, and a meta-test that every plugin has its own tests.

Contract (issue #4): trains one epoch on a small ml-100k slice through the shared engine, under the
plugin's own protocol (``default`` for general models, ``sequential`` for sequential ones);
``full_sort_predict`` has shape [users × items] and is finite; the same seed gives the same scores;
the config round-trips through JSON; the search space proposes valid configs.
"""

from __future__ import annotations

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


def _scores(name: str, ds, seed: int) -> tuple[torch.Tensor, int]:
    """Scores after one epoch under the plugin's own protocol (``default``; ``sequential`` for sequential
    models; the first of ``Plugin.protocols`` for a plugin restricted to some)."""
    entry = registry.get(name)
    only = entry.plugin.protocols if entry.plugin is not None else None
    protocol = get_protocol(only[0]) if only else home_protocol(entry.model_type)
    spec = CellSpec(dataset=ds.name, model=name, protocol=protocol.name, seed=seed, epochs=1)
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
#: run with -m slow; their own test files cover them in the default suite.
SLOW_CONTRACTS = {"GenRec-TIGER", "SeqGNN-GRU"}


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW_CONTRACTS else n for n in PLUGINS])
def test_contract(name, ml100k_slice):
    plugin = registry.plugins()[name]
    if not plugin.needs <= ml100k_slice.features.provides():
        pytest.skip(f"{name} needs {plugin.needs}")
    scores, n_items = _scores(name, ml100k_slice, seed=2020)
    assert scores.shape[1] == n_items
    assert torch.isfinite(scores[:, 1:]).all(), "scores of real items must be finite"
    again, _ = _scores(name, ml100k_slice, seed=2020)
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


def test_every_plugin_has_its_own_tests():
    """PyKEEN-style meta-test: a registered plugin no test file names is uncovered."""
    sources = "\n".join(p.read_text() for p in (TESTS / "plugins").glob("test_*.py")) if (TESTS / "plugins").exists() else ""
    uncovered = [n for n in PLUGINS if f'"{n}"' not in sources and f"'{n}'" not in sources]
    assert not uncovered, f"plugins without a test under tests/plugins/: {uncovered}"
