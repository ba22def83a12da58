"""A cell interrupted mid-training resumes from its last finished epoch, bit-identical on CPU.

Each test runs a cell uninterrupted (record A), then the same cell in a fresh store, interrupted
(``KeyboardInterrupt`` from ``on_epoch``, or raised inside the next epoch's training as a kill
would), then again (record B): B must equal A exactly and the second run must train only the
epochs after the checkpoint (:mod:`m6rec_bench.engine.checkpoint`). The cells here train for
well under a second, so the tests save after every epoch (``M6BENCH_CHECKPOINT_EVERY=0``) except
those of the interval itself.
"""

from __future__ import annotations

import json
import logging
import pickle
from pathlib import Path

import numpy as np
import pytest

from m6rec_bench.engine import checkpoint
from m6rec_bench.engine.cell import CellSpec, run_cell
from m6rec_bench.results import RecordStore
from m6rec_bench.results.record import Record

_uninterrupted: dict[str, Record] = {}


@pytest.fixture(autouse=True)
def _every_epoch(monkeypatch):
    monkeypatch.setenv(checkpoint.EVERY_ENV, "0")


def _run(spec: CellSpec, store: RecordStore, ds, on_epoch=None) -> Record:
    return run_cell(spec, store=store, prepared=ds, on_epoch=on_epoch, command="t", save_artifact=False)


def _baseline(spec: CellSpec, ds, tmp_path_factory: pytest.TempPathFactory) -> Record:
    """Record A of ``spec``: an uninterrupted run (computed once per module)."""
    key = spec.model_dump_json()
    if key not in _uninterrupted:
        rec = _run(spec, RecordStore(tmp_path_factory.mktemp("uninterrupted")), ds)
        assert rec.status == "ok", rec.reason
        _uninterrupted[key] = rec
    return _uninterrupted[key]


def _interrupt_after(k: int, store: RecordStore, saved: list[int]):
    """An ``on_epoch`` that raises KeyboardInterrupt after epoch ``k``, noting the epoch on disk then."""

    def on_epoch(epoch: int, _score: float) -> None:
        if epoch == k:
            state = next(store.root.glob(f"{checkpoint.INPROGRESS}/*/{checkpoint.STATE}"))
            saved.append(json.loads(state.read_text())["epoch"])
            raise KeyboardInterrupt

    return on_epoch


def _assert_same(a: Record, b: Record) -> None:
    assert b.status == "ok", b.reason
    assert b.valid == a.valid and b.test == a.test  # exact, not approx
    assert b.best_epoch == a.best_epoch and b.epochs_run == a.epochs_run
    assert b.per_user == a.per_user and b.extra_metrics == a.extra_metrics


def _interrupted_then_resumed(spec: CellSpec, ds, tmp_path: Path, k: int) -> tuple[Record, list[int], RecordStore]:
    store, saved, seen = RecordStore(tmp_path / "runs"), [], []
    with pytest.raises(KeyboardInterrupt):
        _run(spec, store, ds, on_epoch=_interrupt_after(k, store, saved))
    assert saved == [k]  # the checkpoint of epoch k was on disk when on_epoch ran
    rec = _run(spec, store, ds, on_epoch=lambda e, s: seen.append(e))
    return rec, seen, store


@pytest.mark.parametrize("model", ["BPR", "LightGCN", "GNN-LightGCN"])
def test_an_interrupted_cell_resumes_after_its_last_epoch_bit_identically(model, ml100k_slice, tmp_path, tmp_path_factory):
    spec = CellSpec(dataset=ml100k_slice.name, model=model, epochs=5)
    a = _baseline(spec, ml100k_slice, tmp_path_factory)
    b, seen, store = _interrupted_then_resumed(spec, ml100k_slice, tmp_path, k=1)
    assert seen == [2, 3, 4]  # epochs 0 and 1 were not trained again
    _assert_same(a, b)
    assert not (store.root / checkpoint.INPROGRESS / b.cell_id).exists()  # removed once the record is written
    assert store.find(b.cell_id) is not None


def test_a_cell_interrupted_after_its_last_epoch_only_evaluates(ml100k_slice, tmp_path, tmp_path_factory):
    spec = CellSpec(dataset=ml100k_slice.name, model="BPR", epochs=5)
    a = _baseline(spec, ml100k_slice, tmp_path_factory)
    b, seen, _ = _interrupted_then_resumed(spec, ml100k_slice, tmp_path, k=4)
    assert seen == []  # training had finished: the best weights kept in the checkpoint are tested
    _assert_same(a, b)


@pytest.mark.parametrize(("k", "resumed"), [(2, [3]), (3, [])])
def test_early_stopping_continues_from_its_saved_counters(k, resumed, ml100k_slice, tmp_path, tmp_path_factory):
    # lr 0.05 and stopping_step 0 stop this cell after epoch 3 (best epoch 2) of 10
    spec = CellSpec(dataset=ml100k_slice.name, model="BPR", epochs=10, overrides={"stopping_step": 0, "learning_rate": 0.05})
    a = _baseline(spec, ml100k_slice, tmp_path_factory)
    assert a.epochs_run == 4 and a.best_epoch == 2
    b, seen, _ = _interrupted_then_resumed(spec, ml100k_slice, tmp_path, k=k)
    assert seen == resumed  # interrupted at the stopping epoch: the early stop holds, nothing is trained
    _assert_same(a, b)


def test_a_kill_inside_an_epoch_without_validation_resumes_from_the_epoch_before(ml100k_slice, tmp_path, tmp_path_factory, monkeypatch):
    from recbole.trainer import Trainer

    spec = CellSpec(dataset=ml100k_slice.name, model="BPR", epochs=6, overrides={"eval_step": 2})
    a = _baseline(spec, ml100k_slice, tmp_path_factory)
    original = Trainer._train_epoch

    def killed_in_epoch_3(self, train_data, epoch_idx, *args, **kwargs):
        if epoch_idx == 3:
            raise KeyboardInterrupt  # as if killed while training epoch 3 (epoch 2 has no validation)
        return original(self, train_data, epoch_idx, *args, **kwargs)

    store, seen, started = RecordStore(tmp_path / "runs"), [], []
    with monkeypatch.context() as m:
        m.setattr(Trainer, "_train_epoch", killed_in_epoch_3)
        with pytest.raises(KeyboardInterrupt):
            _run(spec, store, ml100k_slice)

    def counting(self, train_data, epoch_idx, *args, **kwargs):
        started.append(epoch_idx)
        return original(self, train_data, epoch_idx, *args, **kwargs)

    monkeypatch.setattr(Trainer, "_train_epoch", counting)
    b = _run(spec, store, ml100k_slice, on_epoch=lambda e, s: seen.append(e))
    assert started == [3, 4, 5] and seen == [3, 5]
    _assert_same(a, b)


def test_resuming_never_unpickles(ml100k_slice, tmp_path, tmp_path_factory, monkeypatch):
    import torch

    spec = CellSpec(dataset=ml100k_slice.name, model="BPR", epochs=5)
    a = _baseline(spec, ml100k_slice, tmp_path_factory)
    store, saved, seen = RecordStore(tmp_path / "runs"), [], []
    with pytest.raises(KeyboardInterrupt):
        _run(spec, store, ml100k_slice, on_epoch=_interrupt_after(2, store, saved))

    def refuse(*_a, **_k):
        raise AssertionError("a checkpoint was unpickled")

    for target, name in ((pickle, "load"), (pickle, "loads"), (torch, "load")):
        monkeypatch.setattr(target, name, refuse)
    b = _run(spec, store, ml100k_slice, on_epoch=lambda e, s: seen.append(e))
    assert seen == [3, 4]
    _assert_same(a, b)


def test_a_truncated_checkpoint_is_ignored_with_a_warning(ml100k_slice, tmp_path, tmp_path_factory, caplog):
    spec = CellSpec(dataset=ml100k_slice.name, model="BPR", epochs=5)
    a = _baseline(spec, ml100k_slice, tmp_path_factory)
    store, saved, seen = RecordStore(tmp_path / "runs"), [], []
    with pytest.raises(KeyboardInterrupt):
        _run(spec, store, ml100k_slice, on_epoch=_interrupt_after(2, store, saved))
    tensors = next(store.root.glob(f"{checkpoint.INPROGRESS}/*/epoch-2.safetensors"))
    tensors.write_bytes(tensors.read_bytes()[: tensors.stat().st_size // 2])
    with caplog.at_level(logging.WARNING, logger=checkpoint.__name__):
        b = _run(spec, store, ml100k_slice, on_epoch=lambda e, s: seen.append(e))
    assert seen == [0, 1, 2, 3, 4]  # started over
    assert "ignoring its checkpoint" in caplog.text and "epoch-2.safetensors" in caplog.text
    _assert_same(a, b)


def test_a_checkpoint_of_another_shape_is_rolled_back_and_training_starts_over(ml100k_slice, tmp_path, tmp_path_factory, caplog):
    spec = CellSpec(dataset=ml100k_slice.name, model="BPR", epochs=5)
    a = _baseline(spec, ml100k_slice, tmp_path_factory)
    store, saved, seen = RecordStore(tmp_path / "runs"), [], []
    with pytest.raises(KeyboardInterrupt):
        _run(spec, store, ml100k_slice, on_epoch=_interrupt_after(2, store, saved))
    # a well-formed checkpoint whose optimizer state does not fit (applied after the weights)
    folder = next(store.root.glob(f"{checkpoint.INPROGRESS}/*"))
    state = json.loads((folder / checkpoint.STATE).read_text())
    state["stateful"] = {"$dict": []}
    (folder / checkpoint.STATE).write_text(json.dumps(state))
    with caplog.at_level(logging.WARNING, logger=checkpoint.__name__):
        b = _run(spec, store, ml100k_slice, on_epoch=lambda e, s: seen.append(e))
    assert "does not fit the model" in caplog.text
    assert seen == [0, 1, 2, 3, 4]
    _assert_same(a, b)  # the weights it had already loaded were put back to the fresh ones


def test_a_cell_interrupted_before_its_first_checkpoint_is_due_starts_over(ml100k_slice, tmp_path, tmp_path_factory,
                                                                          monkeypatch):
    spec = CellSpec(dataset=ml100k_slice.name, model="BPR", epochs=5)
    a = _baseline(spec, ml100k_slice, tmp_path_factory)
    monkeypatch.setenv(checkpoint.EVERY_ENV, "3600")  # an hour: no epoch of this cell is due
    store, seen = RecordStore(tmp_path / "runs"), []

    def interrupt(epoch: int, _score: float) -> None:
        if epoch == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _run(spec, store, ml100k_slice, on_epoch=interrupt)
    assert not list(store.root.glob(f"{checkpoint.INPROGRESS}/*/*.safetensors"))  # nothing was written
    b = _run(spec, store, ml100k_slice, on_epoch=lambda e, s: seen.append(e))
    assert seen == [0, 1, 2, 3, 4]
    _assert_same(a, b)


def test_checkpoints_follow_the_interval_in_seconds(ml100k_slice, tmp_path, monkeypatch):
    """Interval 10 s, a clock at 4 s × the epochs validated: epoch 3 (12 s) is the first save due,
    epoch 6 (24 s, 12 s after that write) the next."""
    validated: list[int] = []
    monkeypatch.setattr(checkpoint, "_now", lambda: 4.0 * len(validated))
    monkeypatch.setenv(checkpoint.EVERY_ENV, "10")
    store, written = RecordStore(tmp_path / "runs"), []
    original = checkpoint.atomic_write_json

    def noting(path, data):
        written.append(data["epoch"])
        return original(path, data)

    monkeypatch.setattr(checkpoint, "atomic_write_json", noting)
    spec = CellSpec(dataset=ml100k_slice.name, model="BPR", epochs=8)
    assert _run(spec, store, ml100k_slice, on_epoch=lambda e, s: validated.append(e)).status == "ok"
    assert validated == list(range(8)) and written == [3, 6]


@pytest.mark.parametrize("raw", ["soon", "-1", "nan"])
def test_a_checkpoint_interval_that_is_not_seconds_is_a_usage_error(raw, monkeypatch):
    from m6rec_bench.errors import UsageError

    monkeypatch.setenv(checkpoint.EVERY_ENV, raw)
    with pytest.raises(UsageError, match=checkpoint.EVERY_ENV):
        checkpoint.every_s()


def test_a_forced_rerun_discards_the_checkpoint(ml100k_slice, tmp_path):
    spec = CellSpec(dataset=ml100k_slice.name, model="BPR", epochs=3)
    store, saved, seen = RecordStore(tmp_path / "runs"), [], []
    with pytest.raises(KeyboardInterrupt):
        _run(spec, store, ml100k_slice, on_epoch=_interrupt_after(1, store, saved))
    rec = run_cell(spec, store=store, prepared=ml100k_slice, resume=False, on_epoch=lambda e, s: seen.append(e),
                   command="t", save_artifact=False)
    assert rec.status == "ok" and seen == [0, 1, 2]


def test_a_model_with_state_a_checkpoint_cannot_hold_restarts_at_epoch_0(ml100k_slice, tmp_path, monkeypatch, caplog):
    from recbole.model.general_recommender import BPR

    original = BPR.calculate_loss

    def with_a_trace(self, interaction):  # an attribute no checkpoint saves, changed by training
        self.trace = np.append(getattr(self, "trace", np.zeros(0)), 1.0)
        return original(self, interaction)

    monkeypatch.setattr(BPR, "calculate_loss", with_a_trace)
    spec = CellSpec(dataset=ml100k_slice.name, model="BPR", epochs=3)
    store, seen = RecordStore(tmp_path / "runs"), []

    def stop(epoch: int, _score: float) -> None:
        if epoch == 1:
            raise KeyboardInterrupt

    with caplog.at_level(logging.WARNING, logger=checkpoint.__name__), pytest.raises(KeyboardInterrupt):
        _run(spec, store, ml100k_slice, on_epoch=stop)
    assert "no mid-cell checkpoint" in caplog.text and "trace" in caplog.text and "restarts at epoch 0" in caplog.text
    assert not list(store.root.glob(f"{checkpoint.INPROGRESS}/*"))
    rec = _run(spec, store, ml100k_slice, on_epoch=lambda e, s: seen.append(e))
    assert rec.status == "ok" and seen == [0, 1, 2]


def test_a_checkpoint_that_cannot_be_written_does_not_fail_the_cell(ml100k_slice, tmp_path, monkeypatch, caplog):
    def disk_full(*_a, **_k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint, "atomic_write_bytes", disk_full)
    spec = CellSpec(dataset=ml100k_slice.name, model="BPR", epochs=2)
    with caplog.at_level(logging.WARNING, logger=checkpoint.__name__):
        rec = _run(spec, RecordStore(tmp_path / "runs"), ml100k_slice)
    assert rec.status == "ok", rec.reason
    assert "No space left on device" in caplog.text and caplog.text.count("no mid-cell checkpoint") == 1


def test_nested_state_round_trips_through_safetensors_and_json():
    import torch

    value = {"state": {0: {"step": torch.tensor(3.0), "exp_avg": torch.arange(4.0)}},
             "param_groups": [{"lr": 1e-3, "betas": (0.9, 0.999), "params": [0], "foreach": None}],
             "key": np.arange(5, dtype=np.uint32)}
    tensors: dict = {}
    encoded = json.loads(json.dumps(checkpoint._encode(value, "optim", tensors)))
    back = checkpoint._decode(encoded, tensors)
    assert list(back["state"]) == [0] and back["param_groups"][0]["betas"] == (0.9, 0.999)
    assert torch.equal(back["state"][0]["exp_avg"], value["state"][0]["exp_avg"])
    assert back["key"].dtype == np.uint32 and back["key"].tolist() == [0, 1, 2, 3, 4]
    with pytest.raises(checkpoint.Unsupported):
        checkpoint._encode({"f": object()}, "x", {})
