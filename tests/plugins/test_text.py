"""Text-Tower and Text-ZeroShot: MiniLM item embeddings (cache, offline errors) and real cells."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from m6rec_bench import compat, embcache, textvec
from m6rec_bench.datasets.base import DatasetFeatures, PreparedDataset
from m6rec_bench.datasets.prepare import bundled_root
from m6rec_bench.engine.cell import CellSpec, run_cell
from m6rec_bench.errors import DataError
from m6rec_bench.models import registry
from m6rec_plugins import text as textmod

TEXT_FIELDS = ("movie_title", "release_year", "class")
NAME = "tiny-text"


def write_tiny(root: Path, name: str, n_users: int = 100, n_items: int = 200) -> Path:
    """A small real slice of the bundled ml-100k (most popular items, first users), headers unchanged."""
    src = bundled_root() / "ml-100k"
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)

    def read(suffix: str) -> tuple[str, pd.DataFrame]:
        path = src / f"ml-100k.{suffix}"
        header = path.read_text(encoding="utf-8").split("\n", 1)[0]
        df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, quoting=3)
        df.columns = [c.split(":", 1)[0] for c in df.columns]
        return header, df

    def write(suffix: str, header: str, df: pd.DataFrame) -> None:
        body = df.to_csv(sep="\t", header=False, index=False, quoting=3)
        (folder / f"{name}.{suffix}").write_text(header + "\n" + body, encoding="utf-8")

    h_inter, inter = read("inter")
    items = set(inter["item_id"].value_counts().index[:n_items])
    inter = inter[inter["item_id"].isin(items)]
    users = set(sorted(inter["user_id"].unique(), key=int)[:n_users])
    inter = inter[inter["user_id"].isin(users)]
    write("inter", h_inter, inter)
    h_item, item = read("item")
    write("item", h_item, item[item["item_id"].isin(set(inter["item_id"]))])
    return folder


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("textdata")
    write_tiny(root, NAME)
    return root


@pytest.fixture(scope="module")
def text_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One embedding cache for this module: MiniLM encodes the items once."""
    return tmp_path_factory.mktemp("texthome")


@pytest.fixture(autouse=True)
def _env(text_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("M6BENCH_HOME", str(text_home))
    monkeypatch.setenv("M6BENCH_PLUGINS", "Text-Tower,Text-ZeroShot")
    registry.refresh()
    yield
    registry.refresh()


def recbole_dataset(root: Path, model_cls: type, **extra: Any) -> tuple[Any, Any]:
    """RecBole Config and full dataset for ``model_cls`` on the tiny slice, as the cell would build them."""
    compat.apply()
    from recbole.config import Config
    from recbole.data import create_dataset

    config_dict = {
        "data_path": str(root), "m6_item_text_fields": list(TEXT_FIELDS), "m6_has_kg": False,
        "m6_dataset_checksum": "sha256:test", "show_progress": False, "use_gpu": False, **extra,
    }
    with compat.shielded_argv():
        config = Config(model=model_cls, dataset=NAME, config_dict=config_dict)
    return config, create_dataset(config)


def test_item_text_embeddings_shape_and_cache(data_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config, dataset = recbole_dataset(data_root, textmod.TextZeroShot)
    emb = textmod.item_text_embeddings(config, dataset)
    assert emb.shape == (dataset.item_num, 384) and emb.dtype == np.float32
    assert not emb[0].any()
    assert np.allclose(np.linalg.norm(emb[1:], axis=1), 1.0, atol=1e-4)  # MiniLM normalises its output
    assert list((embcache.entry_path("text", {}).parent).glob("*.npz"))

    def no_encoding(*_: Any, **__: Any) -> None:
        raise AssertionError("texts encoded again on a cache hit")

    monkeypatch.setattr(textvec, "encode_texts", no_encoding)  # the core's encoder, which the plugin re-exports
    assert np.array_equal(textmod.item_text_embeddings(config, dataset), emb)
    # the shipped model under its Hub id (or its directory) is the same cache entry
    hub_id = {**config.final_config_dict, "text_model": "sentence-transformers/all-MiniLM-L6-v2"}
    assert np.array_equal(textmod.item_text_embeddings(hub_id, dataset), emb)
    by_path = {**config.final_config_dict, "text_model": str(textvec.shipped_model_dir())}
    assert np.array_equal(textmod.item_text_embeddings(by_path, dataset), emb)


def test_similar_titles_are_close(data_root: Path) -> None:
    config, dataset = recbole_dataset(data_root, textmod.TextZeroShot)
    emb = textmod.item_text_embeddings(config, dataset)
    tokens = list(dataset.field2id_token[dataset.iid_field])
    star_wars, empire, fargo = (tokens.index(t) for t in ("50", "172", "100"))  # Star Wars, Empire Strikes Back, Fargo
    assert emb[star_wars] @ emb[empire] > emb[star_wars] @ emb[fargo]


def test_zeroshot_user_is_mean_of_history(data_root: Path) -> None:
    config, dataset = recbole_dataset(data_root, textmod.TextZeroShot)
    train, _, _ = dataset.build()  # the model sees the training split only, as in a cell
    model = textmod.TextZeroShot(config, train)
    emb = textmod.item_text_embeddings(config, train)
    history, _, lengths = train.history_item_matrix()
    for user in (1, 2, train.user_num - 1):
        mean = emb[history[user, : lengths[user]].numpy()].mean(axis=0)
        expected = mean / np.linalg.norm(mean)
        assert np.allclose(model.user_unit[user].numpy(), expected, atol=1e-5)
    from recbole.data.interaction import Interaction

    scores = model.full_sort_predict(Interaction({dataset.uid_field: torch.tensor([1])}))
    unit = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    assert np.allclose(scores.numpy(), unit @ model.user_unit[1].numpy(), atol=1e-5)  # cosine


def test_unknown_text_model_offline_is_a_clear_error(data_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    config, dataset = recbole_dataset(data_root, textmod.TextZeroShot)
    missing = {**config.final_config_dict, "text_model": "m6bench-test/no-such-encoder"}
    with pytest.raises(DataError) as err:
        textmod.item_text_embeddings(missing, dataset)
    message = str(err.value)
    assert "m6bench-test/no-such-encoder" in message
    assert "HF_HUB_OFFLINE=0" in message and "local" in message
    import os

    assert "HF_HUB_OFFLINE" not in os.environ  # the offline switch does not leak out of the load


def test_tower_same_seed_same_scores(data_root: Path) -> None:
    from recbole.data.interaction import Interaction
    from recbole.utils import init_seed

    config, dataset = recbole_dataset(data_root, textmod.TextTower, **textmod.TextTowerConfig(tower_hidden=32).model_dump())
    users = Interaction({dataset.uid_field: torch.arange(1, 4)})
    scores = []
    for _ in range(2):
        init_seed(config["seed"], True)
        model = textmod.TextTower(config, dataset).eval()
        with torch.no_grad():
            scores.append(model.full_sort_predict(users))
    assert scores[0].shape == (3 * dataset.item_num,) and torch.equal(scores[0], scores[1])
    assert not hasattr(model, "item_embedding")  # a pure content tower: no item ID embedding


def test_tower_runs_once_per_distinct_item_with_the_same_loss_and_gradients(data_root: Path) -> None:
    """``item_vectors_of`` (the tower on the batch's distinct items, then gathered) is the separate
    ``item_vectors`` calls it replaced: the same BPR loss and gradients on a batch with repeats."""
    from recbole.data.interaction import Interaction
    from recbole.utils import init_seed

    config, dataset = recbole_dataset(data_root, textmod.TextTower, **textmod.TextTowerConfig(tower_hidden=32).model_dump())
    init_seed(config["seed"], True)
    model = textmod.TextTower(config, dataset)
    gen = torch.Generator().manual_seed(3)
    batch = Interaction({model.USER_ID: torch.randint(1, dataset.user_num, (256,), generator=gen),
                         model.ITEM_ID: torch.randint(1, dataset.item_num, (256,), generator=gen),
                         model.NEG_ITEM_ID: torch.randint(1, dataset.item_num, (256,), generator=gen)})
    pos, neg = batch[model.ITEM_ID], batch[model.NEG_ITEM_ID]
    assert len(torch.unique(torch.cat([pos, neg]))) < 512  # repeats: the case the helper saves work on
    once = model.item_vectors_of(pos, neg)
    torch.testing.assert_close(once[0], model.item_vectors(pos), rtol=0, atol=1e-6)
    torch.testing.assert_close(once[1], model.item_vectors(neg), rtol=0, atol=1e-6)

    def loss_and_grads(separate: bool) -> tuple[float, list[torch.Tensor]]:
        model.zero_grad()
        if separate:  # the formula before the helper
            user_e = model.user_embedding(batch[model.USER_ID])
            pos_e, neg_e = model.item_vectors(pos), model.item_vectors(neg)
            loss = model.loss((user_e * pos_e).sum(1), (user_e * neg_e).sum(1)) \
                + model.reg_weight * model.reg_loss(user_e, pos_e, neg_e)
        else:
            loss = model.calculate_loss(batch)
        loss.backward()
        return loss.item(), [p.grad.clone() for p in model.parameters()]

    (a, grads_a), (b, grads_b) = loss_and_grads(False), loss_and_grads(True)
    assert a == pytest.approx(b, rel=1e-6)
    for ga, gb in zip(grads_a, grads_b):
        torch.testing.assert_close(ga, gb, rtol=1e-5, atol=1e-7)


def test_search_spaces_give_valid_configs() -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0)).ask()
    params = textmod.tower_search_space(trial)
    fields = textmod.TextTowerConfig.model_fields
    textmod.TextTowerConfig(**{k: v for k, v in params.items() if k in fields})
    assert textmod.zeroshot_search_space(trial) == {}


@pytest.mark.parametrize(("model", "epochs"), [("Text-Tower", 2), ("Text-ZeroShot", None)])
def test_cell_runs_through_recbole(data_root: Path, model: str, epochs: int | None) -> None:
    prepared = PreparedDataset(NAME, data_root, "sha256:test", DatasetFeatures(TEXT_FIELDS, False))
    rec = run_cell(CellSpec(dataset=NAME, model=model, epochs=epochs), prepared=prepared, command="test")
    assert rec.status == "ok", rec.reason
    assert rec.family == "text"
    ndcg = rec.test["ndcg@10"]
    assert math.isfinite(ndcg) and ndcg > 0
    if model == "Text-ZeroShot":
        assert rec.epochs_run == 1  # RecBole's TraditionalTrainer: one pass, no training


def test_cell_skips_dataset_without_text(data_root: Path) -> None:
    prepared = PreparedDataset(NAME, data_root, "sha256:test", DatasetFeatures((), False))
    rec = run_cell(CellSpec(dataset=NAME, model="Text-Tower"), prepared=prepared, command="test")
    assert rec.status == "skipped" and "item_text" in (rec.reason or "")
