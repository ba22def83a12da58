"""The fast training loader (m6rec_bench.engine.fast_train): RecBole's batches, replayed from tensors.

The replay draws every random number RecBole's loader draws, in the same order, so the batches must
be RecBole's bit for bit (pair-wise BPR, point-wise NeuMF, MultiVAE's user batches) and the
generators must end in the same state; the negatives never hit a user's training positives and are
uniform over the rest; a cell under ``M6BENCH_ENGINE=fast`` gives raw RecBole's numbers.
"""

from __future__ import annotations

import tempfile

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from m6rec_bench.engine import fast_eval, fast_train
from m6rec_bench.engine.cell import CellSpec, build_config_dict, run_cell
from m6rec_bench.errors import UsageError
from m6rec_bench.models import registry
from m6rec_bench.protocols import get_protocol
from raw_recbole import raw_recbole


def _train_loader(ds, model: str, seed: int = 2020):
    """The cell's train loader as ``build`` makes it (RecBole's config, dataset and data_preparation),
    without the model: a plugin's set-up (TransE, text encoding) plays no part in its batches."""
    from m6rec_bench import compat

    compat.apply()
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import init_seed

    entry, protocol = registry.get(model), get_protocol("default")
    split, extra = protocol.prepare(ds, seed)
    config_dict = build_config_dict(CellSpec(dataset=ds.name, model=model, seed=seed), entry, protocol, split, extra)
    with tempfile.TemporaryDirectory() as ckpt:
        config = compat.build_config(entry.model_cls or entry.name, split.name,
                                     {**config_dict, "data_path": str(split.root), "checkpoint_dir": ckpt, "show_progress": False})
    init_seed(config["seed"], config["reproducibility"])
    return data_preparation(config, create_dataset(config))[0]


def _default_protocol_models() -> list[str]:
    """The default suite's baselines and every plugin the default protocol runs."""
    protocol = get_protocol("default")
    names = list(registry.DEFAULT_BASELINES)
    for name in sorted(registry.plugins()):
        entry = registry.get(name)
        try:
            protocol.check_model(entry.name, entry.model_type)
        except UsageError:
            continue
        if not entry.plugin.protocols or "default" in entry.plugin.protocols:
            names.append(entry.name)
    return names


def _epochs(loader, n: int = 2) -> list[list[dict[str, torch.Tensor]]]:
    return [[dict(batch.interaction) for batch in loader] for _ in range(n)]


def _same(a, b) -> bool:
    return len(a) == len(b) and all(
        len(x) == len(y) and all(list(p) == list(q) and all(torch.equal(p[k], q[k]) and p[k].dtype == q[k].dtype for k in p)
                                 for p, q in zip(x, y)) for x, y in zip(a, b))


def test_every_default_protocol_plugin_is_replayed():
    names = _default_protocol_models()
    assert {"BPR", "NeuMF", "MultiVAE", "M6-Fusion"} <= set(names)


@pytest.mark.parametrize("model", _default_protocol_models())
def test_batches_are_recboles_bit_for_bit(ml100k_slice, model):
    """Pair-wise (BPR, the plugins), point-wise (NeuMF, Text-ZeroShot), user batches (MultiVAE), none
    (Pop, ItemKNN): two epochs of batches and the generator states after them."""
    loader = _train_loader(ml100k_slice, model)
    assert fast_train.unsupported(loader) is None
    torch_state, np_state = loader.generator.get_state(), np.random.get_state()
    reference = _epochs(loader)
    torch_after, np_after = loader.generator.get_state(), np.random.get_state()
    loader.generator.set_state(torch_state)
    np.random.set_state(np_state)
    fast = fast_train.wrap(loader)
    assert isinstance(fast, fast_train.FastTrainLoader) and len(fast) == len(loader)
    replayed = _epochs(fast)
    assert _same(reference, replayed)
    assert torch.equal(loader.generator.get_state(), torch_after)  # the next epoch starts where RecBole's would
    state = np.random.get_state()
    assert np.array_equal(state[1], np_after[1]) and state[2] == np_after[2]


def test_negatives_never_hit_train_positives_and_same_seed_gives_same_batches(ml100k_slice):
    loader = fast_train.wrap(_train_loader(ml100k_slice, "BPR"))
    used = loader._sampler.used_ids
    np.random.seed(0)
    first = _epochs(loader, 1)[0]
    for batch in first:
        users, negatives = batch["user_id"].tolist(), batch["neg_item_id"].tolist()
        assert not any(n in used[u] for u, n in zip(users, negatives))
        assert min(negatives) >= 1  # the padding item is never drawn
    again = fast_train.wrap(_train_loader(ml100k_slice, "BPR"))
    np.random.seed(0)
    assert _same([first], _epochs(again, 1))


class _UniformSampler:
    """RecBole's uniform draw (``Sampler._uni_sampling``) over ``n_items`` ids."""

    def __init__(self, n_items: int) -> None:
        self.n_items = n_items

    def sampling(self, k: int) -> np.ndarray:
        return np.random.randint(1, self.n_items, k)


@pytest.mark.parametrize("dense", [True, False])
def test_negatives_are_uniform_over_the_non_positives(monkeypatch, dense):
    from scipy.stats import chisquare

    if not dense:
        monkeypatch.setattr(fast_train, "DENSE_CELLS", 0)  # sorted keys + searchsorted
    n_items = 12
    used_ids = np.array([{1, 2, 3, 4, 5, 6, 7, 8}, {3, 9}, set()], dtype=object)  # user 0: most items taken
    used = fast_train.UsedItems(used_ids, n_items)
    assert (used.dense is not None) == dense
    np.random.seed(7)
    users = np.array([0, 1, 2] * 6000)
    negatives = fast_train.sample_negatives(_UniformSampler(n_items), used, users, 2).numpy()
    assert negatives.shape == (len(users) * 2,)
    users2 = np.tile(users, 2)
    for user, taken in enumerate(used_ids):
        drawn = negatives[users2 == user]
        allowed = sorted(set(range(1, n_items)) - taken)
        assert set(drawn.tolist()) == set(allowed)  # no positive, no padding, every other item
        counts = np.array([(drawn == i).sum() for i in allowed])
        assert chisquare(counts).pvalue > 1e-3


def test_a_fast_cell_gives_raw_recboles_numbers(ml100k_slice, monkeypatch):
    """The engine switch: a BPR cell under ``M6BENCH_ENGINE=fast`` (fast training and evaluation) is a
    valid record with the very metrics of raw RecBole (the default engine's test is test_engine's)."""
    monkeypatch.setenv("M6BENCH_ENGINE", "fast")
    spec = CellSpec(dataset=ml100k_slice.name, model="BPR", epochs=2)
    rec = run_cell(spec, prepared=ml100k_slice, command="test")
    assert rec.status == "ok", rec.reason
    assert rec.conditions is not None and rec.conditions.engine == "fast"
    assert rec.epochs_run == 2 and rec.train_time_s > 0 and len(rec.per_user["ndcg@10"]) > 100
    monkeypatch.delenv("M6BENCH_ENGINE")
    config = build_config_dict(spec, registry.get("BPR"), get_protocol("default"), ml100k_slice, {})
    assert rec.test == pytest.approx(raw_recbole(ml100k_slice, "BPR", config), abs=1e-12)


def test_engine_option_is_checked(monkeypatch):
    from m6rec_bench.cli import app

    monkeypatch.delenv("M6BENCH_ENGINE", raising=False)
    result = CliRunner().invoke(app, ["run", "--dataset", "ml-100k", "--models", "BPR", "--engine", "turbo", "--dry-run"])
    assert result.exit_code == 2, result.output
    assert "--engine 'turbo' is not an engine; use one of: replay, recbole, fast" in result.output


@pytest.mark.parametrize("engine", ["replay", "recbole"])
def test_the_default_engine_replays_and_equals_recboles_loader(ml100k_slice, monkeypatch, engine):
    """``replay`` (the default: M6BENCH_ENGINE unset) trains on the replayed batches and ``recbole`` on
    RecBole's own loader; both give the very metrics of raw RecBole, and each record names its engine."""
    monkeypatch.delenv("M6BENCH_ENGINE", raising=False)
    if engine != fast_eval.DEFAULT_ENGINE:
        monkeypatch.setenv("M6BENCH_ENGINE", engine)
    wrapped: list[bool] = []
    real_wrap = fast_train.wrap
    monkeypatch.setattr(fast_train, "wrap", lambda loader: wrapped.append(True) or real_wrap(loader))
    spec = CellSpec(dataset=ml100k_slice.name, model="BPR", epochs=2)
    rec = run_cell(spec, prepared=ml100k_slice, command="test")
    assert rec.status == "ok", rec.reason
    assert rec.conditions is not None and rec.conditions.engine == engine
    assert wrapped == ([True] if engine == "replay" else [])
    config = build_config_dict(spec, registry.get("BPR"), get_protocol("default"), ml100k_slice, {})
    assert rec.test == pytest.approx(raw_recbole(ml100k_slice, "BPR", config), abs=1e-12)


def test_recboles_global_anomaly_mode_is_switched_off():
    """RecBole's SINE module turns autograd's anomaly mode on for the whole process when imported
    (a stack trace recorded per op: about a third of a BPR epoch); compat.apply turns it off."""
    from m6rec_bench import compat

    compat.apply()
    import recbole.model.sequential_recommender  # noqa: F401 - imported again: no second switch

    assert not torch.is_anomaly_enabled()
