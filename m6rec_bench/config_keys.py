"""Which config keys may come from outside, and the routes by which RecBole would unpickle a file.

Settings reach RecBole's ``Config`` from places a stranger can write: a suite file's ``overrides``,
``--set`` on the command line, the ``spec`` of a record handed to ``reproduce`` / ``explain`` /
``serve`` (and, through :func:`m6rec_bench.artifacts.load`, to ``--compress`` / ``--rerank``), and
tuning search spaces. Every one of them becomes a :class:`~m6rec_bench.engine.cell.CellSpec`'s
``overrides``, and every override passes :func:`check_overrides` — called by the engine's
``_plugin_settings``, which both ``validate_spec`` (so ``plan()`` refuses a bad suite before any cell
runs) and ``build_config_dict`` (so ``run_cell``, ``reproduce`` and each tuning trial) go through.
This is the one place that decides.

What an override may name (an allow-list, per model):

* a RecBole baseline: the keys of its own ``recbole/properties/model/<Model>.yaml``;
* a plugin: the fields of its pydantic ``config_cls`` and the keys of its ``recbole_config``
  (what the plugin declares); pydantic checks their types;
* any model: :data:`TRAINING_KEYS` (the training and evaluation keys of RecBole's
  ``overall.yaml`` that change only how a model trains or is scored), :data:`DATASET_KEYS` (the
  filtering and sequence-length keys of ``properties/dataset/sample.yaml`` that name no file), the
  keys the protocols set themselves (``eval_args``, ``metrics``, ``load_col`` …), and the
  ``m6_tune_*`` marks that tuning writes into a tuned cell's overrides (:data:`TUNING_KEYS`).

Refused, whatever the model: every key that names a file or folder RecBole reads or writes
(:data:`FILE_KEYS`, and any ``*_path`` / ``*_file`` / ``*_dir`` / ``*_filename`` key), because a file
named there can be a pickle, and RecBole ``pickle.load``s or ``torch.load``s several of them; and the
keys m6rec-bench sets from its own options (:data:`OWN_KEYS`: ``seed``, ``use_gpu`` …), which an
override would silently contradict. An unknown key is refused with the nearest known one (a typo
such as ``learning_rat`` used to be stored, hashed and passed to RecBole, which ignored it). A value
whose type differs from the default's type in RecBole's yaml (a string for ``learning_rate``) is
refused before anything runs, and so are the switches that make a model load a pretrained file
(:data:`PRETRAIN_SWITCHES`); numbers are numbers (RecBole's yaml writes ``1`` for a float bound
here and there), ``None`` is accepted where the default is ``None`` or a dict (RecBole's way to turn
a dict setting off, e.g. ``train_neg_sample_args: ~``).

Records. A record's ``config`` is *not* checked key by key: it is never used as given. The
record's ``spec`` is parsed into a ``CellSpec`` and checked like any other cell
(:func:`m6rec_bench.resolve.check_record_spec`), and :func:`m6rec_bench.artifacts.load` rebuilds the config from it with
``build_config_dict`` — the very function that wrote it — and refuses a record whose stored
``config`` differs from the rebuilt one (:func:`check_record_config`). So the keys m6rec-bench
writes itself (protocol settings, ``m6_*``, ``seed``, ``use_gpu``, ``epochs``) load from our
records, and a record with an added or altered key is refused, naming the keys. ``reproduce`` reruns
the spec with ``run_cell``, which never reads the stored config at all.

Routes to unpickling (and ``eval``) in RecBole 1.2.1 (site-packages ``recbole/``, audited with grep
for ``pickle``, ``torch.load``, ``np.load``, ``allow_pickle``, ``read_pickle``, ``joblib``, ``eval(``),
and how each is closed:

| where (RecBole 1.2.1) | what triggers it | how it is closed |
|---|---|---|
| data/utils.py:61 ``create_dataset``: ``pickle.load`` | ``dataset_save_path``, or a file ``<checkpoint_dir>/<dataset>-<Class>.pth`` | ``dataset_save_path`` and ``checkpoint_dir`` refused (FILE_KEYS); ``checkpoint_dir`` is always a fresh temp dir (engine ``build``) |
| data/utils.py:122 ``load_split_dataloaders``: ``pickle.load`` | ``dataloaders_save_path`` (only quick_start calls it) | key refused; never called by m6rec-bench |
| model/general_recommender/ldiffrec.py:232 ``np.load`` of ``item_emb.npy``, pickles allowed | LDiffRec with ``n_cate > 1``; the file sits in the (stranger's) dataset folder | compat ``_no_pickled_item_emb``: ``allow_pickle=False``; a pickled file is a DataError (exit 1) |
| model/general_recommender/neumf.py:84-85 ``torch.load`` | ``use_pretrain: True`` + ``mf_pretrain_path`` / ``mlp_pretrain_path`` | path keys and the switch refused (PRETRAIN_SWITCHES); compat ``_weights_only_model_loads`` forces ``weights_only=True`` |
| model/general_recommender/convncf.py:82 ``torch.load`` | ``train_method: after_pretrain`` + ``pre_model_path`` | likewise |
| model/general_recommender/nais.py:127 ``torch.load`` | ``pretrain_path`` | key refused; likewise |
| model/general_recommender/ract.py:75,84 ``torch.load`` | ``train_stage: critic_pretrain / finetune`` + ``pre_model_path`` | likewise |
| model/sequential_recommender/s3rec.py:120 ``torch.load`` | ``pre_model_path`` (S3Rec is not in the registry) | key refused; likewise |
| model/context_aware_recommender/kd_dagfm.py:56 ``torch.load``, :44 ``eval`` of ``teacher`` | ``warm_up``, ``teacher`` (context-aware: no protocol runs it, not in the registry) | ``warm_up`` refused; likewise; ``teacher`` never allow-listed |
| trainer/trainer.py:583 ``Trainer.evaluate`` ``torch.load`` of the best checkpoint | ``load_best_model=True`` | compat ``keep_best_in_memory``; every ``evaluate`` passes ``load_best_model=False`` |
| trainer/trainer.py:323 ``resume_checkpoint`` ``torch.load`` | a caller's own script | never called by m6rec-bench |
| quick_start/quick_start.py:250 ``torch.load`` | ``load_data_and_model`` | ``recbole.quick_start`` is never imported |
| config/configurator.py:131 ``eval`` of every string value | any string config value | compat ``_literal_config_values`` (``ast.literal_eval``) |
| trainer/hyper_tuning.py (ray, hyperopt) | RecBole's own tuning | never imported (Optuna instead) |

In m6rec-bench and its plugins: artifacts are ``safetensors`` plus an ``.npz`` read with
``allow_pickle=False`` (:mod:`m6rec_bench.artifacts`), embedding caches likewise
(:mod:`m6rec_bench.embcache`), suite files and ``datasets.yaml`` are read with ``yaml.safe_load`` /
``SafeLoader``; there is no ``pickle``, ``torch.load``, ``read_pickle`` or ``joblib`` call. A
plugin's ``text_model`` directory goes to sentence-transformers 6, which imports no custom code
without ``trust_remote_code`` (never passed) and whose transformers loads ``.bin`` weights with
``weights_only=True``. A ``datasets.yaml`` Hugging Face source goes to ``datasets`` 5.2, which runs no
loading scripts, refuses pickles in its ``pandas`` builder and decodes webdataset ``.npy`` / ``.pth``
with ``allow_pickle=False`` / ``weights_only=True``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from m6rec_bench.errors import UsageError, did_you_mean

if TYPE_CHECKING:  # pragma: no cover
    from m6rec_bench.models.registry import ModelEntry

#: Settings of RecBole's ``overall.yaml`` that change only how a model trains or is scored.
TRAINING_KEYS = frozenset({
    "epochs", "train_batch_size", "learner", "learning_rate", "train_neg_sample_args", "eval_step",
    "stopping_step", "clip_grad_norm", "weight_decay", "loss_decimal_place", "require_pow", "enable_amp",
    "enable_scaler", "transform", "shuffle", "eval_args", "repeatable", "metrics", "topk", "valid_metric",
    "valid_metric_bigger", "eval_batch_size", "metric_decimal_place",
})

#: Settings of RecBole's ``properties/dataset/sample.yaml`` that filter or shape the interactions
#: loaded from the dataset's own atomic files, naming no file.
DATASET_KEYS = frozenset({
    "MAX_ITEM_LIST_LENGTH", "user_inter_num_interval", "item_inter_num_interval", "val_interval", "rm_dup_inter",
    "filter_inter_by_user_or_item", "threshold", "normalize_field", "normalize_all", "load_col", "unload_col",
    "unused_col",
})

#: What ``m6bench run --tune-budget`` writes into a tuned cell's overrides (inert for RecBole):
#: key → accepted types (m6rec_bench.tuning.suite.tuned_overrides).
TUNING_KEYS: dict[str, tuple[type, ...]] = {
    "m6_tune_budget": (int,), "m6_tune_study": (str,), "m6_tune_note": (str,), "m6_tune_timeout": (int, float),
    "m6_tune_epochs": (int,),
}

#: RecBole settings that name a file or folder it reads (several with ``pickle.load`` /
#: ``torch.load``: arbitrary code on load) or writes, or that send data elsewhere.
FILE_KEYS = frozenset({
    "data_path", "checkpoint_dir", "dataset_save_path", "dataloaders_save_path", "save_dataset", "save_dataloaders",
    "benchmark_filename", "additional_feat_suffix", "pre_model_path", "pretrain_path", "mf_pretrain_path",
    "mlp_pretrain_path", "warm_up", "log_wandb", "wandb_project",
})

#: Keys RecBole would unpickle the file of (kept apart for the message).
UNPICKLED = frozenset({"dataset_save_path", "dataloaders_save_path", "pre_model_path", "pretrain_path",
                       "mf_pretrain_path", "mlp_pretrain_path", "warm_up"})

#: Values that make a RecBole model ``torch.load`` a pretrained file named by a (refused) path key:
#: NeuMF ``use_pretrain``, ConvNCF ``train_method``, RaCT ``train_stage``.
PRETRAIN_SWITCHES: dict[str, frozenset[Any]] = {
    "use_pretrain": frozenset({True}), "train_method": frozenset({"after_pretrain"}),
    "train_stage": frozenset({"critic_pretrain", "finetune"}),
}

_FILE_SUFFIXES = ("_path", "_file", "_dir", "_filename", "_suffix")

#: Keys m6rec-bench sets from its own options: an override would contradict them → the option to use.
OWN_KEYS: dict[str, str] = {
    "seed": "--seeds (or the cell's seed)", "use_gpu": "--device", "gpu_id": "--device", "device": "--device",
    "model": "--models", "dataset": "--dataset",
}

#: RecBole accepts a scalar for these list settings (``topk: 10``, ``metrics: NDCG``).
_SCALAR_OK: dict[str, tuple[type, ...]] = {"topk": (int,), "metrics": (str,)}


def is_file_key(key: str) -> bool:
    """A key that names a file or folder (refused from outside, whatever the model)."""
    return key in FILE_KEYS or key.lower().endswith(_FILE_SUFFIXES)


def _recbole_dir() -> Path:
    import recbole

    return Path(recbole.__file__).parent / "properties"


def _yaml_loader() -> type:
    """``yaml.SafeLoader`` with RecBole's float resolver (``1e-05`` is a float, as RecBole reads it)."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                    |\.[0-9_]+(?:[eE][-+][0-9]+)?
                    |[-+]?\.(?:inf|Inf|INF)
                    |\.(?:nan|NaN|NAN))$""", re.X),
        list("-+0123456789."),
    )
    return Loader


@lru_cache(maxsize=None)
def recbole_defaults(relative: str) -> dict[str, Any]:
    """The settings of one of RecBole's property files (``model/BPR.yaml``); ``{}`` when it has none."""
    path = _recbole_dir() / relative
    if not path.is_file():
        return {}
    loader = _yaml_loader()(path.read_text())  # a SafeLoader: what yaml.load does, without a full loader in sight
    try:
        return loader.get_single_data() or {}
    finally:
        loader.dispose()


@lru_cache(maxsize=1)
def protocol_settings() -> dict[str, Any]:
    """Every key a registered protocol sets itself (first protocol's value wins, for the type)."""
    from m6rec_bench.protocols import PROTOCOLS

    out: dict[str, Any] = {}
    for protocol in PROTOCOLS.values():
        for key, value in protocol.settings().items():
            out.setdefault(key, value)
    return {k: v for k, v in out.items() if not is_file_key(k) and not k.startswith("m6_")}


def defaults(entry: ModelEntry) -> dict[str, Any]:
    """Key → default value of every setting an override may name for ``entry`` (plugin fields excluded:
    pydantic checks those)."""
    out: dict[str, Any] = {}
    overall, sample = recbole_defaults("overall.yaml"), recbole_defaults("dataset/sample.yaml")
    out.update({k: overall.get(k) for k in TRAINING_KEYS})
    out.update({k: sample.get(k) for k in DATASET_KEYS})
    out.update(protocol_settings())
    if entry.plugin is None:
        out.update(recbole_defaults(f"model/{entry.name}.yaml"))
        out.update(entry.recbole_config)
    else:
        out.update(entry.plugin.recbole_config)
    return {k: v for k, v in out.items() if not is_file_key(k) and k not in OWN_KEYS}


def allowed_keys(entry: ModelEntry) -> frozenset[str]:
    """Every key an override may name for ``entry``."""
    fields = set(entry.plugin.config_cls.model_fields) if entry.plugin is not None else set()
    return frozenset(defaults(entry)) | fields | frozenset(TUNING_KEYS)


def _type_ok(key: str, default: Any, value: Any) -> bool:
    if default is None:
        return True
    if value is None:
        return isinstance(default, dict)
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int | float):
        return isinstance(value, int | float) and not isinstance(value, bool)
    if isinstance(default, str):
        return isinstance(value, str)
    if isinstance(default, list | tuple):
        return isinstance(value, list | tuple) or isinstance(value, _SCALAR_OK.get(key, ()))
    if isinstance(default, dict):
        return isinstance(value, dict)
    return True


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return {str: "a string", list: "a list", tuple: "a list", dict: "a mapping"}.get(type(value), type(value).__name__)


def check_overrides(entry: ModelEntry, overrides: Mapping[str, Any]) -> None:
    """UsageError for the first override of ``entry`` that may not come from outside (see module doc)."""
    if not overrides:
        return
    known = defaults(entry)
    allowed = allowed_keys(entry)
    where = f"override '{{key}}' for '{entry.name}'"
    for key in sorted(overrides, key=str):
        key = str(key)
        value = overrides[key]
        if is_file_key(key):
            why = ("RecBole would unpickle the file it names, which can run arbitrary code" if key in UNPICKLED
                   else "it names a file or folder RecBole reads or writes, and m6rec-bench manages those itself")
            raise UsageError(f"{where.format(key=key)} is refused: {why} — remove it (datasets come from "
                             "`m6bench datasets`, checkpoints and caches are m6rec-bench's own)")
        if key in OWN_KEYS:
            raise UsageError(f"{where.format(key=key)} is refused: m6rec-bench sets '{key}' itself — use "
                             f"{OWN_KEYS[key]} instead")
        if key not in allowed:
            source = (f"the fields of its config ({entry.plugin.config_cls.__name__})" if entry.plugin is not None
                      else f"recbole/properties/model/{entry.name}.yaml")
            raise UsageError(f"{where.format(key=key)}: '{key}' is not a setting {entry.name} reads"
                             f"{did_you_mean(key, sorted(allowed))} — see {source} and RecBole's training settings; "
                             "remove or rename it")
        if key in PRETRAIN_SWITCHES and _hashable(value) and value in PRETRAIN_SWITCHES[key]:
            raise UsageError(f"{where.format(key=key)} = {value!r} is refused: {entry.name} would then load a pretrained "
                             "file from a path setting, and m6rec-bench loads no file named in a config — keep the default")
        if key in TUNING_KEYS:
            if not isinstance(value, TUNING_KEYS[key]) or isinstance(value, bool):
                expected = "a string" if TUNING_KEYS[key] == (str,) else "a number"
                raise UsageError(f"{where.format(key=key)}: expected {expected}, got {_kind(value)} {value!r}")
            continue
        if key in known and not _type_ok(key, known[key], value):
            raise UsageError(f"{where.format(key=key)}: expected {_kind(known[key])} like RecBole's default "
                             f"{known[key]!r}, got {_kind(value)} {value!r} — fix its value")


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def check_record_config(path: Any, stored: Mapping[str, Any], rebuilt: Mapping[str, Any]) -> None:
    """UsageError when a record's stored ``config`` is not what its checked spec rebuilds (see module doc)."""
    a, b = _plain(dict(stored)), _plain(dict(rebuilt))
    if a == b:
        return
    diff = sorted(k for k in set(a) | set(b) if a.get(k, ...) != b.get(k, ...))
    added = [k for k in diff if k not in b]
    shown = ", ".join(f"'{k}'" + (" (not from its spec)" if k in added else "") for k in diff[:5])
    raise UsageError(f"{path}: its config differs from what its spec gives in {shown}"
                     f"{' …' if len(diff) > 5 else ''} — a record's model is rebuilt from its spec only; the record was "
                     "edited or written by another m6rec-bench version: retrain it (or `m6bench reproduce` it)")
