"""One resolved cell: model entry → protocol → prepared dataset → split → settings → config → cell id.

:func:`resolve` is the only place a :class:`CellSpec` becomes something to run, with every check on
the way (:func:`validate_spec`: model, protocol, device, plugin config, post-training method), so
``m6bench run`` (plan, run, resume, a dead worker's record), ``m6bench tune`` (every trial),
``reproduce`` and :func:`m6rec_bench.artifacts.load` all refuse the same cells with the same
message and give the same cell the same id. It sits below the engine: artifacts and tuning use it
without importing :mod:`m6rec_bench.engine.cell`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from m6rec_bench.defaults import DEFAULT_SEED
from m6rec_bench import config_keys
from m6rec_bench.datasets.base import PreparedDataset
from m6rec_bench.engine import environment
from m6rec_bench.errors import UsageError
from m6rec_bench.models import registry
from m6rec_bench.models.registry import ModelEntry
from m6rec_bench.protocols import Protocol, get_protocol
from m6rec_bench.results.record import SCHEMA_VERSION, TuningSummary

#: RecBole settings that locate files or tune logging; they do not change results, so they stay
#: out of the cell hash.
_VOLATILE = {"data_path", "checkpoint_dir", "show_progress", "benchmark_filename"}

#: CellSpec fields that make a cell a post-training variant of its plain twin: the field, the key
#: its method's name is recorded under in the record's ``config`` (:mod:`m6rec_bench.engine.variants`).
POST_TRAINING = ("compress", "rerank")


class CellSpec(BaseModel):
    """One cell of a suite. ``overrides`` are RecBole settings or plugin config fields, allow-listed per
    model by :mod:`m6rec_bench.config_keys` (checked in ``validate_spec`` and ``build_config_dict``)."""

    model_config = ConfigDict(extra="forbid")

    dataset: str
    model: str
    protocol: str = "default"
    seed: int = DEFAULT_SEED
    epochs: int | None = Field(None, description="max training epochs (RecBole default 300, early stopping)")
    device: str = "cpu"
    overrides: dict[str, Any] = Field(default_factory=dict)
    label: str | None = Field(None, description="leaderboard row name (default: the model name)")
    compress: str | None = Field(None, description="post-training compression of the trained model: int8 or prune:<ratio>")
    rerank: str | None = Field(None, description="re-ranking of the trained model's top-50 into its top-10: linucb or mmr")
    tuning: TuningSummary | None = Field(None, description="how --tune-budget chose the overrides (not part of the cell's identity)")

    @property
    def row(self) -> str:
        """The leaderboard row: the label (or model), plus ``[int8]``, ``[linucb]`` etc. for a post-training cell."""
        base = self.label or self.model
        variant = self.compress or self.rerank
        return f"{base} [{variant}]" if variant else base

    @property
    def post_training(self) -> bool:
        """A compressed or re-ranked cell: it loads its twin's trained artifact instead of training."""
        return self.variant is not None

    @property
    def variant(self) -> str | None:
        """The post-training field that is set (``compress`` or ``rerank``), or None for a plain cell."""
        return next((name for name in POST_TRAINING if getattr(self, name) is not None), None)

    def twin(self) -> CellSpec:
        """The plain cell whose trained model a post-training cell uses."""
        return self.model_copy(update={k: None for k in POST_TRAINING})


def post_training_method(kind: str, value: str) -> Any:
    """The parsed method of a post-training field (UsageError when unknown): the one table of parsers."""
    if kind == "compress":
        from m6rec_bench import compress

        return compress.parse(value)
    if kind == "rerank":
        from m6rec_bench import rerank

        return rerank.parse(value)
    raise ValueError(f"unknown post-training kind {kind!r}; known: {', '.join(POST_TRAINING)}")


def check_device(device: str) -> None:
    """Refuse ``cuda`` without a GPU, and unknown devices, with a clear message (torch is imported
    only to check ``cuda``: planning a CPU suite stays light)."""
    if device not in ("cpu", "cuda"):
        raise UsageError(f"device '{device}' is not supported; use --device cpu or --device cuda")
    if device != "cuda":
        return
    import torch

    if not torch.cuda.is_available():
        raise UsageError(
            f"--device cuda was asked for but torch {torch.__version__} sees no CUDA GPU; use --device cpu"
        )


def plugin_settings(entry: ModelEntry, overrides: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split overrides into (validated plugin config, remaining RecBole settings); UsageError when bad.

    Every override passes :func:`m6rec_bench.config_keys.check_overrides` (the allow-list: no file
    keys, no unknown keys, no wrong types) — here, so ``validate_spec`` and ``build_config_dict``
    (hence :func:`resolve` and everything that resolves a cell) all hold it.
    """
    config_keys.check_overrides(entry, overrides)
    if entry.plugin is None:
        return {}, dict(overrides)
    fields = entry.plugin.config_cls.model_fields
    mine = {k: v for k, v in overrides.items() if k in fields}
    rest = {k: v for k, v in overrides.items() if k not in fields}
    try:
        return entry.plugin.recbole_settings(mine), rest
    except ValidationError as exc:
        msgs = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']} (got {e.get('input')!r})" for e in exc.errors())
        raise UsageError(f"bad config for plugin '{entry.name}': {msgs} — fix its overrides") from None
    except ValueError as exc:
        raise UsageError(f"bad config for plugin '{entry.name}': {exc}") from None


def check_protocol(entry: ModelEntry, protocol: Protocol) -> None:
    """Refuse a model the protocol cannot evaluate, or a plugin restricted to other protocols."""
    protocol.check_model(entry.name, entry.model_type)
    allowed = entry.plugin.protocols if entry.plugin is not None else None
    if allowed and protocol.name not in allowed:
        raise UsageError(f"plugin '{entry.name}' runs only under {' or '.join(f'--protocol {p}' for p in allowed)}, "
                         f"not '{protocol.name}' — run it there, or drop it from --models")


def validate_spec(spec: CellSpec, *, device: bool = True) -> ModelEntry:
    """Check a cell's model, protocol, device (unless ``device=False``), plugin config and
    post-training method (UsageError) without touching its dataset: the first half of :func:`resolve`."""
    entry = registry.get(spec.model)
    check_protocol(entry, get_protocol(spec.protocol))
    if device:
        check_device(spec.device)
    plugin_settings(entry, spec.overrides)
    set_ = [name for name in POST_TRAINING if getattr(spec, name) is not None]
    for name in set_:
        post_training_method(name, getattr(spec, name))
    if len(set_) > 1:
        raise UsageError(f"cell {spec.row}: a cell is either compressed or re-ranked, not both — drop one")
    return entry


def build_config_dict(
    spec: CellSpec, entry: ModelEntry, protocol: Protocol, ds: PreparedDataset, extra: dict[str, Any]
) -> dict[str, Any]:
    """The RecBole ``config_dict`` of a cell: protocol, then model, then the user's overrides."""
    plugin_cfg, rest = plugin_settings(entry, spec.overrides)
    config: dict[str, Any] = {
        **protocol.settings(),
        **extra,
        **entry.recbole_config,
        "seed": spec.seed,
        "use_gpu": spec.device == "cuda",
        "m6_item_text_fields": list(ds.features.item_text),
        "m6_has_kg": ds.features.kg,
        "m6_dataset_checksum": ds.checksum,
        **plugin_cfg,
        **rest,
    }
    if spec.epochs is not None:
        config["epochs"] = spec.epochs
    return config


def code_of(entry: ModelEntry) -> str:
    """The code identity of a cell of ``entry``: the core package's, plus its plugin package's
    (:func:`m6rec_bench.engine.environment.code_identity`; a baseline's ignores plugin edits)."""
    folders = [environment.package_folder(__name__)]
    if entry.plugin is not None:
        folders.append(environment.package_folder(entry.plugin.model_cls.__module__))
    return environment.code_identity(*folders)


def cell_id(spec: CellSpec, entry: ModelEntry, ds: PreparedDataset, config: dict[str, Any]) -> str:
    """Identity of a cell: resolved settings + dataset checksum + versions of the code that matters,
    down to the commit and uncommitted changes (:func:`code_of`): resume never reuses a record of
    other code."""
    versions = {k: v for k, v in environment.versions().items() if k in ("m6rec-bench", "recbole", "torch")}
    if entry.kind == "plugin":
        versions[entry.package] = entry.version
    payload = {
        "model": entry.name,
        "protocol": spec.protocol,
        "dataset_checksum": ds.checksum,
        "device": spec.device,
        "config": {k: v for k, v in config.items() if k not in _VOLATILE},
        "versions": versions,
        "code": code_of(entry),
        "record_schema": SCHEMA_VERSION,
    }
    # only when set: every plain cell keeps the id it always had; a variant carries its method's name
    for name in POST_TRAINING:
        if getattr(spec, name) is not None:
            payload[name] = post_training_method(name, getattr(spec, name)).name
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class ResolvedCell:
    """A cell ready to run (or to look up): everything :func:`resolve` found and checked.

    ``missing`` is what the dataset lacks of what the model needs: such a cell is not run (it is a
    ``skipped`` record), so it has no ``split`` and its ``config`` is only ``{"overrides": …}``.
    """

    spec: CellSpec
    entry: ModelEntry
    protocol: Protocol
    dataset: PreparedDataset  # the prepared dataset the spec names
    split: PreparedDataset | None  # what the protocol made of it (the dataset itself for default)
    extra: dict[str, Any]  # the protocol's extra RecBole settings (e.g. benchmark_filename)
    config: dict[str, Any]  # the RecBole config_dict
    cell_id: str
    missing: frozenset[str] = frozenset()

    @property
    def runnable(self) -> bool:
        return not self.missing

    def with_overrides(self, overrides: dict[str, Any]) -> ResolvedCell:
        """The same cell with other overrides (a tuning trial): checked and hashed again, the split reused."""
        spec = self.spec.model_copy(update={"overrides": overrides})
        return resolve(spec, prepared=self.dataset, split=(self.split, self.extra) if self.runnable else None)


def resolve(spec: CellSpec, prepared: PreparedDataset | None = None, *, check_device: bool = True,
            split: tuple[PreparedDataset, dict[str, Any]] | None = None) -> ResolvedCell:
    """Resolve a cell: every check (:func:`validate_spec`), its dataset (``prepared`` or by name), the
    protocol's split, the RecBole config and the cell id. UsageError for bad input, before anything runs.

    ``check_device=False`` resolves a cell trained elsewhere (a ``cuda`` record loaded on a CPU);
    ``split`` reuses a split already made for the same dataset, protocol and seed.
    """
    entry = validate_spec(spec, device=check_device)
    protocol = get_protocol(spec.protocol)
    if prepared is None:
        from m6rec_bench import datasets

        prepared = datasets.resolve(spec.dataset)
    missing = frozenset(entry.needs) - prepared.features.provides()
    if missing:
        config: dict[str, Any] = {"overrides": spec.overrides}
        return ResolvedCell(spec, entry, protocol, prepared, None, {}, config,
                            cell_id(spec, entry, prepared, config), missing)
    split_ds, extra = split if split is not None else protocol.prepare(prepared, spec.seed)
    config = build_config_dict(spec, entry, protocol, prepared, extra)
    return ResolvedCell(spec, entry, protocol, prepared, split_ds, extra, config, cell_id(spec, entry, prepared, config))


def check_record_spec(record: Any, path: Any) -> CellSpec:
    """The record's ``spec`` as a checked ``CellSpec`` (its overrides pass
    :func:`~m6rec_bench.config_keys.check_overrides`); UsageError naming the record when it has none,
    is malformed, disagrees with the record, or is refused."""
    if not record.spec:
        raise UsageError(f"{path} has no cell spec (written by an older m6rec-bench); retrain the cell to get a record "
                         "that can be loaded")
    try:
        spec = CellSpec(**record.spec)
    except ValidationError as exc:
        from m6rec_bench.untrusted import validation_summary

        raise UsageError(f"{path} is not a readable m6rec-bench record: {validation_summary(exc, prefix='spec.')} — "
                         "the record was edited or written by another m6rec-bench version") from None
    except TypeError as exc:
        raise UsageError(f"{path}: its spec is not a valid cell ({exc}) — was it edited?") from None
    try:  # on the CPU: a model trained on a GPU still loads where there is none (the loader picks the device)
        entry = validate_spec(spec.model_copy(update={"device": "cpu"}) if spec.device == "cuda" else spec)
    except UsageError as exc:
        raise UsageError(f"{path}: {exc}") from None
    for name, mine, theirs in (("model", entry.name, record.model), ("seed", spec.seed, record.seed),
                               ("protocol", spec.protocol, record.protocol)):
        if mine != theirs:
            raise UsageError(f"{path}: its spec's {name} ({mine!r}) differs from the record's ({theirs!r}) — was it edited?")
    return spec


__all__ = ["POST_TRAINING", "CellSpec", "ResolvedCell", "build_config_dict", "cell_id", "check_device",
           "check_protocol", "check_record_spec", "code_of", "plugin_settings", "post_training_method", "resolve",
           "validate_spec"]
