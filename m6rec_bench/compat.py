"""Every shim needed to run RecBole 1.2.1 on today's numpy / scipy / torch stack.

RecBole 1.2.1 (the last release) predates numpy 2, scipy 1.13 and torch 2.6. Rather than pin an
old stack we patch the few places where it breaks, all here, each shim naming the upstream issue it
works around. :func:`apply` is idempotent and is called by every entry point that touches RecBole
(:mod:`m6rec_bench.engine.cell`, the benchmarks, the tests).

Never import ``recbole.quick_start`` anywhere: it imports ``ray`` 2.6.3 (through
``recbole.trainer.hyper_tuning``), which fails on numpy 2 (``np.bool8``) and on setuptools without
``pkg_resources``. We drive RecBole through Config / create_dataset / data_preparation / get_model /
get_trainer instead, exactly as ``run_recbole`` does.
"""

from __future__ import annotations

import contextlib
import copy
import sys
import warnings
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from m6rec_bench.errors import DataError

_APPLIED = False


def _numpy2_aliases() -> None:
    """numpy 2 removed ``np.float_``, ``np.complex_`` and ``np.unicode_``.

    RecBole's ``Config._init_device``/``compatibility_settings`` aliases ``np.float = np.float_``
    etc. and fails with AttributeError on numpy 2. Upstream: RUCAIBox/RecBole#2203 ("Fix numpy 2
    compat"), never released. The aliases below are the numpy 1.x meanings of those names.
    """
    for alias, target in (("float_", np.float64), ("complex_", np.complex128), ("unicode_", np.str_)):
        if not hasattr(np, alias):
            setattr(np, alias, target)


def _scipy_dok_update() -> None:
    """scipy >= 1.13 removed the private ``dok_matrix._update``.

    LightGCN, NGCF, GCMC, NCL and SpectralCF build their normalised adjacency with
    ``A._update(data_dict)``. Upstream: RUCAIBox/RecBole#2034 (open). The dok storage is a plain
    dict in ``_dict`` since scipy 1.13, so the old bulk update is ``_dict.update``.
    """
    from scipy.sparse import dok_matrix

    if hasattr(dok_matrix, "_update"):
        return

    def _update(self: Any, data: dict) -> None:
        self._dict.update(data)

    dok_matrix._update = _update  # type: ignore[attr-defined]


def _no_pandas3() -> None:
    """RecBole's ``Dataset._fill_nan`` uses chained ``fillna(inplace=True)``.

    Under pandas 3 copy-on-write that is a silent no-op: NaNs stay in the features and results
    drift without an error. We refuse to run instead of producing wrong numbers.
    """
    import pandas as pd

    major = int(pd.__version__.split(".")[0])
    if major >= 3:
        raise RuntimeError(
            f"pandas {pd.__version__} is installed but RecBole 1.2.1 needs pandas < 3 "
            "(its _fill_nan is a silent no-op under copy-on-write). "
            "Install the pinned version: pip install 'pandas<3'"
        )


class _NullWriter:
    """Stands in for tensorboard's SummaryWriter: accepts every call, writes nothing."""

    def __getattr__(self, _name: str) -> Any:
        return lambda *args, **kwargs: None


def _no_tensorboard_dir() -> None:
    """RecBole's ``Trainer.__init__`` always opens a tensorboard ``SummaryWriter`` under
    ``./log_tensorboard/`` of the current directory (``recbole.utils.get_tensorboard``; no setting
    turns it off), littering every directory ``m6bench`` runs in. Our records already hold the
    per-epoch curve, so the trainer gets a writer that writes nothing.
    """
    import recbole.trainer.trainer as trainer_module

    trainer_module.get_tensorboard = lambda logger: _NullWriter()


def _quiet_known_warnings() -> None:
    """Silence warnings RecBole 1.2.1 raises on every run that say nothing about *this* run.

    - pandas 2.x ``FutureWarning`` about chained ``fillna(inplace=True)`` in ``Dataset._fill_nan``:
      correct under pandas 2 (which we pin, see :func:`_no_pandas3`), broken under pandas 3.
    - torch ``FutureWarning`` for ``torch.cuda.amp.GradScaler`` in ``Trainer.__init__``.
    - torch ``UserWarning`` for ``torch.sparse.FloatTensor`` in LightGCN/NGCF/GCMC's adjacency.
    """
    warnings.filterwarnings("ignore", message=r".*inplace method will never work.*", category=FutureWarning)
    warnings.filterwarnings("ignore", message=r".*A value is trying to be set on a copy.*", category=FutureWarning)
    warnings.filterwarnings("ignore", message=r".*torch\.cuda\.amp\.GradScaler.*", category=FutureWarning)
    warnings.filterwarnings("ignore", message=r".*torch\.sparse\.SparseTensor.*is deprecated.*", category=UserWarning)


def _literal_config_values() -> None:
    """RecBole converts every *string* config value with ``eval()`` (``Config._convert_config_dict``).

    No upstream issue found (RecBole 1.2.1, ``recbole/config/configurator.py``). A string override
    such as ``"__import__('os').system(...)"`` in a suite YAML, a ``--set`` value or a downloaded
    record given to ``m6bench reproduce`` would run as code, and harmless strings that merely look
    numeric (``m6_tune_study: BPR.ml-100k.default.205642d014``) print a ``SyntaxWarning``. We convert
    with ``ast.literal_eval`` instead: numbers, lists, dicts, tuples, booleans and ``None`` come out
    exactly as before, anything else stays the string it was ("true"/"false" still become booleans).
    """
    import ast
    from enum import Enum

    from recbole.config import configurator

    def convert(self: Any, config_dict: dict[str, Any]) -> dict[str, Any]:
        for key, param in config_dict.items():
            if not isinstance(param, str):
                continue
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", SyntaxWarning)
                    value = ast.literal_eval(param)
                if value is not None and not isinstance(value, (str, int, float, list, tuple, dict, bool, Enum)):
                    value = param
            except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
                value = {"true": True, "false": False}.get(param.lower(), param)
            config_dict[key] = value
        return config_dict

    configurator.Config._convert_config_dict = convert


def _exact_time_order() -> None:
    """RecBole sorts by time *after* converting float fields to ``torch.float32``.

    ``Dataset._dataframe_to_interaction`` stores every float field as a ``FloatTensor``, and the
    ``TO`` ordering (``Dataset.build``) and the sequential augmentation
    (``SequentialDataset.data_augmentation``) sort on those float32 values. Unix timestamps (~1e9)
    keep a 64 s resolution in float32 (~1 s after ml-100k's ``normalize_all``), so interactions
    seconds apart tie and the *file* order decides which one is "last": on ml-100k 4 users get a
    test item that is not their latest interaction. Upstream: RUCAIBox/RecBole#2204 (also #1653).
    Before the conversion we stable-sort the interaction DataFrame by its exact (float64) time, so
    RecBole's own stable sorts on the rounded values keep the exact order; exact ties keep the file
    order, as before. Only ``order: TO`` without pre-split benchmark files is touched (random order
    and benchmark files are unchanged, and so is every default / cold-item result).
    """
    import pandas as pd
    from recbole.data.dataset import Dataset

    if getattr(Dataset._change_feat_format, "_m6_exact_time", False):
        return
    original = Dataset._change_feat_format

    def _change_feat_format(self: Any) -> None:
        feat, field = getattr(self, "inter_feat", None), getattr(self, "time_field", None)
        if (
            isinstance(feat, pd.DataFrame) and field in feat.columns
            and self.config["eval_args"]["order"] == "TO" and self.benchmark_filename_list is None
        ):
            self.inter_feat = feat.sort_values(by=field, kind="stable", ignore_index=True)
        original(self)

    _change_feat_format._m6_exact_time = True  # type: ignore[attr-defined]
    _change_feat_format._m6_original = original  # type: ignore[attr-defined]  # tests switch it off
    Dataset._change_feat_format = _change_feat_format


def _shadow_module(real: Any, name: str, **replacements: Any) -> Any:
    """A module object that is ``real`` except for ``replacements`` (a per-module stand-in).

    Used to give one RecBole module a safe ``np.load`` / ``torch.load`` without changing numpy or
    torch for anyone else. The namespace is copied (plain attribute look-ups, no overhead in a
    training loop) and anything not copied yet (a submodule imported later) falls through to the
    real module.
    """
    import types

    shadow = types.ModuleType(name, getattr(real, "__doc__", None))
    shadow.__dict__.update({k: v for k, v in vars(real).items() if k not in ("__name__", "__doc__")})
    shadow.__dict__.update(replacements)
    shadow.__getattr__ = lambda attr: getattr(real, attr)  # type: ignore[attr-defined]  # PEP 562
    shadow._m6_shadow_of = real  # type: ignore[attr-defined]
    return shadow


class PickledArrayError(DataError):
    """A ``.npy`` file RecBole would load holds pickled objects (refused: loading them runs code)."""


def _no_pickled_item_emb() -> None:
    """LDiffRec loads ``<dataset folder>/item_emb.npy`` with ``np.load``, pickles allowed,
    when ``n_cate > 1`` (``recbole/model/general_recommender/ldiffrec.py``, ``LDiffRec.__init__``).

    Dataset folders come from strangers, and a pickled ``.npy`` runs arbitrary code when loaded that
    way. No upstream issue found (RecBole 1.2.1). The module gets a ``np`` whose ``load`` always
    passes ``allow_pickle=False``: a float array loads exactly as before, an object array raises
    :class:`PickledArrayError` (a DataError: one line, exit 1, no failed row) and runs nothing.
    """
    from recbole.model.general_recommender import ldiffrec

    if getattr(ldiffrec.np, "_m6_shadow_of", None) is not None:
        return
    real = ldiffrec.np

    def load(file: Any, *args: Any, allow_pickle: bool = False, **kwargs: Any) -> Any:
        try:
            return real.load(file, *args, allow_pickle=False, **kwargs)
        except ValueError as exc:
            if "allow_pickle" not in str(exc):
                raise
            raise PickledArrayError(
                f"{file} holds pickled Python objects, which m6rec-bench never loads (loading them runs code) — "
                "write it with numpy.save of a plain float array") from None

    ldiffrec.np = _shadow_module(real, "numpy", load=load)


#: RecBole model modules that ``torch.load`` a pretrained file named in the config
#: (``mf_pretrain_path``, ``pre_model_path``, ``pretrain_path``, ``warm_up``).
_PRETRAIN_LOADERS = (
    "recbole.model.general_recommender.neumf", "recbole.model.general_recommender.convncf",
    "recbole.model.general_recommender.nais", "recbole.model.general_recommender.ract",
    "recbole.model.sequential_recommender.s3rec", "recbole.model.context_aware_recommender.kd_dagfm",
)


def _weights_only_model_loads() -> None:
    """NeuMF, ConvNCF, NAIS, RaCT, S3Rec and KD_DAGFM ``torch.load`` a pretrained model from a
    config path with no ``weights_only`` argument (RecBole 1.2.1; cf. RUCAIBox/RecBole#2212).

    torch >= 2.6 defaults to ``weights_only=True``, but ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1`` or an
    older torch turns the full unpickler back on. Those path keys are refused from outside
    (:mod:`m6rec_bench.config_keys`); as a second lock each module's ``torch.load`` always passes
    ``weights_only=True``, whatever the environment says.
    """
    import importlib

    for name in _PRETRAIN_LOADERS:
        try:
            module = importlib.import_module(name)
        except ImportError:  # an optional dependency of that model is missing: it cannot run either
            continue
        real = module.torch
        if getattr(real, "_m6_shadow_of", None) is not None:
            continue

        def load(f: Any, *args: Any, _real: Any = real, **kwargs: Any) -> Any:
            kwargs["weights_only"] = True
            return _real.load(f, *args, **kwargs)

        module.torch = _shadow_module(real, "torch", load=load)


#: RecBole graph models whose normalised adjacency ``D^-1/2 A D^-1/2`` is symmetric and fixed, and the
#: modules whose ``torch.sparse.mm`` propagates with it.
_GRAPH_MODELS = ("recbole.model.general_recommender.lightgcn", "recbole.model.general_recommender.ngcf")
_PROPAGATING_MODULES = (*_GRAPH_MODELS, "recbole.model.layers")


class _SymmetricSpmm:
    """``A @ X`` with a symmetric CSR ``A``: the backward pass is ``A @ G`` (``A^T = A``), so no
    transposed or re-coalesced copy of ``A`` is ever made."""

    _fn: Any = None

    @classmethod
    def apply(cls, adj: Any, dense: Any) -> Any:
        if cls._fn is None:
            import torch

            class _Fn(torch.autograd.Function):
                @staticmethod
                def forward(ctx: Any, a: Any, x: Any) -> Any:
                    ctx.adj = a
                    return a @ x

                @staticmethod
                def backward(ctx: Any, grad: Any) -> Any:
                    return None, ctx.adj @ grad.contiguous()

            cls._fn = _Fn
        return cls._fn.apply(adj, dense)


def symmetric_spmm(adj: Any, dense: Any) -> Any:
    """``adj @ dense`` for a symmetric sparse CSR ``adj``, differentiable in ``dense``: the backward
    is ``adj @ grad`` (``torch.sparse.mm``'s own CSR backward builds the transpose on every call,
    on CPU more than the product itself). ``adj`` gets no gradient. Plugins get it from
    :mod:`m6rec_bench.plugin_api`."""
    return _SymmetricSpmm.apply(adj, dense)


def symmetric_csr(adj: Any) -> Any:
    """A symmetric sparse matrix (COO) as CSR, once, marked for :func:`_spmm`'s symmetric path."""
    csr = adj.coalesce().to_sparse_csr()
    csr._m6_symmetric = True
    return csr


def _spmm(mat: Any, dense: Any, _real: Any = None) -> Any:
    if getattr(mat, "_m6_symmetric", False):
        return _SymmetricSpmm.apply(mat, dense)
    return _real(mat, dense)


def _csr_graph_propagation() -> None:
    """LightGCN and NGCF keep their normalised adjacency as an unsorted COO tensor built from a dok
    matrix, and every ``torch.sparse.mm`` on it (each layer, each batch, forward and backward)
    coalesces and, for the gradient, transposes it again. Upstream: RUCAIBox/RecBole#1398 ("why
    LightGCN is this slow"; answered as expected cost, left open in 1.2.1); RecBole-GNN added a
    sparse path for its convolutions (RUCAIBox/RecBole-GNN#75). We store the adjacency once as CSR
    after ``__init__`` and propagate with it through a symmetric product (the matrix is
    ``D^-1/2 A D^-1/2`` of an undirected graph, so the backward pass reuses it). Embeddings and
    losses equal RecBole's to float rounding (``tests/test_lightgcn_csr.py``). NGCF with
    ``node_dropout > 0`` drops COO entries per batch and keeps RecBole's path.
    """
    import importlib

    for name in _PROPAGATING_MODULES:
        module = importlib.import_module(name)
        real = module.torch
        if getattr(real.sparse, "_m6_shadow_of", None) is not None:
            continue

        def mm(mat: Any, dense: Any, _real: Any = real.sparse.mm) -> Any:
            return _spmm(mat, dense, _real)

        module.torch = _shadow_module(real, "torch", sparse=_shadow_module(real.sparse, "torch.sparse", mm=mm))
    for name in _GRAPH_MODELS:
        module = importlib.import_module(name)
        cls = getattr(module, {"lightgcn": "LightGCN", "ngcf": "NGCF"}[name.rsplit(".", 1)[1]])
        if getattr(cls.__init__, "_m6_csr", False):
            continue
        original = cls.__init__

        def __init__(self: Any, config: Any, dataset: Any, _original: Any = original) -> None:
            _original(self, config, dataset)
            if getattr(self, "node_dropout", 0) == 0:
                self.norm_adj_matrix = symmetric_csr(self.norm_adj_matrix)

        __init__._m6_csr = True  # type: ignore[attr-defined]
        __init__._m6_original = original  # type: ignore[attr-defined]  # tests build RecBole's own
        cls.__init__ = __init__


def _no_global_anomaly_mode() -> None:
    """RecBole 1.2.1's ``recbole/model/sequential_recommender/sine.py`` calls
    ``torch.autograd.set_detect_anomaly(True)`` at module level, and importing RecBole's model
    packages imports it (no upstream issue found; the line is still there in 1.2.1). From then on
    every forward op of every model in the process records a Python stack (``torch.fx.traceback``)
    and every backward pass checks for NaN: a debugging mode. Measured on ml-100k / BPR (one torch
    thread, CPU seconds of one epoch): about 1/3 of the epoch is that bookkeeping
    (``benchmarks/RESULTS.md``). Anomaly mode checks, it computes nothing, so the numbers do not
    change (``tests/test_engine.py`` still matches raw RecBole). SINE is imported here, so its side
    effect (once per process, at first import) is over, then the mode is switched off."""
    import torch

    import recbole.model.sequential_recommender.sine  # noqa: F401 - its import switches the mode on

    torch.autograd.set_detect_anomaly(False)


def apply() -> None:
    """Install every shim once. Safe to call many times."""
    global _APPLIED
    if _APPLIED:
        return
    _quiet_known_warnings()
    _numpy2_aliases()
    _scipy_dok_update()
    _no_pandas3()
    _no_tensorboard_dir()
    _literal_config_values()
    _exact_time_order()
    _no_pickled_item_emb()
    _weights_only_model_loads()
    _csr_graph_propagation()
    _no_global_anomaly_mode()
    _APPLIED = True


@contextlib.contextmanager
def shielded_argv() -> Iterator[None]:
    """RecBole's ``Config._load_cmd_line`` parses ``sys.argv`` itself.

    Every ``--key=value`` of *our* command line (``m6bench run --epochs=5``) would silently become a
    RecBole parameter, and anything else makes it log "unrecognized args". RecBole has no switch to
    turn this off (``recbole/config/configurator.py``, ``_load_cmd_line``), so we hide argv while a
    Config is built.
    """
    saved = sys.argv
    sys.argv = [saved[0] if saved else "m6bench"]
    try:
        yield
    finally:
        sys.argv = saved


def build_config(model: Any, dataset: str, config_dict: dict[str, Any]) -> Any:
    """Build a RecBole ``Config`` with argv shielded and ``data_path`` honoured for every name.

    ``Config._set_default_parameters`` hard-wires a dataset *named* ``ml-100k`` to the copy inside
    the RecBole wheel, whatever ``data_path`` says, so a converted download or a protocol's derived
    split of ml-100k would silently be replaced by the bundled files. We set ``data_path`` back to
    ``<config_dict["data_path"]>/<dataset>`` (what RecBole does for every other name) before any
    data is read.
    """
    import os

    from recbole.config import Config

    with shielded_argv():
        config = Config(model=model, dataset=dataset, config_dict=config_dict)
    if "data_path" in config_dict:
        config.final_config_dict["data_path"] = os.path.join(config_dict["data_path"], dataset)
    return config


def loader_dataset(loader: Any) -> Any:
    """The RecBole ``Dataset`` a data loader (train, valid or test) draws from.

    RecBole 1.2.1 keeps it only in the private ``AbstractDataLoader._dataset``
    (``recbole/data/dataloader/abstract_dataloader.py``) and offers no public accessor; every read
    of it goes through here, so a RecBole that renames it is fixed in one place.
    """
    return loader._dataset


def loader_sampler(loader: Any) -> Any:
    """The negative sampler of a RecBole data loader (None when it samples none): the private
    ``AbstractDataLoader._sampler`` (``recbole/data/dataloader/abstract_dataloader.py``), read only here."""
    return getattr(loader, "_sampler", None)


def samples_negatives(loader: Any) -> bool:
    """Whether ``loader`` draws sampled negatives (its private ``_sampler`` keeps per-user used ids)."""
    return getattr(loader_sampler(loader), "used_ids", None) is not None


def exclude_negatives(train_data: Any, item_ids: Iterable[int]) -> bool:
    """Never let the training loader's negative sampler draw ``item_ids`` (internal ids).

    RecBole's samplers have no exclusion list: the uniform sampler rejects only a user's "used" ids,
    kept per phase in the private ``AbstractDataLoader._sampler.used_ids`` (``recbole/sampler/sampler.py``,
    ``Sampler.sample_by_key_ids``), one ``set`` per user. Adding the ids to every user's set of the
    *training* loader's sampler (a phase copy of its own: validation and test are untouched) excludes
    them. Returns False, changing nothing, for a loader that samples no negatives.
    """
    if not samples_negatives(train_data):
        return False
    ids = set(item_ids)
    for user_items in loader_sampler(train_data).used_ids:
        user_items.update(ids)
    return True


def keep_best_in_memory(trainer: Any) -> dict[str, Any]:
    """Make ``trainer.fit(saved=True)`` keep its best checkpoint in memory instead of on disk.

    RecBole pickles the whole trainer state (including its ``Config`` object) with ``torch.save``
    and reads it back in ``Trainer.evaluate(load_best_model=True)`` with a bare ``torch.load``; since
    torch 2.6 ``weights_only=True`` is the default and that load raises ``UnpicklingError``
    (upstream: RUCAIBox/RecBole#2212 and PR #2219 for the same default flip). Instead of loading
    pickles with ``weights_only=False`` we capture the best ``state_dict`` at the moment RecBole
    would save it; :func:`restore_best` puts it back before the test evaluation, which then runs with
    ``load_best_model=False``. Same semantics, no pickle, no disk write.
    """
    best: dict[str, Any] = {}

    def _save_checkpoint(epoch: int, verbose: bool = True, **_: Any) -> None:
        best["epoch"] = epoch
        best["state_dict"] = copy.deepcopy(trainer.model.state_dict())
        best["other_parameter"] = copy.deepcopy(trainer.model.other_parameter())

    trainer._save_checkpoint = _save_checkpoint
    return best


def restore_best(trainer: Any, best: dict[str, Any]) -> None:
    """Load the state captured by :func:`keep_best_in_memory` (no-op if nothing was captured)."""
    if "state_dict" not in best:
        return
    trainer.model.load_state_dict(best["state_dict"])
    trainer.model.load_other_parameter(best["other_parameter"])
