"""Artifacts: a finished cell's trained model is saved beside its record and loads back exactly."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from m6rec_bench import artifacts
from m6rec_bench.engine.cell import CellSpec, run_cell
from m6rec_bench.errors import DataError, UsageError
from m6rec_bench.evaluation import per_user_metrics
from m6rec_bench.io import sweep_stale_parts
from m6rec_bench.results.store import RecordStore


@pytest.fixture(scope="module")
def trained(ml100k_slice, tmp_path_factory):
    """BPR and ItemKNN (a sparse other_parameter) trained on the slice, with their artifacts."""
    store = RecordStore(tmp_path_factory.mktemp("runs"))
    out = {}
    for model in ("BPR", "ItemKNN"):
        rec = run_cell(CellSpec(dataset=str(ml100k_slice.folder), model=model, epochs=3), store=store,
                       resume=False, prepared=ml100k_slice)
        assert rec.status == "ok", rec.reason
        out[model] = (store.path_for(rec), rec)
    return out


@pytest.mark.parametrize("model", ["BPR", "ItemKNN"])
def test_reloaded_model_scores_exactly_like_the_trained_one(trained, ml100k_slice, model):
    path, rec = trained[model]
    folder = artifacts.folder_for(path)
    assert rec.artifact == folder.name and folder.is_dir()
    assert sorted(p.name for p in folder.iterdir()) == sorted([artifacts.WEIGHTS, artifacts.EXTRA, artifacts.META])
    loaded = artifacts.load(path, prepared=ml100k_slice)
    # the cut-offs (10, 20) of the evaluation pass the record's per-user values come from
    pu = per_user_metrics(loaded.model, loaded.test_data, metrics=("NDCG", "Recall"), topk=(10, 20))
    tokens = loaded.dataset.field2id_token[loaded.dataset.uid_field]
    assert [str(tokens[u]) for u in pu.user_ids] == rec.per_user["users"]
    np.testing.assert_allclose(np.round(pu.values["ndcg@10"], 6), rec.per_user["ndcg@10"], atol=1e-6)
    assert loaded.items == artifacts.id_tokens(loaded.dataset, loaded.dataset.iid_field)


def test_artifact_files_need_no_pickle(trained):
    from safetensors.torch import load_file

    folder = artifacts.folder_for(trained["ItemKNN"][0])
    meta = json.loads((folder / artifacts.META).read_text())
    assert meta["extra_kinds"]["w"] == "csr"
    with np.load(folder / artifacts.EXTRA, allow_pickle=False) as npz:  # raises if anything is pickled
        assert {"w.data", "w.indices", "w.indptr", "w.shape"} <= set(npz.files)
    assert load_file(str(artifacts.folder_for(trained["BPR"][0]) / artifacts.WEIGHTS))


def test_train_history_is_the_training_split(trained, ml100k_slice):
    loaded = artifacts.load(trained["BPR"][0], prepared=ml100k_slice)
    history = loaded.train_history()
    train = loaded.train_data._dataset.inter_feat
    u = int(train[loaded.dataset.uid_field][0])
    expected = sorted(int(i) for uu, i in zip(train[loaded.dataset.uid_field].tolist(),
                                              train[loaded.dataset.iid_field].tolist()) if uu == u)
    assert sorted(history[u].tolist()) == expected


def test_record_without_artifact_says_what_to_do(ml100k_slice, tmp_path):
    store = RecordStore(tmp_path)
    rec = run_cell(CellSpec(dataset=str(ml100k_slice.folder), model="Pop"), store=store, resume=False,
                   prepared=ml100k_slice, save_artifact=False)
    assert rec.artifact is None
    with pytest.raises(UsageError, match="has no artifact.*--no-resume"):
        artifacts.load(store.path_for(rec), prepared=ml100k_slice)
    with pytest.raises(UsageError, match="not a readable m6rec-bench record"):
        artifacts.load(tmp_path / "nothing.json")
    with pytest.raises(UsageError, match="no trained 'BPR'.*m6bench run"):
        artifacts.find_record(tmp_path, rec.dataset, "BPR")


def test_mismatched_ids_are_refused(trained, ml100k_slice, tmp_path):
    import shutil

    path, _ = trained["BPR"]
    copy = tmp_path / path.name
    shutil.copy(path, copy)
    shutil.copytree(artifacts.folder_for(path), artifacts.folder_for(copy))
    meta_path = artifacts.folder_for(copy) / artifacts.META
    meta = json.loads(meta_path.read_text())
    meta["items"] = meta["items"][:1] + list(reversed(meta["items"][1:]))
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(DataError, match="ids differ"):
        artifacts.load(copy, prepared=ml100k_slice)


def test_half_written_artifact_folder_is_swept(tmp_path):
    """A folder left by a killed writer goes; one being written right now stays and lands whole."""
    from m6rec_bench.io import atomic_dir

    dead_pid = 2**22 + 12345
    try:
        os.kill(dead_pid, 0)
        pytest.skip("the made-up writer pid exists on this machine")
    except ProcessLookupError:
        pass
    board = tmp_path / "ml-100k" / "default" / "BPR"
    dead = board / f".seed2020-abc.artifact.{dead_pid}.x1y2.part"
    dead.mkdir(parents=True)
    (dead / "model.safetensors").write_bytes(b"half")
    with atomic_dir(board / "seed2021-abc.artifact") as live:
        (live / "meta.json").write_text("{}")
        assert sweep_stale_parts(tmp_path) == [dead]
        assert live.is_dir()
    assert not dead.exists() and (board / "seed2021-abc.artifact" / "meta.json").is_file()
