"""KG-TransE: PyKEEN entity embeddings (cache, attribute fallback) and the CKE-style model in a real cell."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from m6rec_bench import compat, embcache, sideinfo
from m6rec_bench.datasets.base import DatasetFeatures, PreparedDataset
from m6rec_bench.datasets.prepare import bundled_root
from m6rec_bench.engine.cell import CellSpec, run_cell
from m6rec_bench.models import registry
from m6rec_plugins import kg as kgmod

TEXT_FIELDS = ("movie_title", "release_year", "class")
FAST_KG = {"kg_epochs": 2, "kg_dim": 16}


def write_tiny(root: Path, name: str, n_users: int = 120, n_items: int = 250, with_kg: bool = True) -> Path:
    """A small real slice of the bundled ml-100k: the ``n_items`` most popular items, ``n_users`` users.

    ``.item``/``.user``/``.link`` keep the surviving ids; ``.kg`` keeps triples whose head is the
    entity of a kept item. Headers are copied unchanged.
    """
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
    users = sorted(inter["user_id"].unique(), key=int)[:n_users]
    inter = inter[inter["user_id"].isin(set(users))]
    write("inter", h_inter, inter)
    kept_items = set(inter["item_id"])
    h_item, item = read("item")
    write("item", h_item, item[item["item_id"].isin(kept_items)])
    h_user, user = read("user")
    write("user", h_user, user[user["user_id"].isin(set(users))])
    if with_kg:
        h_link, link = read("link")
        link = link[link["item_id"].isin(kept_items)]
        write("link", h_link, link)
        h_kg, kg = read("kg")
        write("kg", h_kg, kg[kg["head_id"].isin(set(link["entity_id"]))])
    return folder


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("kgdata")
    write_tiny(root, "tiny-kg", with_kg=True)
    write_tiny(root, "tiny-attr", with_kg=False)
    return root


@pytest.fixture(scope="module")
def kg_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One embedding cache for this module (so the second call of a key is a hit)."""
    return tmp_path_factory.mktemp("kghome")


@pytest.fixture(autouse=True)
def _env(kg_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("M6BENCH_HOME", str(kg_home))
    monkeypatch.setenv("M6BENCH_PLUGINS", "KG-TransE")
    registry.refresh()
    yield
    registry.refresh()


def recbole_dataset(root: Path, name: str, **extra: Any) -> tuple[Any, Any]:
    """RecBole Config and full dataset for ``KGTransE`` on ``root/name``, as the cell would build them."""
    compat.apply()
    from recbole.config import Config
    from recbole.data import create_dataset

    config_dict = {
        "data_path": str(root), "m6_item_text_fields": list(TEXT_FIELDS), "m6_has_kg": True,
        "m6_dataset_checksum": f"sha256:test-{name}", "show_progress": False, "use_gpu": False,
        **kgmod.KGConfig().model_dump(), **FAST_KG, **extra,
    }
    with compat.shielded_argv():
        config = Config(model=kgmod.KGTransE, dataset=name, config_dict=config_dict)
    return config, create_dataset(config)


def test_entity_embeddings_shape_mask_and_cache(data_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config, dataset = recbole_dataset(data_root, "tiny-kg")
    emb, linked = kgmod.entity_embeddings(config, dataset)
    assert emb.shape == (dataset.item_num, FAST_KG["kg_dim"]) and emb.dtype == np.float32
    assert linked.shape == (dataset.item_num,) and linked.dtype == bool
    assert not linked[0] and not emb[0].any()
    graph = sideinfo.knowledge_graph(config, dataset)
    assert graph.source == "kg"
    heads = set(graph.triples[:, 0]) | set(graph.triples[:, 2])
    expected = np.array([i > 0 and e is not None and e in heads for i, e in enumerate(graph.item_entities)])
    assert (linked == expected).all() and 0 < linked.sum() < dataset.item_num
    assert not emb[~linked].any() and np.isfinite(emb).all()
    assert np.allclose(np.linalg.norm(emb[linked], axis=1), 1.0, atol=1e-4)  # TransE's unit-norm entities

    assert list((embcache.entry_path("kg", {}).parent).glob("*.npz"))  # stored in the module's cache

    def no_training(*_: Any, **__: Any) -> None:
        raise AssertionError("KG retrained on a cache hit")

    monkeypatch.setattr(kgmod, "train_kg", no_training)
    emb2, linked2 = kgmod.entity_embeddings(config, dataset)
    assert np.array_equal(emb, emb2) and np.array_equal(linked, linked2)


def test_attribute_fallback_without_kg_files(data_root: Path) -> None:
    folder = data_root / "tiny-attr"
    assert not (folder / "tiny-attr.kg").exists() and not (folder / "tiny-attr.link").exists()
    config, dataset = recbole_dataset(data_root, "tiny-attr")
    assert sideinfo.knowledge_graph(config, dataset).source == "attributes"
    emb, linked = kgmod.entity_embeddings(config, dataset)
    assert emb.shape == (dataset.item_num, FAST_KG["kg_dim"])
    assert not linked[0] and linked[1:].all()  # every item has attributes (year, genres)


def test_rotate_gives_real_and_imaginary_parts(data_root: Path) -> None:
    config, dataset = recbole_dataset(data_root, "tiny-attr", kg_model="RotatE", kg_epochs=1, kg_dim=8)
    emb, linked = kgmod.entity_embeddings(config, dataset)
    assert emb.shape == (dataset.item_num, 16) and linked[1:].all()


def test_same_seed_same_scores_cache_miss_or_hit(data_root: Path) -> None:
    """PyKEEN seeds the global RNGs; a cache miss must not change RecBole's model initialisation."""
    from recbole.data.interaction import Interaction
    from recbole.utils import init_seed

    config, dataset = recbole_dataset(data_root, "tiny-kg", kg_lr=0.02)  # a fresh KG key: first build trains
    users = Interaction({config["USER_ID_FIELD"]: torch.arange(1, 4)})
    scores = []
    for _ in range(2):
        init_seed(config["seed"], True)
        model = kgmod.KGTransE(config, dataset)
        model.eval()
        with torch.no_grad():
            scores.append(model.full_sort_predict(users))
    assert scores[0].shape == (3 * dataset.item_num,)
    assert torch.equal(scores[0], scores[1])


def test_search_space_gives_valid_config() -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0)).ask()
    params = kgmod.search_space(trial)
    fields = kgmod.KGConfig.model_fields
    kgmod.KGConfig(**{k: v for k, v in params.items() if k in fields})
    assert set(params) - set(fields) <= {"learning_rate"}


def test_cell_runs_through_recbole(data_root: Path) -> None:
    prepared = PreparedDataset("tiny-kg", data_root, "sha256:test-tiny-kg", DatasetFeatures(TEXT_FIELDS, True))
    rec = run_cell(CellSpec(dataset="tiny-kg", model="KG-TransE", epochs=2, overrides=FAST_KG),
                   prepared=prepared, command="test")
    assert rec.status == "ok", rec.reason
    assert rec.family == "kg" and rec.epochs_run == 2
    ndcg = rec.test["ndcg@10"]
    assert math.isfinite(ndcg) and ndcg > 0


def test_cell_skips_dataset_without_kg(data_root: Path) -> None:
    prepared = PreparedDataset("tiny-attr", data_root, "sha256:x", DatasetFeatures(TEXT_FIELDS, False))
    rec = run_cell(CellSpec(dataset="tiny-attr", model="KG-TransE"), prepared=prepared, command="test")
    assert rec.status == "skipped" and "kg" in (rec.reason or "")


def test_plugin_declaration() -> None:
    plugin = registry.plugins()["KG-TransE"]
    assert plugin is kgmod.plugin and plugin.family == "kg" and plugin.needs == {"inter", "kg"}
    assert plugin.model_cls.__doc__ and "CKE" in plugin.model_cls.__doc__ and "TransE" in plugin.model_cls.__doc__
