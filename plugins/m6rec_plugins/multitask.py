r"""M6-Fusion-MTL: the M6-Fusion encoder with a ranking head and a rating head, trained jointly.

One shared encoder: the user vector :math:`u` and fused item vector :math:`e_j` of
:class:`m6rec_plugins.fusion.M6Fusion` (ID, LightGCN graph, KG and text modalities, gated; see that
module). Two heads read it:

* **ranking head** — M6-Fusion's own scores and loss, unchanged (:math:`\cos(u, e_j)` with a
  softmax over items, or :math:`u^\top e_j` with BPR, as configured). The loss is computed by
  ``M6Fusion.calculate_loss`` itself, so this row ranks exactly as M6-Fusion does when the rating
  task is switched off, and RecBole's full-sort metrics compare with M6-Fusion's.
* **rating head** — the explicit rating of an observed pair (Ruder, "An Overview of Multi-Task
  Learning in Deep Neural Networks", arXiv 1706.05098: hard parameter sharing, one encoder, one
  head per task):

  .. math::

      \hat r_{uj} = \mu + b_u + b_j + \operatorname{MLP}([u;\, e_j;\, u \odot e_j])

  :math:`\mu` the global mean of the training ratings, :math:`b_u, b_j` learned biases (biased
  matrix factorisation: Koren, Bell & Volinsky, "Matrix Factorization Techniques for Recommender
  Systems", IEEE Computer 2009), and a two-layer MLP over the concatenation and the element-wise
  product (as in NCF / NeuMF: He et al., "Neural Collaborative Filtering", WWW 2017). Why an MLP
  rather than a biased dot product :math:`\mu + b_u + b_j + u^\top e_j`: under the default softmax
  loss the ranking head is a temperature-scaled *cosine*, which fixes the angles between
  :math:`u` and :math:`e_j` for ranking; a dot product would make the rating read those same
  angles (and norms) on a 1–5 scale, so the two losses would pull the one geometry against each
  other. The MLP reads the shared vectors but has its own parameters to map them onto ratings,
  and the output layer starts at zero, so training starts from the biased-mean predictor
  :math:`\mu`. The head sees the vectors after modality dropout, like the ranking loss: an item
  without training interactions is rated from its KG and text vectors (:math:`b_j = 0`).

  Trained with the mean squared error on the ratings of the batch's positive interactions
  (RecBole's ``RATING_FIELD``; a dataset without that column raises :class:`DataError`). For
  RMSE / MAE a prediction is clipped to the training ratings' range; ranking uses it unclipped.

Loss weighting (``mtl_weighting``):

* ``fixed``: :math:`L = w_{rank} L_{rank} + w_{rating} L_{rating}` (``rank_weight``,
  ``rating_weight``).
* ``uncertainty``: Kendall, Gal & Cipolla, "Multi-Task Learning Using Uncertainty to Weigh Losses
  for Scene Geometry and Semantics", CVPR 2018, Eq. 7 with :math:`s_t = \log\sigma_t^2` learned:
  :math:`L = \sum_t e^{-s_t} L_t + s_t` (twice the paper's :math:`\tfrac12 e^{-s_t}L_t +
  \tfrac12 s_t`, the same optimum :math:`s_t = \log L_t`). The weights are then ignored except
  that a task whose weight is 0 is left out.

A task with weight 0 is not computed. With ``rank_weight = 0`` (the *rating only* ablation) the
model is a single-task rating predictor and ranks by its predicted rating (``predict`` and
``full_sort_predict`` use the rating head), the classical way of turning a rating model into a
top-N recommender (Cremonesi, Koren & Turrin, "Performance of Recommender Algorithms on Top-N
Recommendation Tasks", RecSys 2010). ``rating_weight = 0`` is M6-Fusion with an untrained head;
it reports no RMSE.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field, model_validator
from recbole.utils import FeatureType
from torch import nn
from torch.nn import functional as F

from m6rec_bench.plugin_api import DataError, Plugin, loader_dataset
from m6rec_plugins import fusion
from m6rec_plugins.cards import RATING_COLUMNS
from m6rec_plugins.fusion import FusionConfig, M6Fusion

NAME = "M6-Fusion-MTL"

#: The inter columns this plugin loads: RecBole's dataset yaml for anything but ``ml-100k`` loads
#: only user and item (``sample.yaml``), so the rating column must be asked for.
INTER_COLUMNS = ["user_id", "item_id", "rating", "timestamp"]

#: The most (user, item) pairs the rating head scores at once in ``full_sort_predict``.
PAIRS_PER_CHUNK = 2**18


class MTLConfig(FusionConfig):
    """:class:`~m6rec_plugins.fusion.FusionConfig` plus the rating head and the loss weighting."""

    mtl_weighting: Literal["fixed", "uncertainty"] = "fixed"
    rank_weight: float = Field(1.0, ge=0.0, description="weight of the ranking loss; 0 = rating only")
    rating_weight: float = Field(1.0, ge=0.0, description="weight of the rating MSE; 0 = ranking only")
    rating_hidden: int = Field(64, ge=1, description="hidden width of the rating head's MLP")

    @model_validator(mode="after")
    def _one_task(self) -> MTLConfig:
        if self.rank_weight == 0 and self.rating_weight == 0:
            raise ValueError("rank_weight and rating_weight are both 0: give at least one task a positive weight")
        return self


def search_space(trial: Any) -> dict[str, Any]:
    """Optuna search space: M6-Fusion's, plus the weighting, the rating weight and the head's width."""
    return {
        **fusion.search_space(trial),
        "mtl_weighting": trial.suggest_categorical("mtl_weighting", ["fixed", "uncertainty"]),
        "rating_weight": trial.suggest_float("rating_weight", 0.01, 10.0, log=True),
        "rating_hidden": trial.suggest_categorical("rating_hidden", [32, 64, 128]),
    }


class RatingHead(nn.Module):
    r""":math:`\hat r_{uj} = \mu + b_u + b_j + \operatorname{MLP}([u; e_j; u \odot e_j])` (module doc)."""

    def __init__(self, n_users: int, n_items: int, d: int, hidden: int, mu: float) -> None:
        super().__init__()
        self.user_bias = nn.Embedding(n_users, 1)
        self.item_bias = nn.Embedding(n_items, 1)
        self.mlp = nn.Sequential(nn.Linear(3 * d, hidden), nn.GELU(), nn.Linear(hidden, 1))
        self.register_buffer("mu", torch.tensor(float(mu)), persistent=False)
        nn.init.zeros_(self.user_bias.weight)
        nn.init.zeros_(self.item_bias.weight)
        nn.init.zeros_(self.mlp[2].weight)  # start at the global mean: the MLP learns a residual
        nn.init.zeros_(self.mlp[2].bias)

    def forward(self, users: torch.Tensor, items: torch.Tensor, u: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        """Ratings of the pairs (``users[k]``, ``items[k]``) with vectors ``u[k]``, ``e[k]``: shape [B]."""
        x = torch.cat([u, e, u * e], dim=-1)
        return self.mu + self.user_bias(users).squeeze(-1) + self.item_bias(items).squeeze(-1) + self.mlp(x).squeeze(-1)

    def all_items(self, users: torch.Tensor, u: torch.Tensor, e_all: torch.Tensor) -> torch.Tensor:
        """Ratings of every user of ``users`` (vectors ``u``) for every item (vectors ``e_all``): [B, n_items]."""
        n_items = e_all.shape[0]
        items = torch.arange(n_items, device=e_all.device)
        rows = max(1, PAIRS_PER_CHUNK // max(1, n_items))
        out = []
        for start in range(0, len(users), rows):
            uu, vv = users[start:start + rows], u[start:start + rows]
            b = len(uu)
            pair_u = vv.unsqueeze(1).expand(b, n_items, -1)
            pair_e = e_all.unsqueeze(0).expand(b, n_items, -1)
            x = torch.cat([pair_u, pair_e, pair_u * pair_e], dim=-1)
            out.append(self.mu + self.user_bias(uu) + self.item_bias(items).view(1, -1) + self.mlp(x).squeeze(-1))
        return torch.cat(out, dim=0)


def rating_column(config: Any, dataset: Any) -> str:
    """The dataset's explicit-rating field (``RATING_FIELD``), or a DataError saying to use M6-Fusion."""
    field = config["RATING_FIELD"]
    name = config["dataset"]
    if not field or field not in dataset.inter_feat.columns:
        raise DataError(
            f"{NAME} learns explicit ratings, but dataset '{name}' has no rating column "
            f"'{field}' (RATING_FIELD) in its .inter file — use M6-Fusion (ranking only) for this dataset, "
            f"or add a '{field or 'rating'}:float' column"
        )
    if dataset.field2type[field] != FeatureType.FLOAT:
        raise DataError(
            f"{NAME}: the rating column '{field}' of dataset '{name}' is {dataset.field2type[field].value}, "
            f"not float — declare it '{field}:float' in the .inter header, or use M6-Fusion (ranking only)"
        )
    return field


class M6FusionMTL(M6Fusion):
    """M6-Fusion's encoder and ranking loss plus a rating head, weighted fixed or by uncertainty (module doc)."""

    #: evaluation caches, rebuilt on demand: mid-cell checkpoints leave them out (plugin API, "cache_attributes")
    cache_attributes = ("_cache", "_raw_cache")

    def __init__(self, config: Any, dataset: Any) -> None:
        field = rating_column(config, dataset)  # before the (costly) content vectors are loaded
        super().__init__(config, dataset)
        self.RATING = field
        self.weighting = str(config["mtl_weighting"])
        self.rank_weight = float(config["rank_weight"])
        self.rating_weight = float(config["rating_weight"])
        ratings = dataset.inter_feat[field].float()
        if len(ratings) == 0 or not torch.isfinite(ratings).all():
            raise DataError(f"{NAME}: the training ratings of dataset '{config['dataset']}' are empty or not finite")
        self.register_buffer("rating_range", torch.stack([ratings.min(), ratings.max()]), persistent=False)
        self.rating_head = RatingHead(self.n_users, self.n_items, self.d, int(config["rating_hidden"]),
                                      float(ratings.mean()))
        nn.init.xavier_uniform_(self.rating_head.mlp[0].weight)  # as the encoder's own layers
        nn.init.zeros_(self.rating_head.mlp[0].bias)
        if self.weighting == "uncertainty":
            #: :math:`s_t = \log\sigma_t^2` of the ranking and the rating task (Kendall et al. 2018)
            self.task_log_var = nn.Parameter(torch.zeros(2))
        self._raw_cache: tuple[torch.Tensor, torch.Tensor] | None = None
        self._tap: dict[str, Any] | None = None

    @property
    def ranks_by_rating(self) -> bool:
        """A rating-only model (``rank_weight == 0``) ranks by its predicted rating."""
        return self.rank_weight == 0

    @property
    def learns_rating(self) -> bool:
        return self.rating_weight > 0

    # ------------------------------------------------------------ the shared encoder pass, tapped

    def _propagate(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        out = super()._propagate()
        if self._tap is not None:
            self._tap["user_all"] = out[0]
        return out

    def _item_vectors(self, items: torch.Tensor | None, item_graph: torch.Tensor | None, drop: bool) -> torch.Tensor:
        out = super()._item_vectors(items, item_graph, drop)
        if self._tap is not None and "items" not in self._tap:
            self._tap["items"], self._tap["vectors"] = items, out
        return out

    def _ranking_pass(self, interaction: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """M6-Fusion's own loss, and the user and positive-item vectors its encoder pass computed."""
        pos = interaction[self.ITEM_ID]
        self._tap = {}
        try:
            loss = super().calculate_loss(interaction)
            tap = self._tap
        finally:
            self._tap = None
        items = tap.get("items")
        if "user_all" not in tap or items is None or not torch.equal(items[: len(pos)], pos):
            raise RuntimeError(f"{NAME}: M6Fusion.calculate_loss no longer encodes the positives first; "
                               "update m6rec_plugins.multitask._ranking_pass")
        u = tap["user_all"].index_select(0, interaction[self.USER_ID])
        return loss, u, tap["vectors"][: len(pos)]

    # ------------------------------------------------------------ training

    def calculate_loss(self, interaction: Any) -> torch.Tensor:
        self._raw_cache = None
        user, pos = interaction[self.USER_ID], interaction[self.ITEM_ID]
        losses: list[tuple[int, float, torch.Tensor]] = []  # (task index, fixed weight, loss)
        if self.ranks_by_rating:  # rating only: one encoder pass for the positives
            self._cache = None
            user_all, item_graph = self._propagate()
            u = user_all.index_select(0, user)
            pos_e = self._item_vectors(pos, item_graph, drop=True)
            reg = self.reg_weight * self.reg_loss(self.user_embedding(user), self.item_embedding(pos))
        else:
            rank_loss, u, pos_e = self._ranking_pass(interaction)  # includes M6-Fusion's L2 term
            losses.append((0, self.rank_weight, rank_loss))
            reg = None
        if self.learns_rating:
            pred = self.rating_head(user, pos, u, pos_e)
            losses.append((1, self.rating_weight, F.mse_loss(pred, interaction[self.RATING].float())))
        if self.weighting == "uncertainty":
            s = self.task_log_var
            total = sum(torch.exp(-s[t]) * loss + s[t] for t, _, loss in losses)
        else:
            total = sum(w * loss for _, w, loss in losses)
        return total + reg if reg is not None else total

    # ------------------------------------------------------------ prediction

    def _encoder_vectors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw (unnormalised) user and fused item vectors, no dropout; cached while evaluating."""
        if self._raw_cache is None or self.training:
            user_all, item_graph = self._propagate()
            cache = (user_all, self._item_vectors(None, item_graph, drop=False))
            if self.training:
                return cache
            self._raw_cache = cache
        return self._raw_cache

    def predict_rating(self, users: torch.Tensor, items: torch.Tensor, clip: bool = True) -> torch.Tensor:
        """Predicted ratings of the pairs (``users[k]``, ``items[k]``), clipped to the training range."""
        user_all, item_all = self._encoder_vectors()
        pred = self.rating_head(users, items, user_all[users], item_all[items])
        return pred.clamp(self.rating_range[0], self.rating_range[1]) if clip else pred

    def predict(self, interaction: Any) -> torch.Tensor:
        if self.ranks_by_rating:
            return self.predict_rating(interaction[self.USER_ID], interaction[self.ITEM_ID], clip=False)
        return super().predict(interaction)

    def full_sort_predict(self, interaction: Any) -> torch.Tensor:
        if self.ranks_by_rating:
            users = interaction[self.USER_ID]
            user_all, item_all = self._encoder_vectors()
            return self.rating_head.all_items(users, user_all[users], item_all).view(-1)
        return super().full_sort_predict(interaction)

    def task_weights(self) -> dict[str, float]:
        """The effective weight of each active task: fixed, or :math:`e^{-s_t}` under uncertainty."""
        names = [("rank", self.rank_weight), ("rating", self.rating_weight)]
        if self.weighting == "uncertainty":
            s = self.task_log_var.detach()
            return {n: math.exp(-float(s[t])) for t, (n, w) in enumerate(names) if w > 0}
        return {n: w for n, w in names if w > 0}


# ---------------------------------------------------------------- extra metrics


def rating_errors(model: M6FusionMTL, dataset: Any, batch_size: int = 65536) -> tuple[np.ndarray, np.ndarray]:
    """(predicted, true) ratings of every interaction of ``dataset`` (a RecBole split), clipped predictions."""
    inter = dataset.inter_feat
    users, items = inter[model.USER_ID], inter[model.ITEM_ID]
    truth = inter[model.RATING].float()
    model.eval()
    preds = []
    with torch.no_grad():
        for start in range(0, len(users), batch_size):
            part = slice(start, start + batch_size)
            preds.append(model.predict_rating(users[part].to(model.device), items[part].to(model.device)).cpu())
    pred = torch.cat(preds) if preds else torch.zeros(0)
    return pred.numpy().astype(np.float64), truth.numpy().astype(np.float64)


def rating_metrics(run: Any) -> dict[str, dict[str, float]]:
    """``{"rating": {"rmse", "mae"}}`` of the rating head on the **test** interactions (none if untrained)."""
    model = run.model
    if not isinstance(model, M6FusionMTL) or not model.learns_rating:
        return {}
    pred, truth = rating_errors(model, loader_dataset(run.test_data))
    if len(truth) == 0:
        return {}
    err = pred - truth
    return {"rating": {"rmse": float(np.sqrt(np.mean(err**2))), "mae": float(np.mean(np.abs(err)))}}


plugin = Plugin(
    name=NAME,
    family="fusion",
    description="M6-Fusion encoder with jointly trained ranking and rating heads, fixed or uncertainty "
    "weighting (Kendall et al., CVPR 2018; arXiv 2205.08084)",
    config_cls=MTLConfig,
    model_cls=M6FusionMTL,
    needs=frozenset({"inter", "kg", "item_text"}),
    search_space=search_space,
    # Ratings on their own 1–5 scale: load the column (sample.yaml loads only user and item) and keep
    # ml-100k.yaml's ``normalize_all`` from min-max scaling it to [0, 1]. Neither changes the split
    # (random order) nor anything M6-Fusion reads.
    recbole_config={"learning_rate": 0.005, "load_col": {"inter": list(INTER_COLUMNS)}, "normalize_all": False},
    in_default_suite=False,
    ablations={
        "rating only": {"rank_weight": 0.0},
        "uncertainty": {"mtl_weighting": "uncertainty"},
    },
    extra_metrics=rating_metrics,
    column_sets=(RATING_COLUMNS,),
    fold_in=fusion.FOLD_IN,  # an M6Fusion: it folds in by M6-Fusion's rule
    modality_weights=fusion.modality_weights,
)
