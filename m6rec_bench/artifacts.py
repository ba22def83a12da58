"""Artifacts: the trained weights, config and id mappings of one cell, loadable without its run.

A cell that finishes ``ok`` leaves, beside its record ``seed<seed>-<cell_id>.json``, a folder
``seed<seed>-<cell_id>.artifact/`` holding

* ``model.safetensors`` — the model's ``state_dict`` (safetensors: no pickle, nothing runs on load);
* ``extra.npz`` — RecBole's ``other_parameter()`` (e.g. ItemKNN's sparse similarity matrix, Pop's
  counts), as plain arrays read back with ``allow_pickle=False``;
* ``meta.json`` — format version, cell id, model, dataset and checksum, protocol, seed, the settings
  the cell was given, the external user and item ids in internal-id order, and file sizes.

The folder is written under a temporary name and renamed into place, so a reader never sees half
an artifact. :func:`load` rebuilds the cell's RecBole objects from the record (the seeded split and
model construction of :func:`m6rec_bench.training.build`, no training), checks the id mappings
against the saved ones and loads the weights: ``explain``, ``serve`` and ``--compress`` all read
trained models this way.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from m6rec_bench import compat
from m6rec_bench.errors import DataError, UsageError
from m6rec_bench.io import atomic_dir
from m6rec_bench.results.record import Record
from m6rec_bench.results.store import load_record, read_record
from m6rec_bench.untrusted import UntrustedInputError, loads_json

FORMAT_VERSION = 1
SUFFIX = ".artifact"
WEIGHTS, EXTRA, META = "model.safetensors", "extra.npz", "meta.json"


def folder_for(record_path: str | os.PathLike[str]) -> Path:
    """The artifact folder that belongs to a record file."""
    path = Path(record_path)
    return path.with_name(path.name.removesuffix(".json") + SUFFIX)


# ------------------------------------------------------------------ saving


def _state_tensors(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """``state_dict`` as dense, contiguous, unshared CPU tensors (what safetensors accepts)."""
    out: dict[str, torch.Tensor] = {}
    for name, tensor in model.state_dict().items():
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(f"state_dict entry {name!r} is a {type(tensor).__name__}, not a tensor")
        t = tensor.detach().cpu()
        if t.layout != torch.strided:
            t = t.to_dense()
        out[name] = t.contiguous().clone()
    return out


def _extra_arrays(model: Any) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """RecBole's ``other_parameter()`` as arrays plus a ``name -> kind`` table to rebuild them."""
    import scipy.sparse as sp

    params = model.other_parameter() if hasattr(model, "other_parameter") else None
    arrays: dict[str, np.ndarray] = {}
    kinds: dict[str, str] = {}
    for name, value in (params or {}).items():
        if value is None:
            kinds[name] = "none"
        elif isinstance(value, torch.Tensor):
            kinds[name] = "tensor"
            arrays[name] = value.detach().cpu().to_dense().numpy() if value.layout != torch.strided else value.detach().cpu().numpy()
        elif sp.issparse(value):
            csr = sp.csr_matrix(value)
            kinds[name] = "csr"
            arrays[f"{name}.data"], arrays[f"{name}.indices"], arrays[f"{name}.indptr"] = csr.data, csr.indices, csr.indptr
            arrays[f"{name}.shape"] = np.asarray(csr.shape, dtype=np.int64)
        elif isinstance(value, np.ndarray | int | float | np.number):
            kinds[name] = "array"
            arrays[name] = np.asarray(value)
        else:
            raise TypeError(f"other_parameter {name!r} is a {type(value).__name__}; artifacts store tensors and arrays")
    return arrays, kinds


def id_tokens(dataset: Any, field: str) -> list[str]:
    """External ids of a RecBole id field, indexed by internal id (index 0 is RecBole's padding)."""
    return [str(t) for t in dataset.field2id_token[field]]


def save(run: Any, record: Record, folder: str | os.PathLike[str]) -> Path:
    """Write the artifact of a finished cell (``CellRun``) atomically into ``folder``; return it."""
    from safetensors.torch import save_file

    target = Path(folder)
    with atomic_dir(target) as tmp:
        save_file(_state_tensors(run.model), str(tmp / WEIGHTS), metadata={"cell_id": record.cell_id})
        arrays, kinds = _extra_arrays(run.model)
        np.savez(tmp / EXTRA, **arrays)
        dataset = run.dataset
        meta = {
            "format": FORMAT_VERSION, "cell_id": record.cell_id, "model": record.model, "label": record.label,
            "dataset": record.dataset, "dataset_checksum": record.dataset_checksum, "protocol": record.protocol,
            "seed": record.seed, "config": record.config, "extra_kinds": kinds,
            "user_field": dataset.uid_field, "item_field": dataset.iid_field,
            "users": id_tokens(dataset, dataset.uid_field), "items": id_tokens(dataset, dataset.iid_field),
            "n_params": record.n_params,
            "bytes": {WEIGHTS: (tmp / WEIGHTS).stat().st_size, EXTRA: (tmp / EXTRA).stat().st_size},
        }
        (tmp / META).write_text(json.dumps(meta) + "\n")
    return target


# ------------------------------------------------------------------ loading


@dataclass
class Loaded:
    """A trained model rebuilt from its artifact, with the RecBole objects of its cell."""

    record: Record
    record_path: Path
    folder: Path
    meta: dict[str, Any]
    model: Any
    config: Any
    dataset: Any
    train_data: Any
    valid_data: Any
    test_data: Any

    @property
    def users(self) -> list[str]:
        return self.meta["users"]

    @property
    def items(self) -> list[str]:
        return self.meta["items"]

    def user_id(self, token: str) -> int:
        """Internal id of an external user id; UsageError when the model has never seen the user."""
        uid = self.dataset.field2token_id[self.dataset.uid_field].get(str(token))
        if uid is None or uid == 0:
            raise UsageError(f"user '{token}' is not in {self.record.dataset}'s training data of this model")
        return int(uid)

    def item_id(self, token: str) -> int:
        """Internal id of an external item id; UsageError when the item is unknown."""
        iid = self.dataset.field2token_id[self.dataset.iid_field].get(str(token))
        if iid is None or iid == 0:
            raise UsageError(f"item '{token}' is not in {self.record.dataset}'s item list")
        return int(iid)

    def train_history(self) -> list[np.ndarray]:
        """Internal item ids of every user's training interactions, indexed by internal user id."""
        train = compat.loader_dataset(self.train_data)
        users = train.inter_feat[train.uid_field].numpy()
        items = train.inter_feat[train.iid_field].numpy()
        order = np.argsort(users, kind="stable")
        bounds = np.searchsorted(users[order], np.arange(self.dataset.user_num + 1))
        return [items[order[bounds[u]:bounds[u + 1]]] for u in range(self.dataset.user_num)]


def resolve_record(ref: str | os.PathLike[str]) -> tuple[Path, Record]:
    """A record path (or its artifact folder) → ``(record path, Record)``; UsageError when unusable."""
    path = Path(ref)
    if path.name.endswith(SUFFIX):
        path = path.with_name(path.name.removesuffix(SUFFIX) + ".json")
    try:
        record = read_record(path)
    except UsageError as exc:
        raise UsageError(f"{exc} (give a runs/<dataset>/<protocol>/<model>/seed*.json file)") from None
    if record.status != "ok":
        raise UsageError(f"{path} is a {record.status} cell ({record.reason}); it has no trained model")
    return path, record


def find_record(runs_dir: str | os.PathLike[str], dataset: str, model: str, *, protocol: str = "default",
                seed: int | None = None) -> Path:
    """The newest ``ok`` record with an artifact for (dataset, protocol, model[, seed]) in a runs dir."""
    from m6rec_bench.results.store import RecordStore

    from m6rec_bench.names import check_slug

    store = RecordStore(runs_dir)
    best: tuple[str, Path] | None = None
    check_slug(dataset, "--dataset")  # a folder of the runs dir, never ../…
    check_slug(protocol, "--protocol")
    for path in sorted(Path(runs_dir).glob(f"{dataset}/{protocol}/*/seed*.json")):
        rec = load_record(path)
        if rec is None or rec.status != "ok" or (rec.label or rec.model).lower() != model.lower():
            continue
        if seed is not None and rec.seed != seed:
            continue
        if folder_for(path).is_dir() and (best is None or rec.created_at > best[0]):
            best = (rec.created_at, path)
    if best is None:
        seeds = "" if seed is None else f" seed {seed}"
        raise UsageError(
            f"no trained '{model}'{seeds} on {dataset}/{protocol} with an artifact under {store.root} — train one with "
            f"`m6bench run --dataset {dataset} --protocol {protocol} --models {model}` (or give a record path)")
    return best[1]


def _damaged(folder: Path, what: str) -> DataError:
    return DataError(f"artifact {folder} is damaged: {what} — retrain the cell (m6bench run … --no-resume) "
                     "or restore the folder from where it came")


def _read_meta(folder: Path) -> dict[str, Any]:
    """``meta.json`` of an artifact, checked for the fields loading relies on (DataError naming it)."""
    path = folder / META
    try:
        meta = loads_json(path.read_bytes())
    except UntrustedInputError as exc:
        raise _damaged(folder, f"{META} is {exc}") from None
    lists = ("users", "items")
    if not isinstance(meta, dict) or any(not isinstance(meta.get(k), list) for k in lists) \
            or not isinstance(meta.get("extra_kinds", {}), dict) or not isinstance(meta.get("bytes", {}), dict):
        raise _damaged(folder, f"{META} lacks the users/items/extra_kinds/bytes an artifact has")
    for name, size in meta.get("bytes", {}).items():
        path = folder / str(name)
        if name in (WEIGHTS, EXTRA) and path.is_file() and path.stat().st_size != size:
            raise _damaged(folder, f"{name} is {path.stat().st_size:,} bytes, {META} says {size:,}")
    return meta


def _load_weights(model: Any, folder: Path, meta: dict[str, Any], *, device: str) -> None:
    """Load the safetensors weights and extra arrays into ``model``; DataError when they do not fit it."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        state = load_file(str(folder / WEIGHTS), device=device)
    except (SafetensorError, OSError, ValueError) as exc:
        raise _damaged(folder, f"{WEIGHTS} cannot be read ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:  # missing/unexpected keys, size mismatch: not this model's weights
        first = next((ln.strip() for ln in str(exc).splitlines()[1:] if ln.strip()), str(exc).splitlines()[0])
        raise _damaged(folder, f"{WEIGHTS} does not fit the model ({first.rstrip('.')})") from None
    if meta.get("extra_kinds"):
        try:
            extra = _load_extra(folder, meta["extra_kinds"])
        except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile) as exc:
            raise _damaged(folder, f"{EXTRA} cannot be read ({type(exc).__name__}: {str(exc)[:120]})") from None
        model.load_other_parameter(extra)


def _load_extra(folder: Path, kinds: dict[str, str]) -> dict[str, Any]:
    import scipy.sparse as sp

    out: dict[str, Any] = {}
    with np.load(folder / EXTRA, allow_pickle=False) as npz:
        for name, kind in kinds.items():
            if kind == "none":
                out[name] = None
            elif kind == "tensor":
                out[name] = torch.from_numpy(np.array(npz[name]))
            elif kind == "csr":
                shape = tuple(int(v) for v in npz[f"{name}.shape"])
                out[name] = sp.csr_matrix((npz[f"{name}.data"], npz[f"{name}.indices"], npz[f"{name}.indptr"]), shape=shape)
            else:
                out[name] = np.array(npz[name])
    return out


def load(ref: str | os.PathLike[str], *, device: str = "cpu", prepared: Any = None) -> Loaded:
    """Rebuild the trained model of a record (path to its JSON or its artifact folder).

    The dataset is resolved as the cell named it (registry name or folder) unless ``prepared`` (a
    :class:`~m6rec_bench.datasets.base.PreparedDataset`) is given; its checksum must match.

    A record is outside input: its ``spec`` is checked like any cell's, the RecBole config is rebuilt
    from that spec, and a record whose stored ``config`` differs is refused
    (:mod:`m6rec_bench.config_keys`) — so no key of a record reaches RecBole unchecked.
    """
    from m6rec_bench import datasets
    from m6rec_bench.config_keys import check_record_config
    from m6rec_bench.resolve import check_record_spec, resolve
    from m6rec_bench.training import build

    record_path, record = resolve_record(ref)
    folder = folder_for(record_path)
    if not (folder / META).is_file():
        raise UsageError(f"{record_path} has no artifact ({folder.name}/) — it was trained before artifacts existed or "
                         "in a worker without the runs folder; rerun the cell with --no-resume")
    meta = _read_meta(folder)
    if meta.get("format") != FORMAT_VERSION or meta.get("cell_id") != record.cell_id:
        raise DataError(f"{folder} does not belong to {record_path.name} (format {meta.get('format')}, cell {meta.get('cell_id')})")
    spec = check_record_spec(record, record_path)  # the record's spec is an outside cell like any other
    ds = prepared or datasets.resolve(spec.dataset)
    if ds.checksum != record.dataset_checksum:
        raise DataError(f"dataset {record.dataset} has changed since this model was trained (checksum {ds.checksum}, "
                        f"trained on {record.dataset_checksum}); retrain it")
    # resolved like any cell (its device was checked above, on the CPU: a GPU-trained model loads without one)
    cell = resolve(spec, prepared=ds, check_device=False)
    if cell.split is None:
        raise UsageError(f"{record_path}: dataset {ds.name} has no {', '.join(sorted(cell.missing))}, which "
                         f"{cell.entry.name} needs — it cannot have trained this model; was the record edited?")
    check_record_config(record_path, record.config, cell.config)  # the stored config is never used as given
    config_dict = {**cell.config, "use_gpu": device == "cuda"}
    with tempfile.TemporaryDirectory(prefix="m6bench-load-") as ckpt:
        built = build(cell.entry, cell.split, config_dict, ckpt)
    for field, key in ((built.dataset.uid_field, "users"), (built.dataset.iid_field, "items")):
        if id_tokens(built.dataset, field) != meta[key]:
            raise DataError(f"{folder}: the rebuilt dataset's {key} ids differ from the trained model's; retrain it")
    _load_weights(built.model, folder, meta, device=str(built.config["device"]))
    built.model.eval()
    return Loaded(record=record, record_path=record_path, folder=folder, meta=meta, model=built.model,
                  config=built.config, dataset=built.dataset, train_data=built.train_data,
                  valid_data=built.valid_data, test_data=built.test_data)


def size_bytes(folder: str | os.PathLike[str]) -> int:
    """Bytes of an artifact's weight files (what a deployment would ship)."""
    meta = _read_meta(Path(folder))
    return int(sum(meta["bytes"].values()))
