"""KG-TransE: CKE-style BPR whose items carry pretrained PyKEEN knowledge-graph embeddings.

Two stages, as in CKE (Zhang et al., "Collaborative Knowledge Base Embedding for Recommender
Systems", KDD 2016), with the structural-knowledge part trained first and frozen:

1. :func:`entity_embeddings` trains a translational KG embedding (TransE, Bordes et al., NeurIPS
   2013; TransH and RotatE selectable with ``kg_model``) on the dataset's knowledge graph with
   PyKEEN's own sLCWA training loop — the dataset's ``.kg``/``.link`` files, or the item-attribute
   graph :mod:`m6rec_bench.sideinfo` builds for datasets without one. No link-prediction
   evaluation runs (``pipeline()`` would spend minutes on it). The result is cached in
   :mod:`m6rec_bench.embcache`, so each (dataset, KG model, KG config) trains once; the fusion
   plugin imports the same function and reuses the cache.
2. :class:`KGTransE` is BPR matrix factorisation whose item vector adds a learned linear projection
   of the frozen entity embedding to the item's ID embedding.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import random
from collections.abc import Iterator
from importlib import metadata
from typing import Any, Literal

import numpy as np
import torch
from recbole.model.abstract_recommender import GeneralRecommender
from recbole.model.init import xavier_normal_initialization
from recbole.model.loss import BPRLoss, EmbLoss
from recbole.utils import InputType
from torch import nn

from m6rec_bench.plugin_api import (
    EMBEDDING_SIZES,
    L2_WEIGHTS,
    RECBOLE_LEARNING_RATES,
    DataError,
    Plugin,
    PluginConfig,
    embcache,
    sideinfo,
)
from m6rec_plugins.towers import UserItemTower

log = logging.getLogger(__name__)

KGModelName = Literal["TransE", "TransH", "RotatE"]
#: Bump when :func:`train_kg` changes what it computes: old cache entries then stop matching.
KG_CACHE_VERSION = 1


class KGConfig(PluginConfig):
    """Hyper-parameters of :class:`KGTransE` and of the KG embedding it consumes.

    The ``kg_*`` fields fix the PyKEEN training (and so the cache key); defaults were chosen so
    the KG stage costs ~15 s on ml-100k (91,631 triples) on 2 CPU cores. ``reg_weight`` defaults
    to 0 like RecBole's BPR (which has no L2 term), so the untuned model starts as BPR does; its
    value is to be chosen on validation by
    ``m6bench tune --dataset movielens --model KG-TransE --trials 30``, whose trial 0 is this
    default and whose space holds 0 beside 1e-6…1e-2.
    """

    embedding_size: int = 64
    reg_weight: float = 0.0
    kg_model: KGModelName = "TransE"
    kg_dim: int = 64
    kg_epochs: int = 15
    kg_lr: float = 0.01
    kg_batch_size: int = 4096
    kg_num_negs: int = 1
    kg_seed: int = 42


#: The KG-training fields, with their defaults; other plugins (fusion) read these same keys.
KG_FIELDS: tuple[str, ...] = ("kg_model", "kg_dim", "kg_epochs", "kg_lr", "kg_batch_size", "kg_num_negs", "kg_seed")


def search_space(trial: Any) -> dict[str, Any]:
    """Optuna search space of :class:`KGConfig` (plus RecBole's learning rate).

    The collaborative part is BPR's: RecBole's BPR grid for ``learning_rate`` and
    ``embedding_size`` (https://recbole.io/hyperparameters/) and the usual L2 grid with 0, the
    default, so KG-TransE and BPR are tuned alike. The KG part follows PyKEEN's TransE/TransH/RotatE
    ranges (dimension 32–128, Adam learning rate 1e-3…5e-2), capped at 40 epochs for the 2-core budget.
    """
    return {
        "embedding_size": trial.suggest_categorical("embedding_size", list(EMBEDDING_SIZES)),
        "reg_weight": trial.suggest_categorical("reg_weight", list(L2_WEIGHTS)),
        "learning_rate": trial.suggest_categorical("learning_rate", list(RECBOLE_LEARNING_RATES)),
        "kg_model": trial.suggest_categorical("kg_model", ["TransE", "TransH", "RotatE"]),
        "kg_dim": trial.suggest_categorical("kg_dim", [32, 64, 128]),
        "kg_epochs": trial.suggest_int("kg_epochs", 5, 40, step=5),
        "kg_lr": trial.suggest_float("kg_lr", 1e-3, 5e-2, log=True),
    }


def _setting(config: Any, key: str, default: Any) -> Any:
    """``config[key]`` for a RecBole Config (None when absent) or a plain dict, else ``default``."""
    try:
        value = config[key]
    except (KeyError, TypeError):
        return default
    return default if value is None else value


def kg_settings(config: Any) -> dict[str, Any]:
    """The KG-training settings of ``config``, defaults filled in from :class:`KGConfig`."""
    defaults = KGConfig()
    out = {k: _setting(config, k, getattr(defaults, k)) for k in KG_FIELDS}
    return KGConfig(**out).model_dump(include=set(KG_FIELDS))


@contextlib.contextmanager
def isolated_rng() -> Iterator[None]:
    """Run a block without disturbing the global RNGs (python, numpy, torch).

    PyKEEN seeds the global generators when it builds a model; without this a cache miss and a
    cache hit would leave RecBole's model initialisation with different random states, and the
    same RecBole seed would no longer give the same scores.
    """
    py_state = random.getstate()
    np_state = np.random.get_state()
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        try:
            yield
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)


def _triples_digest(triples: np.ndarray) -> str:
    h = hashlib.sha256()
    for row in triples:
        h.update("\t".join(row).encode("utf-8"))
        h.update(b"\n")
    return h.hexdigest()


def train_kg(triples: np.ndarray, settings: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Train a PyKEEN KG embedding on string triples; return (entity labels, entity embeddings).

    PyKEEN's sLCWA training loop only (no evaluation), on CPU, with a fixed ``random_seed``.
    RotatE's complex embeddings are returned as ``[real | imaginary]`` (``2 * kg_dim`` columns).
    """
    from pykeen.models import RotatE, TransE, TransH
    from pykeen.training import SLCWATrainingLoop
    from pykeen.triples import TriplesFactory

    models = {"TransE": TransE, "TransH": TransH, "RotatE": RotatE}
    with isolated_rng():
        factory = TriplesFactory.from_labeled_triples(triples, create_inverse_triples=False)
        model = models[settings["kg_model"]](
            triples_factory=factory, embedding_dim=int(settings["kg_dim"]), random_seed=int(settings["kg_seed"])
        )
        loop = SLCWATrainingLoop(
            model=model,
            triples_factory=factory,
            optimizer="adam",
            optimizer_kwargs={"lr": float(settings["kg_lr"])},
            negative_sampler_kwargs={"num_negs_per_pos": int(settings["kg_num_negs"])},
            automatic_memory_optimization=False,  # its sub-batch probing costs an extra pass on CPU
        )
        log.info("training %s on %d triples (%d entities), %d epochs", settings["kg_model"], factory.num_triples,
                 factory.num_entities, settings["kg_epochs"])
        loop.train(
            triples_factory=factory, num_epochs=int(settings["kg_epochs"]), batch_size=int(settings["kg_batch_size"]),
            use_tqdm=False, pin_memory=False,
        )
        model.eval()
        with torch.no_grad():
            emb = model.entity_representations[0](indices=None).detach().cpu()
        if emb.is_complex():
            emb = torch.cat([emb.real, emb.imag], dim=-1)
    labels = np.empty(factory.num_entities, dtype=object)
    for label, idx in factory.entity_to_id.items():
        labels[idx] = label
    return labels.astype(str), emb.numpy().astype(np.float32)


def entity_embeddings(config: Any, dataset: Any) -> tuple[np.ndarray, np.ndarray]:
    """Pretrained KG entity embedding of every internal item id, and which items have one.

    Returns ``(emb, linked)``: ``emb`` is ``[n_items, d]`` float32 (zero rows for the padding item
    and items without an entity in the graph), ``linked`` is ``[n_items]`` bool. The KG is the
    dataset's ``.kg``/``.link`` or, without them, the item-attribute graph; training runs once per
    (dataset checksum, KG triples, KG model, KG settings) and is cached with
    :func:`m6rec_bench.embcache.load_or_compute`. ``config`` is a RecBole Config (or a dict with
    ``data_path`` and ``dataset``); missing ``kg_*`` keys take :class:`KGConfig`'s defaults.
    """
    kg = sideinfo.knowledge_graph(config, dataset)
    if len(kg.triples) == 0:
        raise DataError(f"dataset '{config['dataset']}': its knowledge graph has no triples")
    settings = kg_settings(config)
    key = {
        "dataset_checksum": _setting(config, "m6_dataset_checksum", None),
        "kg_source": kg.source,
        "triples_sha256": _triples_digest(kg.triples),
        "kg_model": settings["kg_model"],
        "kg_config": settings,
        "pykeen": metadata.version("pykeen"),
        "version": KG_CACHE_VERSION,
    }
    arrays = embcache.load_or_compute(
        "kg", key, lambda: dict(zip(("labels", "emb"), train_kg(kg.triples, settings), strict=True))
    )
    row_of = {label: i for i, label in enumerate(arrays["labels"].tolist())}
    table = arrays["emb"]
    out = np.zeros((len(kg.item_entities), table.shape[1]), dtype=np.float32)
    linked = np.zeros(len(kg.item_entities), dtype=bool)
    for item, entity in enumerate(kg.item_entities):
        row = row_of.get(entity) if entity is not None else None
        if item > 0 and row is not None:
            out[item] = table[row]
            linked[item] = True
    return out, linked


class KGTransE(UserItemTower, GeneralRecommender):
    r"""CKE-style BPR with frozen, pretrained TransE entity embeddings.

    Following CKE (Zhang et al., KDD 2016) the item vector is its collaborative ID embedding plus
    its knowledge embedding; here the knowledge part is a TransE (Bordes et al., "Translating
    Embeddings for Modeling Multi-relational Data", NeurIPS 2013) entity vector :math:`v_j`
    trained beforehand by PyKEEN and kept frozen, mapped by a learned projection :math:`W`:

    .. math::

        e_j = \eta_j + m_j W v_j + (1 - m_j)\,u, \qquad \hat y_{ij} = p_i^\top e_j

    where :math:`m_j` is 1 when item :math:`j` is linked to a KG entity and :math:`u` is a learned
    vector shared by unlinked items. :math:`W` starts at zero, so training starts from plain BPR
    and the knowledge term grows where it helps (zero rather than Xavier initialisation of :math:`W`:
    to be compared on validation by ``m6bench tune --dataset movielens --model KG-TransE --trials 30``
    run once with each initialisation; no test-set number decides it). Trained with BPR (Rendle et al., UAI 2009) plus
    ``reg_weight`` times RecBole's ``EmbLoss`` on the user and item ID embeddings.
    """

    input_type = InputType.PAIRWISE  # evaluation cache (``_eval_items``): UserItemTower's cache_attributes

    def __init__(self, config: Any, dataset: Any) -> None:
        super().__init__(config, dataset)
        self.embedding_size: int = config["embedding_size"]
        self.reg_weight: float = config["reg_weight"]
        kg_emb, linked = entity_embeddings(config, dataset)
        if kg_emb.shape[0] != self.n_items:
            raise DataError(f"KG embedding has {kg_emb.shape[0]} items, dataset {self.n_items}")
        self.register_buffer("kg_emb", torch.from_numpy(kg_emb), persistent=False)
        self.register_buffer("kg_linked", torch.from_numpy(linked).unsqueeze(1).float(), persistent=False)
        self.user_embedding = nn.Embedding(self.n_users, self.embedding_size)
        self.item_embedding = nn.Embedding(self.n_items, self.embedding_size)
        self.kg_proj = nn.Linear(kg_emb.shape[1], self.embedding_size, bias=False)
        self.unlinked = nn.Parameter(torch.zeros(self.embedding_size))
        self.loss = BPRLoss()
        self.reg_loss = EmbLoss()
        self.apply(xavier_normal_initialization)
        nn.init.zeros_(self.kg_proj.weight)  # start as plain BPR; the KG term grows where it helps
        self._eval_items: torch.Tensor | None = None

    def item_vectors(self, item: torch.Tensor | None = None) -> torch.Tensor:
        """Item vectors :math:`e_j` of ``item`` (every item when ``None``)."""
        if item is None:
            ids, kg, linked = self.item_embedding.weight, self.kg_emb, self.kg_linked
        else:
            ids, kg, linked = self.item_embedding(item), self.kg_emb[item], self.kg_linked[item]
        return ids + self.kg_proj(kg) + (1.0 - linked) * self.unlinked

    def calculate_loss(self, interaction: Any) -> torch.Tensor:
        user = interaction[self.USER_ID]
        pos_item = interaction[self.ITEM_ID]
        neg_item = interaction[self.NEG_ITEM_ID]
        user_e = self.user_embedding(user)
        pos_e, neg_e = self.item_vectors(pos_item), self.item_vectors(neg_item)
        loss = self.loss((user_e * pos_e).sum(dim=1), (user_e * neg_e).sum(dim=1))
        reg = self.reg_loss(user_e, self.item_embedding(pos_item), self.item_embedding(neg_item))
        return loss + self.reg_weight * reg



plugin = Plugin(
    name="KG-TransE",
    family="kg",
    description="CKE-style BPR with PyKEEN TransE entity embeddings (Zhang et al., KDD 2016)",
    config_cls=KGConfig,
    model_cls=KGTransE,
    needs=frozenset({"inter", "kg"}),
    search_space=search_space,
)
