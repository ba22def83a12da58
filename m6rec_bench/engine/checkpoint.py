"""Mid-cell checkpoints: a cell interrupted mid-training resumes from its last finished epoch.

Without them a cell killed in its 27th epoch (Ctrl-C, ``kill -9``, a lost worker) trains again
from epoch 0 on the next run of the same command. :class:`EpochCheckpoints` hooks into RecBole's
``Trainer.fit`` (no copy of its loop): after a finished epoch — the first one that ends
:data:`DEFAULT_EVERY_S` seconds (``M6BENCH_CHECKPOINT_EVERY``) or more after the last save, or every
epoch with ``M6BENCH_CHECKPOINT_EVERY=0`` — it writes everything the rest of the loop reads, and a
later run of the same cell id puts it all back and sets ``trainer.start_epoch``, so the
continuation is the uninterrupted run, bit for bit on CPU:

- the model's ``state_dict``, its ``other_parameter()`` (RecBole's non-parameter state, e.g.
  LightGCN's cached embeddings) and every plain scalar attribute of every submodule (e.g.
  MultiVAE's annealing counter ``update``);
- every optimizer (and LR scheduler) the trainer holds, e.g. RecVAE's encoder and decoder Adams;
- the early-stopping state: ``cur_step``, ``best_valid_score``, ``best_valid_result``,
  ``train_loss_dict``, and the best weights kept in memory by :func:`m6rec_bench.compat.keep_best_in_memory`;
- every random state the epoch loop draws from: torch's (CPU and CUDA), numpy's legacy global
  state (RecBole's negative samplers), Python's ``random``, and every RNG object held by the
  dataloaders, their samplers, the model or the trainer (RecBole shuffles with a per-loader
  ``torch.Generator``).

What cannot be captured is never guessed: a trainer with its own ``fit`` loop (NCL, S3Rec, RaCT,
the decision-tree trainers), a sparse parameter, an attribute of a type we cannot encode, or any
other model attribute (a sparse adjacency, a numpy array, an object) that *changed* since the model
was built (a model that rewrites such an attribute each epoch) switches checkpoints off for that cell with one warning,
and an interrupted run restarts at epoch 0 as before — never a wrong continuation. A model declares
the attributes that are mere caches of its parameters (rebuilt on demand) in a class attribute
``cache_attributes`` (:data:`CACHE_ATTRIBUTES`); those are neither saved nor compared.

Format (one folder per cell, ``<runs>/.inprogress/<cell_id>/``, deleted once the cell's record is
written; safetensors + JSON only, nothing is unpickled and no code runs on load):

- ``epoch-<k>.safetensors`` — every tensor, flat, under its path: ``model/<key>``, ``best/<key>``,
  ``optim/<attr>/...``, ``rng/torch``, ``rng/<object path>`` ... (dense, CPU).
- ``state.json`` — written last, so it always names a complete tensor file: ``format``,
  ``cell_id``, ``model``, ``epoch`` (last finished epoch), ``finished`` (early-stopped or last
  epoch), ``tensors`` (file name) and its ``sha256``, ``train_time_s`` (training time so far, so a
  resumed cell's record counts the interrupted runs' epochs too), and the non-tensor state. Nested values
  (an optimizer's ``state_dict``) are encoded so they come back with their types: a tensor is
  ``{"$tensor": "<key in the safetensors file>"}``, a tuple ``{"$tuple": [...]}``, a dict
  ``{"$dict": [[key, value], ...]}`` (keys may be ints), a numpy array ``{"$ndarray": "<key>"}`` (stored as a tensor of its dtype).
  ``other_parameter()`` entries (model and best) that are unchanged since the model was built
  (ItemKNN's similarity matrix, EASE's) are left out: the rebuilt model has them.

Each file is written atomically (:mod:`m6rec_bench.io`); older tensor files are removed after the
new ``state.json`` is in place. A checkpoint that does not parse, whose tensor file is missing,
truncated or does not match its digest, or that does not fit the model is ignored with a warning:
training starts at epoch 0. Applying one is all-or-nothing (the fresh state is captured first and
put back if anything fails). A write that fails (full disk) turns checkpoints off for the cell with
a warning; the cell itself goes on.

Cost, measured on full ml-100k (1 torch thread, quiet 2-core machine, 20 epochs each): a save takes
16 ms (BPR), 29 ms (LightGCN), 34 ms (NeuMF) and 170 ms (MultiVAE: 2.3 M parameters, Adam's two
moments and the best weights) — parameters, moments, best weights, the SHA-256 of the file, the
fingerprints of the unsaved attributes — against epochs of 0.2-0.6 s (NeuMF 3 s): saved after every
epoch, checkpoints were 5-9 % of BPR's and LightGCN's training and 34 % of MultiVAE's. Hence the
interval: an interrupted cell trains again at most ~30 s (plus the epoch it was in).
On CUDA the RNG states are saved too, but a continuation is only as deterministic as the kernels
(the bit-identical guarantee is tested on CPU).
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import shutil
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from m6rec_bench.envvars import env_number
from m6rec_bench.io import atomic_write_bytes, atomic_write_json

log = logging.getLogger(__name__)

FORMAT = 1
STATE = "state.json"
#: The folder (under a runs directory) holding the checkpoints of cells that are still running.
INPROGRESS = ".inprogress"
#: Environment variable: the least seconds of training between two checkpoints of a cell (0: every epoch).
EVERY_ENV = "M6BENCH_CHECKPOINT_EVERY"
#: Its default: what an interrupted cell may have to train again, against what saving costs (see above).
DEFAULT_EVERY_S = 30.0

_SCALARS = (bool, int, float, str, type(None))
#: Attributes every ``nn.Module`` has; the module's parameters and buffers are in its state_dict.
_MODULE_INTERNALS = frozenset(vars(torch.nn.Module()))
#: Trainer fields restored explicitly (or set by us) rather than as plain scalars.
_TRAINER_FIELDS = ("cur_step", "best_valid_score", "best_valid_result", "train_loss_dict")
_RNG_TYPES = (torch.Generator, np.random.Generator, np.random.RandomState, random.Random)


#: A model (or submodule) class attribute naming its caches: values derived from its parameters that
#: it rebuilds on demand (e.g. item vectors kept for an evaluation pass, dropped by ``train()``). A
#: checkpoint neither saves nor compares them; a resumed run starts with them as built.
CACHE_ATTRIBUTES = "cache_attributes"


class Unsupported(Exception):
    """Training state that a checkpoint cannot capture (the cell then restarts at epoch 0)."""


def folder_for(runs_root: str | Path, cell_id: str) -> Path:
    """The checkpoint folder of one cell under a runs directory."""
    return Path(runs_root) / INPROGRESS / cell_id


def discard(folder: str | Path | None) -> None:
    """Remove a cell's checkpoint folder (the cell finished, or its checkpoint is of no use)."""
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)


# ------------------------------------------------------------------ encoding


def _encode(value: Any, key: str, tensors: dict[str, torch.Tensor]) -> Any:
    """``value`` as JSON, its tensors moved into ``tensors`` under ``key``-derived names."""
    if isinstance(value, torch.Tensor):
        if value.layout != torch.strided:
            raise Unsupported(f"{key} is a {value.layout} tensor")
        tensors[key] = value.detach().cpu().contiguous().clone()
        return {"$tensor": key}
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biuf" or value.dtype.byteorder == ">":
            raise Unsupported(f"{key} is a numpy array of {value.dtype}")
        tensors[key] = torch.from_numpy(np.ascontiguousarray(value).copy())
        return {"$ndarray": key}
    if isinstance(value, np.generic):
        return _encode(value.item(), key, tensors)
    if isinstance(value, _SCALARS):
        return value
    if isinstance(value, tuple):
        return {"$tuple": [_encode(v, f"{key}/{i}", tensors) for i, v in enumerate(value)]}
    if isinstance(value, list):
        return [_encode(v, f"{key}/{i}", tensors) for i, v in enumerate(value)]
    if isinstance(value, dict):
        items = []
        for k, v in value.items():
            if not isinstance(k, (str, int)) or isinstance(k, bool):
                raise Unsupported(f"{key} has a {type(k).__name__} key")
            items.append([k, _encode(v, f"{key}/{k}", tensors)])
        return {"$dict": items}
    raise Unsupported(f"{key} is a {type(value).__module__}.{type(value).__qualname__}")


def _decode(value: Any, tensors: dict[str, torch.Tensor], device: Any = None) -> Any:
    """Inverse of :func:`_encode`; tensors land on ``device`` (CPU when None)."""
    if isinstance(value, list):
        return [_decode(v, tensors, device) for v in value]
    if not isinstance(value, dict):
        return value
    if len(value) != 1:
        raise ValueError(f"not an encoded value: {sorted(value)}")
    (tag, body), = value.items()
    if tag == "$tensor":
        t = tensors[body]
        return t.to(device) if device is not None else t
    if tag == "$ndarray":
        return tensors[body].numpy().copy()
    if tag == "$tuple":
        return tuple(_decode(v, tensors, device) for v in body)
    if tag == "$dict":
        return {k: _decode(v, tensors, device) for k, v in body}
    raise ValueError(f"unknown tag {tag!r}")


# ------------------------------------------------------------------ what changed since build


def _digest(h: Any, t: torch.Tensor) -> None:
    t = t.detach().cpu()
    if t.layout == torch.sparse_coo:
        for part in (t._indices(), t._values()):
            _digest(h, part)
        return
    if t.layout in (torch.sparse_csr, torch.sparse_csc):
        t = t.to_sparse_coo()
        _digest(h, t)
        return
    h.update(f"{t.dtype}{tuple(t.shape)}".encode())
    h.update(t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())


def _fingerprint(value: Any, depth: int = 0, state: frozenset[int] = frozenset()) -> Any:
    """A value to compare an attribute by: content for arrays and tensors, identity for objects and
    for the tensors in ``state`` (ids of the model's parameters and buffers: references to them, like
    ``nn.GRU``'s ``_flat_weights``, stay valid because a checkpoint loads weights in place)."""
    import scipy.sparse as sp

    if isinstance(value, _SCALARS):
        return value
    if isinstance(value, torch.Tensor) and id(value) in state:
        return ("state", id(value))
    if isinstance(value, torch.Tensor):
        h = hashlib.sha256()
        _digest(h, value)
        return ("tensor", h.hexdigest())
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            return ("array", id(value), tuple(_fingerprint(v, depth + 1) for v in value.ravel()[:64]))
        return ("array", hashlib.sha256(np.ascontiguousarray(value).tobytes()).hexdigest(), value.shape, value.dtype.str)
    if sp.issparse(value):
        coo = value.tocoo()
        return ("sparse", _fingerprint(coo.row), _fingerprint(coo.col), _fingerprint(coo.data), coo.shape)
    if depth < 3 and isinstance(value, (list, tuple)):
        return (type(value).__name__, tuple(_fingerprint(v, depth + 1, state) for v in value))
    if depth < 3 and isinstance(value, dict):
        return ("dict", tuple((repr(k), _fingerprint(v, depth + 1, state)) for k, v in value.items()))
    return ("object", type(value).__qualname__, id(value))


# ------------------------------------------------------------------ random states


def _rng_get(obj: Any) -> Any:
    if isinstance(obj, torch.Generator):
        return obj.get_state()
    if isinstance(obj, np.random.Generator):
        return obj.bit_generator.state
    if isinstance(obj, np.random.RandomState):
        return obj.get_state(legacy=False)
    return obj.getstate()


def _rng_set(obj: Any, state: Any) -> None:
    if isinstance(obj, torch.Generator):
        obj.set_state(state)
    elif isinstance(obj, np.random.Generator):
        obj.bit_generator.state = state
    elif isinstance(obj, np.random.RandomState):
        obj.set_state(state)
    else:
        obj.setstate(_tuples(state))


def _tuples(value: Any) -> Any:
    """``random.setstate`` wants tuples where JSON gave lists."""
    return tuple(_tuples(v) for v in value) if isinstance(value, (list, tuple)) else value


def _rng_objects(roots: Iterable[tuple[str, Any]], depth: int = 2) -> dict[str, Any]:
    """RNG objects held (up to ``depth`` attributes deep) by ``roots``, by attribute path."""
    found: dict[str, Any] = {}
    seen: set[int] = set()

    def walk(path: str, obj: Any, left: int) -> None:
        if id(obj) in seen:
            return
        seen.add(id(obj))
        if isinstance(obj, _RNG_TYPES):
            found[path] = obj
            return
        if left == 0 or isinstance(obj, (torch.Tensor, np.ndarray, *_SCALARS)):
            return
        attrs = getattr(obj, "__dict__", None)
        if not isinstance(attrs, dict):
            return
        for name, value in list(attrs.items()):
            if isinstance(value, _RNG_TYPES) or (left > 1 and hasattr(value, "__dict__") and not isinstance(value, torch.nn.Module)):
                walk(f"{path}.{name}", value, left - 1)

    for path, obj in roots:
        walk(path, obj, depth)
    return found


# ------------------------------------------------------------------ the hook


def _now() -> float:
    """The clock of the checkpoint interval (a function, so that tests can move it)."""
    return time.perf_counter()


def every_s() -> float:
    """Seconds of training between two checkpoints: ``$M6BENCH_CHECKPOINT_EVERY`` or :data:`DEFAULT_EVERY_S`."""
    return env_number(EVERY_ENV, DEFAULT_EVERY_S, zero_ok=True)


class EpochCheckpoints:
    """Save a trainer's full state after finished epochs under ``folder``, at most every ``every``
    seconds (default :func:`every_s`; 0: after each epoch); resume from it.

    ``trainer`` is RecBole's (after :func:`m6rec_bench.compat.keep_best_in_memory`, whose ``best``
    dict is passed here), ``loaders`` the cell's train, valid and test dataloaders, and
    ``epochs_seen`` the list of validated epochs the caller keeps (saved and restored with it).
    Call :meth:`resume` right before ``trainer.fit`` and :meth:`save` from the fit callback (after
    each validation); epochs without a validation are saved when the next epoch starts.
    """

    def __init__(self, folder: str | Path, trainer: Any, loaders: Sequence[Any], best: dict[str, Any],
                 epochs_seen: list[int], *, cell_id: str, every: float | None = None) -> None:
        from recbole.trainer import Trainer

        self.folder, self.trainer, self.best, self.epochs_seen = Path(folder), trainer, best, epochs_seen
        self.cell_id, self.model_name = cell_id, type(trainer.model).__name__
        self.finished = False
        #: Training seconds spent before this run by the runs this one continues (0.0 when fresh).
        self.prior_train_time = 0.0
        self.every = every_s() if every is None else every
        self._t0, self._last_write = time.perf_counter(), _now()
        self._loaders = list(loaders)
        self._last_saved = -1
        self._disabled: str | None = None
        self._warned = False
        self._baseline: dict[str, Any] = {}
        self._other_baseline: dict[str, Any] = {}
        if not isinstance(trainer, Trainer) or type(trainer).fit is not Trainer.fit:
            self._disabled = f"its trainer {type(trainer).__name__} has its own fit loop"
            return
        self._baseline = self._attr_fingerprints()
        self._other_baseline = {k: _fingerprint(v) for k, v in self.trainer.model.other_parameter().items()}
        self._wrap_train_epoch()

    # -- hooks into the fit loop

    def _wrap_train_epoch(self) -> None:
        """Save epoch ``e - 1`` when epoch ``e`` starts, if no validation saved it (``eval_step`` > 1)."""
        original: Callable[..., Any] = self.trainer._train_epoch

        def _train_epoch(train_data: Any, epoch_idx: int, *args: Any, **kwargs: Any) -> Any:
            if epoch_idx - 1 > self._last_saved:
                self.save(epoch_idx - 1)
            return original(train_data, epoch_idx, *args, **kwargs)

        self.trainer._train_epoch = _train_epoch

    def save(self, epoch: int) -> None:
        """Write the state after ``epoch`` (atomically; the previous checkpoint stays valid until
        then) when :attr:`every` seconds have passed since the last write (or the start of training)."""
        self._last_saved = epoch
        if self._disabled is None and _now() - self._last_write < self.every:
            return
        if self._disabled is None:
            try:
                state, tensors = self._capture(epoch)
            except Unsupported as exc:
                self._disabled = str(exc)
        if self._disabled is not None:
            self._warn_disabled()
            return
        from safetensors.torch import save as st_save

        data = st_save(tensors)
        name = f"epoch-{epoch}.safetensors"
        elapsed = self.prior_train_time + time.perf_counter() - self._t0
        try:
            atomic_write_bytes(self.folder / name, data)
            atomic_write_json(self.folder / STATE, {**state, "tensors": name, "sha256": hashlib.sha256(data).hexdigest(),
                                                    "train_time_s": elapsed})
            for old in self.folder.glob("epoch-*.safetensors"):
                if old.name != name:
                    old.unlink(missing_ok=True)
            self._last_write = _now()
        except OSError as exc:  # a full disk must not fail the cell: it only loses the checkpoint
            self._disabled = f"writing {self.folder} failed ({exc})"
            self._warn_disabled()

    def resume(self) -> bool:
        """Put back the state of the last finished epoch, if a usable checkpoint exists.

        Sets ``trainer.start_epoch`` (to ``epochs`` when training had finished: then call ``fit``
        with ``saved=False`` — see :attr:`finished`). Returns whether training resumes.
        """
        self._t0, self._last_write = time.perf_counter(), _now()
        if self._disabled is not None:  # known before training: a trainer with its own loop
            self._warn_disabled()
            return False
        if not (self.folder / STATE).is_file():
            return False
        try:
            state, tensors = self._read()
        except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
            log.warning("cell %s (%s): ignoring its checkpoint in %s (%s); training starts at epoch 0",
                        self.cell_id, self.model_name, self.folder, exc)
            return False
        try:
            fresh = self._capture(-1)
        except Unsupported as exc:
            self._disabled = str(exc)
            self._warn_disabled()
            return False
        try:
            self._apply(state, tensors)
        except Exception as exc:  # noqa: BLE001 - a checkpoint that does not fit: start over, cleanly
            self._apply(*fresh)
            self.epochs_seen.clear()
            self.best.clear()
            log.warning("cell %s (%s): its checkpoint in %s does not fit the model (%s: %s); training starts at epoch 0",
                        self.cell_id, self.model_name, self.folder, type(exc).__name__, exc)
            return False
        epoch, self.finished = state["epoch"], state["finished"]
        self.trainer.start_epoch = self.trainer.epochs if self.finished else epoch + 1
        self._last_saved = epoch
        self.prior_train_time = state["train_time_s"]
        log.info("cell %s (%s): resuming from the checkpoint of epoch %d%s", self.cell_id, self.model_name, epoch,
                 " (training had finished)" if self.finished else "")
        return True

    def _warn_disabled(self) -> None:
        if not self._warned:
            self._warned = True
            log.warning("cell %s (%s): no mid-cell checkpoint, %s; an interrupted run of this cell restarts at epoch 0",
                        self.cell_id, self.model_name, self._disabled)
        discard(self.folder)

    # -- capture and restore

    def _modules(self) -> list[tuple[str, torch.nn.Module]]:
        return list(self.trainer.model.named_modules())

    def _plain_attrs(self) -> dict[str, dict[str, Any]]:
        """Each submodule's attributes that are neither parameters, buffers, submodules nor nn.Module internals."""
        other = set(getattr(self.trainer.model, "other_parameter_name", ()) or ())
        out: dict[str, dict[str, Any]] = {}
        for name, module in self._modules():
            caches = set(getattr(module, CACHE_ATTRIBUTES, ()) or ())
            out[name] = {a: v for a, v in vars(module).items()
                         if a not in _MODULE_INTERNALS and a not in caches and not (name == "" and a in other)}
        return out

    def _attr_fingerprints(self) -> dict[str, Any]:
        """Fingerprints of the model attributes a checkpoint does not store (compared at each save)."""
        model = self.trainer.model
        state = frozenset(id(t) for t in (*model.parameters(), *model.buffers()))
        out = {}
        for mod, attrs in self._plain_attrs().items():
            for a, v in attrs.items():
                if not isinstance(v, (*_SCALARS, *_RNG_TYPES)):
                    out[f"{mod}:{a}"] = _fingerprint(v, state=state)
        return out

    def _rngs(self) -> dict[str, Any]:
        roots = [(f"loader{i}", dl) for i, dl in enumerate(self._loaders)]
        roots += [(f"model{('.' + n) if n else ''}", m) for n, m in self._modules()]
        roots.append(("trainer", self.trainer))
        return _rng_objects(roots)

    def _stateful(self) -> tuple[dict[str, Any], dict[str, str]]:
        """The trainer's optimizers and LR schedulers by attribute, and the attributes that alias one.

        RecVAE's trainer points ``optimizer`` at its encoder's or decoder's optimizer each epoch:
        of attributes holding the same object, the last one defined owns it (a subclass's own
        attribute, not the base ``optimizer``) and the others are restored as aliases of it.
        """
        kinds = (torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler)
        attrs = [(a, v) for a, v in vars(self.trainer).items() if isinstance(v, kinds)]
        owner_of = {id(v): a for a, v in attrs}  # the last attribute holding each object
        owned = {a: v for a, v in attrs if owner_of[id(v)] == a}
        aliases = {a: owner_of[id(v)] for a, v in attrs if owner_of[id(v)] != a}
        return owned, aliases

    def _capture(self, epoch: int) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        trainer, model = self.trainer, self.trainer.model
        tensors: dict[str, torch.Tensor] = {}
        changed = [k for k, fp in self._attr_fingerprints().items() if self._baseline.get(k) != fp]
        if changed:
            raise Unsupported(f"model attribute {', '.join(changed[:3])} changes during training and is not saved")
        scalars = {f"{mod}:{a}": v for mod, attrs in self._plain_attrs().items() for a, v in attrs.items()
                   if isinstance(v, _SCALARS)}
        trainer_scalars = {a: v for a, v in vars(trainer).items()
                           if isinstance(v, _SCALARS) and a not in ("start_epoch", *_TRAINER_FIELDS)}
        state: dict[str, Any] = {
            "format": FORMAT, "cell_id": self.cell_id, "model": self.model_name, "epoch": epoch,
            "finished": epoch + 1 >= trainer.epochs or trainer.cur_step > trainer.stopping_step,
            "epochs_seen": list(self.epochs_seen),
            "model_state": _encode(dict(model.state_dict()), "model", tensors),
            "model_other": _encode(self._changed_others(model.other_parameter()), "other", tensors),
            "model_attrs": scalars,
            "trainer": _encode({f: getattr(trainer, f) for f in _TRAINER_FIELDS}, "trainer", tensors),
            "trainer_attrs": trainer_scalars,
            "stateful": _encode({a: v.state_dict() for a, v in self._stateful()[0].items()}, "optim", tensors),
            "stateful_aliases": self._stateful()[1],
            "best": _encode({**self.best, **({"other_parameter": self._changed_others(self.best["other_parameter"])}
                                              if "other_parameter" in self.best else {})}, "best", tensors),
            "rng": {
                "torch": _encode(torch.get_rng_state(), "rng/torch", tensors),
                "cuda": _encode(torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else [], "rng/cuda", tensors),
                "numpy": _encode(np.random.get_state(legacy=False), "rng/numpy", tensors),
                "python": _encode(random.getstate(), "rng/python", tensors),
                "objects": _encode({p: _rng_get(o) for p, o in self._rngs().items()}, "rng/objects", tensors),
            },
        }
        return state, tensors

    def _changed_others(self, values: dict[str, Any]) -> dict[str, Any]:
        """``other_parameter()`` entries that differ from the freshly built model's (the rest it rebuilds)."""
        return {k: v for k, v in values.items() if _fingerprint(v) != self._other_baseline.get(k, ())}

    def _read(self) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        from safetensors.torch import load as st_load

        state = json.loads((self.folder / STATE).read_text())
        if not isinstance(state, dict) or state.get("format") != FORMAT:
            raise ValueError(f"unknown checkpoint format {state.get('format') if isinstance(state, dict) else state!r}")
        if state.get("cell_id") != self.cell_id or state.get("model") != self.model_name:
            raise ValueError(f"it belongs to cell {state.get('cell_id')} ({state.get('model')})")
        if not (isinstance(state.get("epoch"), int) and isinstance(state.get("finished"), bool)
                and isinstance(state.get("train_time_s"), (int, float))):
            raise ValueError("its epoch, finished or train_time_s is missing or mistyped")
        if not 0 <= state["epoch"] < self.trainer.epochs:
            raise ValueError(f"its epoch {state['epoch']} is not one of this cell's {self.trainer.epochs}")
        name = str(state["tensors"])
        if Path(name).name != name or not name.endswith(".safetensors"):
            raise ValueError(f"bad tensor file name {name!r}")
        data = (self.folder / name).read_bytes()
        if hashlib.sha256(data).hexdigest() != state["sha256"]:
            raise ValueError(f"{name} does not match its digest (truncated or changed)")
        try:
            tensors = st_load(data)
        except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types
            raise ValueError(f"{name} is not a safetensors file: {exc}") from None
        return state, tensors

    def _apply(self, state: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
        trainer, model = self.trainer, self.trainer.model
        device = next(iter(model.parameters()), torch.empty(0)).device
        sd = _decode(state["model_state"], tensors)
        if set(sd) != set(model.state_dict()):
            raise ValueError("its weights have other names than the model's")
        model.load_state_dict(sd)
        model.load_other_parameter(_decode(state["model_other"], tensors, device))
        modules = dict(self._modules())
        for path, value in state["model_attrs"].items():
            mod, attr = path.split(":", 1)
            setattr(modules[mod], attr, value)
        for attr, value in _decode(state["trainer"], tensors).items():
            setattr(trainer, attr, value)
        for attr, value in state["trainer_attrs"].items():
            setattr(trainer, attr, value)
        saved, aliases = _decode(state["stateful"], tensors), state["stateful_aliases"]
        stateful = {**self._stateful()[0], **self._stateful()[1]}
        if set(saved) | set(aliases) != set(stateful):
            raise ValueError(f"it holds optimizers {sorted(saved)}, the trainer {sorted(stateful)}")
        for attr, sd_ in saved.items():
            getattr(trainer, attr).load_state_dict(sd_)
        for attr, owner in aliases.items():
            setattr(trainer, attr, getattr(trainer, owner))
        self.best.clear()
        self.best.update(_decode(state["best"], tensors, device))
        self.epochs_seen[:] = [int(e) for e in state["epochs_seen"]]
        rng = state["rng"]
        torch.set_rng_state(_decode(rng["torch"], tensors))
        cuda = _decode(rng["cuda"], tensors)
        if cuda:
            torch.cuda.set_rng_state_all(cuda)
        np.random.set_state(_decode(rng["numpy"], tensors))
        random.setstate(_tuples(_decode(rng["python"], tensors)))
        objects = self._rngs()
        saved_rngs = _decode(rng["objects"], tensors)
        if set(saved_rngs) != set(objects):
            raise ValueError(f"it holds random states {sorted(saved_rngs)}, the run {sorted(objects)}")
        for path, value in saved_rngs.items():
            _rng_set(objects[path], value)


@dataclass(frozen=True)
class CheckpointPlan:
    """Where one cell keeps its checkpoints and whether it may resume from one.

    :func:`m6rec_bench.engine.cell.run_cell` makes it (it knows the store and the cell id) and
    hands it to ``train_and_evaluate``; tuning trials pass none. ``resume=False`` (a forced re-run)
    discards an existing checkpoint instead of continuing from it.
    """

    folder: Path
    cell_id: str
    resume: bool = True

    def attach(self, trainer: Any, built: Any, best: dict[str, Any], epochs_seen: list[int]) -> EpochCheckpoints:
        """Hook checkpoints into ``trainer`` (see :class:`EpochCheckpoints`) for a cell's built objects."""
        if not self.resume:
            discard(self.folder)
        loaders = (built.train_data, built.valid_data, built.test_data)
        return EpochCheckpoints(self.folder, trainer, loaders, best, epochs_seen, cell_id=self.cell_id)

    def discard(self) -> None:
        """Remove the checkpoint (the cell's record is written)."""
        discard(self.folder)
