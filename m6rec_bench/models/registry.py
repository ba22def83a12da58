"""One registry of every runnable model: RecBole baselines and entry-point plugins.

Baselines are RecBole's own general and sequential recommenders, looked up by name with RecBole's
``get_model`` and never re-implemented; sequential ones run only under ``--protocol sequential``.
The one exception is :data:`OWN_BASELINES`: a baseline RecBole gets wrong, written here beside
RecBole's (``Popularity`` next to RecBole's ``Pop``, which stays for agreement checks with raw
RecBole). Plugins come only from installed entry points in the
``m6rec_bench.plugins`` group (built-ins included); ``M6BENCH_PLUGINS=a,b`` restricts which load.
A plugin that fails to import is reported as broken with its error and never stops the others —
whatever it raises, ``sys.exit()`` included (only Ctrl-C goes through).
"""

from __future__ import annotations

import importlib
import os
import traceback
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import metadata

from m6rec_bench.errors import M6BenchError, UsageError
from m6rec_bench.lookup import Registry
from m6rec_bench.models.plugin import ColumnSet, Plugin, PluginCard

ENTRY_POINT_GROUP = "m6rec_bench.plugins"
ALLOW_ENV = "M6BENCH_PLUGINS"

#: The classical baselines of the default suite (issue #3), in leaderboard order.
DEFAULT_BASELINES: tuple[str, ...] = ("Pop", "ItemKNN", "BPR", "NeuMF", "LightGCN", "MultiVAE")

#: General recommenders: RecBole's that run on this stack, plus :data:`OWN_BASELINES` (KGAT needs
#: dgl, KGIN/MCCLK torch_scatter — not installable here; context-aware and sequential models need
#: other protocols).
BASELINES: tuple[str, ...] = (
    "Pop", "Popularity", "ItemKNN", "BPR", "NeuMF", "ConvNCF", "DMF", "FISM", "NAIS", "SpectralCF", "GCMC",
    "NGCF", "LightGCN", "DGCF", "LINE", "MultiVAE", "MultiDAE", "MacridVAE", "CDAE", "ENMF",
    "NNCF", "RaCT", "RecVAE", "EASE", "SLIMElastic", "SGL", "ADMMSLIM", "NCEPLRec", "SimpleX",
    "NCL", "DiffRec", "LDiffRec", "Random",
)

#: RecBole sequential recommenders that run on this stack (tested under ``--protocol sequential``).
#: All train with RecBole's default ``loss_type: CE`` over every item, which needs
#: ``train_neg_sample_args: None`` (RecBole refuses sampled negatives with CE). Models needing item
#: features (FDSA, GRU4RecF, SASRecF, S3Rec), a KG (KSR, GRU4RecKG) or labels (DIN, DIEN) are left out.
SEQUENTIAL_BASELINES: tuple[str, ...] = (
    "GRU4Rec", "SASRec", "SRGNN", "NARM", "STAMP", "Caser", "NextItNet", "GCSAN", "LightSANs", "BERT4Rec", "CORE",
)
_SEQUENTIAL_SETTINGS: dict[str, object] = {"train_neg_sample_args": None}

#: Baselines of m6rec-bench's own (name -> ``module:Class``), where RecBole's model of the same idea
#: is wrong; listed in :data:`BASELINES` like RecBole's, built from this class instead of ``get_model``.
OWN_BASELINES: dict[str, str] = {"Popularity": "m6rec_bench.models.popularity:Popularity"}
_OWN_DESCRIPTIONS = {
    "Popularity": "most training interactions first, ties to the lower item id (exact counts; RecBole's Pop is not)",
}

#: What ``models list`` says of a RecBole baseline that an own baseline replaces.
_SUPERSEDED = {
    "Pop": "RecBole Pop: counts an item at most once per training batch, sampled negatives included "
           "(RUCAIBox/RecBole#2198); kept for agreement with RecBole — use Popularity",
}


class PluginLoadError(M6BenchError):
    """An installed plugin's entry point failed to load (import error, bad object, card mismatch)."""


@dataclass(frozen=True)
class ModelEntry:
    """A row of ``m6bench models list``: a baseline or a plugin, described without loading it."""

    name: str
    kind: str  # "baseline" | "plugin"
    family: str
    description: str
    needs: frozenset[str]
    package: str
    version: str
    model_type: str = "general"
    #: fixed RecBole settings of a baseline (a plugin's are in ``plugin.recbole_config``)
    recbole_config: dict[str, object] = field(default_factory=dict)
    in_default_suite: bool = False
    #: the only protocols a plugin runs under (None: every protocol of its model type)
    protocols: tuple[str, ...] | None = None
    #: a plugin's leaderboard column sets and fold-in rule name, as its card declares them
    column_sets: tuple[ColumnSet, ...] = ()
    fold_in: str | None = None
    source: _Source | None = field(default=None, repr=False, compare=False)

    @property
    def model_cls(self) -> type | None:
        """The model class to build: a plugin's, an own baseline's (imported on first use), or None
        for a RecBole baseline, which RecBole's ``get_model`` resolves by name."""
        if self.source is not None:
            return self.plugin.model_cls  # type: ignore[union-attr]
        target = OWN_BASELINES.get(self.name)
        if target is None:
            return None
        module, _, cls = target.partition(":")
        return getattr(importlib.import_module(module), cls)

    @property
    def plugin(self) -> Plugin | None:
        """The loaded plugin (imported on first use; None for a baseline).

        Raises :class:`PluginLoadError` when the plugin's entry point cannot be loaded.
        """
        if self.source is None:
            return None
        return next(p for p in _load(self.source) if p.name == self.name)


@dataclass(frozen=True)
class BrokenPlugin:
    """An entry point that could not be loaded, with the reason."""

    name: str
    package: str
    version: str
    error: str


@dataclass(frozen=True)
class _Source:
    """One ``m6rec_bench.plugins`` entry point and, when its package declares them, its cards."""

    ep: metadata.EntryPoint
    package: str
    version: str
    cards: tuple[PluginCard, ...] | None


def _allowed() -> set[str] | None:
    raw = os.environ.get(ALLOW_ENV, "").strip()
    if not raw:
        return None
    return {part.strip() for part in raw.split(",") if part.strip()}


def _load_entry_point(ep: metadata.EntryPoint) -> list[Plugin]:
    obj = ep.load()
    if callable(obj) and not isinstance(obj, Plugin):
        obj = obj()
    items = obj if isinstance(obj, list | tuple) else [obj]
    for item in items:
        if not isinstance(item, Plugin):
            raise TypeError(f"entry point {ep.name!r} gave {type(item).__name__}, expected m6rec_bench Plugin")
    return list(items)


def _declared_cards(ep: metadata.EntryPoint) -> tuple[PluginCard, ...] | None:
    """The cards the entry point's top-level package declares for it (``PLUGIN_CARDS``), if any.

    Only a package's top-level module is imported here, and only when the entry point names a
    submodule of it (``pkg.heavy:plugin``): a single-module plugin (``my_plugin:plugin``) is its own
    top level, and importing it is loading it, so it is simply loaded. Anything unexpected means
    "no cards": the plugin is then loaded, which reports a real problem as a broken plugin.
    """
    top = ep.module.partition(".")[0]
    if top == ep.module:
        return None
    try:
        declared = getattr(importlib.import_module(top), "PLUGIN_CARDS", None)
    except KeyboardInterrupt:
        raise
    except BaseException:  # noqa: BLE001 - SystemExit too: loading the entry point itself will report it
        return None
    if not isinstance(declared, dict) or ep.name not in declared:
        return None
    value = declared[ep.name]
    cards = tuple(value) if isinstance(value, list | tuple) else (value,)
    return cards if cards and all(isinstance(c, PluginCard) for c in cards) else None


_loaded: dict[str, tuple[Plugin, ...] | PluginLoadError] = {}


def _load(source: _Source) -> tuple[Plugin, ...]:
    """Import one entry point's plugins once (the result, or the failure, is remembered).

    A declared card must describe the loaded plugin exactly: a card that drifted from its plugin
    would list one thing and run another.
    """
    key = source.ep.name
    if key not in _loaded:
        try:
            plugins_ = tuple(_load_entry_point(source.ep))
            if source.cards is not None and tuple(p.card for p in plugins_) != source.cards:
                actual = [p.card for p in plugins_]
                raise ValueError(f"its PLUGIN_CARDS entry {list(source.cards)} does not match the loaded "
                                 f"plugins {actual}; update the card in {source.ep.module.partition('.')[0]}")
            _loaded[key] = plugins_
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # noqa: BLE001 - a broken plugin never stops the others, whatever it raises (SystemExit…)
            last = traceback.format_exception_only(type(exc), exc)[-1].strip()
            _loaded[key] = PluginLoadError(last)
    result = _loaded[key]
    if isinstance(result, PluginLoadError):
        raise result
    return result


def _plugin_entry(source: _Source, card: PluginCard) -> ModelEntry:
    return ModelEntry(card.name, "plugin", card.family, card.description, frozenset(card.needs), source.package,
                      source.version, model_type=card.model_type, in_default_suite=card.in_default_suite,
                      protocols=card.protocols, column_sets=tuple(card.column_sets), fold_in=card.fold_in,
                      source=source)


@lru_cache(maxsize=1)
def _discover() -> tuple[tuple[ModelEntry, ...], tuple[BrokenPlugin, ...]]:
    """Plugin rows from declared cards; entry points without cards are loaded to describe them."""
    allowed = _allowed()
    entries: list[ModelEntry] = []
    broken: list[BrokenPlugin] = []
    for ep in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        if allowed is not None and ep.name not in allowed:
            continue
        dist = ep.dist
        source = _Source(ep, dist.name if dist else "?", dist.version if dist else "?", _declared_cards(ep))
        if source.cards is not None:
            entries += [_plugin_entry(source, card) for card in source.cards]
            continue
        try:
            entries += [_plugin_entry(source, p.card) for p in _load(source)]
        except PluginLoadError as exc:
            broken.append(BrokenPlugin(ep.name, source.package, source.version, str(exc)))
    return tuple(entries), tuple(broken)


def _load_all() -> tuple[dict[str, Plugin], list[BrokenPlugin]]:
    """Load every discovered plugin: the loaded ones by name, and every entry point that failed."""
    entries, broken = _discover()
    loaded: dict[str, Plugin] = {}
    failed = list(broken)
    for source in dict.fromkeys(e.source for e in entries if e.source is not None):
        try:
            loaded.update((p.name, p) for p in _load(source))
        except PluginLoadError as exc:
            failed.append(BrokenPlugin(source.ep.name, source.package, source.version, str(exc)))
    return loaded, sorted(failed, key=lambda b: b.name)


def refresh() -> None:
    """Forget discovered plugins (after installing a package or changing ``M6BENCH_PLUGINS``)."""
    _discover.cache_clear()
    _loaded.clear()


def plugins() -> dict[str, Plugin]:
    """Loaded plugins by name (imports every plugin)."""
    return _load_all()[0]


def broken_plugins() -> list[BrokenPlugin]:
    """Entry points that failed to load (imports every plugin to find out)."""
    return _load_all()[1]


def plugin_column_sets() -> list[ColumnSet]:
    """The column sets the discovered plugins declare, in entry-point order (from cards: nothing more imported)."""
    return [cs for e in _discover()[0] for cs in e.column_sets]


def fold_in_rules() -> list[str]:
    """Names of the discovered plugins' fold-in rules, each once, in entry-point order (from cards)."""
    return list(dict.fromkeys(e.fold_in for e in _discover()[0] if e.fold_in is not None))


def known_broken_plugins() -> list[BrokenPlugin]:
    """Entry points known to be broken without importing more: those without cards that failed,
    and those with cards that failed when something loaded them."""
    entries, broken = _discover()
    failed = list(broken)
    for source in dict.fromkeys(e.source for e in entries if e.source is not None):
        if isinstance(_loaded.get(source.ep.name), PluginLoadError):
            failed.append(BrokenPlugin(source.ep.name, source.package, source.version, str(_loaded[source.ep.name])))
    return sorted(failed, key=lambda b: b.name)


def is_loaded(entry: ModelEntry) -> bool:
    """Whether a plugin entry's code has been imported successfully (baselines: always)."""
    return entry.source is None or isinstance(_loaded.get(entry.source.ep.name), tuple)


@lru_cache(maxsize=1)
def _recbole_version() -> str:
    """RecBole's version from its metadata: importing RecBole (and torch) costs seconds."""
    return metadata.version("recbole")


def baseline_entry(name: str) -> ModelEntry:
    """A RecBole baseline's row, without importing RecBole."""
    version = _recbole_version()
    if name in SEQUENTIAL_BASELINES:
        return ModelEntry(name, "baseline", "recbole", f"RecBole {name} (sequential)", frozenset({"inter"}),
                          "recbole", version, model_type="sequential",
                          recbole_config=dict(_SEQUENTIAL_SETTINGS))
    if name in OWN_BASELINES:
        own = metadata.version("m6rec-bench")
        return ModelEntry(name, "baseline", "m6rec-bench", _OWN_DESCRIPTIONS[name], frozenset({"inter"}),
                          "m6rec-bench", own)
    return ModelEntry(name, "baseline", "recbole", _SUPERSEDED.get(name, f"RecBole {name}"), frozenset({"inter"}),
                      "recbole", version)


def all_models() -> list[ModelEntry]:
    """Every runnable model: baselines first (general, then sequential), then plugins."""
    return [baseline_entry(n) for n in BASELINES + SEQUENTIAL_BASELINES] + list(_discover()[0])


#: Baseline names (case-insensitive), resolved without discovering plugins.
_BASELINE_NAMES: Registry[str] = Registry("model")
for _name in BASELINES + SEQUENTIAL_BASELINES:
    _BASELINE_NAMES.register(_name, _name)

_UNKNOWN_MODEL = "model '{name}' not found{hint} (m6bench models list)"


def models() -> Registry[ModelEntry]:
    """Every runnable model by name (case-insensitive): :func:`all_models` as a registry."""
    found: Registry[ModelEntry] = Registry("model", unknown=_UNKNOWN_MODEL)
    for entry in all_models():
        if entry.name not in found:  # the first of names equal but for case (a baseline before a plugin)
            found.register(entry.name, entry)
    return found


def get(name: str) -> ModelEntry:
    """Resolve a model name (case-insensitive) or raise a UsageError suggesting the nearest name.

    Baselines resolve without loading any plugin (importing PyKEEN, PyG and sentence-transformers
    costs seconds that a BPR-only run should not pay).
    """
    baseline = _BASELINE_NAMES.find(name)
    if baseline is not None:
        return baseline_entry(baseline)
    known = models()
    found = known.find(name)
    if found is not None:
        try:
            found.plugin  # noqa: B018 - load it now, so a broken plugin is a usage error here, not a crash later
        except PluginLoadError as exc:
            raise UsageError(f"plugin '{found.name}' is installed but failed to load: {exc} (m6bench plugins list)") from None
        return found
    for b in _discover()[1]:
        if b.name.lower() == name.lower():
            raise UsageError(f"plugin '{name}' is installed but failed to load: {b.error} (m6bench plugins list)")
    raise known.error(name)


def default_suite(protocol: str = "default", *, loadable_only: bool = True) -> list[str]:
    """Models ``m6bench run --protocol P`` runs without ``--models``: P's baselines, then default plugins of P's kind.

    The baselines are the protocol's ``default_models`` (the default protocol's are
    :data:`DEFAULT_BASELINES`); plugins join when ``in_default_suite`` and built for the protocol's
    own kind of model (general plugins under ``default`` / ``cold-item``, sequential ones under
    ``sequential``). A plugin that fails to load is left out (``plugins list`` reports it) unless
    ``loadable_only`` is False, which decides from the cards alone without importing any plugin.
    """
    from m6rec_bench.protocols import get_protocol

    proto = get_protocol(protocol)
    baselines = proto.default_models if proto.default_models is not None else DEFAULT_BASELINES
    plugins_ = [e for e in _discover()[0] if e.in_default_suite and e.model_type == proto.model_type]
    return list(baselines) + [e.name for e in plugins_ if not loadable_only or _loads(e)]


def _loads(entry: ModelEntry) -> bool:
    try:
        entry.plugin  # noqa: B018 - loading is the question
    except PluginLoadError:
        return False
    return True
