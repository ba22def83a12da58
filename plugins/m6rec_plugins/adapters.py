"""M6-Adapt: pretrain on a source task, adapt to a target task with ~3 % of the parameters trained.

Ideas and the papers they come from:

* **M6-Rec option tuning** (Cui et al., "M6-Rec: Generative Pretrained Language Models are
  Open-Ended Recommender Systems", arXiv 2205.08084, Sec. 4): one pretrained model serves many
  tasks; each task trains only a small set of task-specific parameters while the shared backbone
  stays frozen, so a new task costs a few percent of the model's parameters.
* **Bottleneck adapters** (Houlsby et al., "Parameter-Efficient Transfer Learning for NLP", ICML
  2019): a residual :math:`x + W_{up}\\,\\mathrm{GELU}(W_{down} x)` with :math:`W_{up}` initialised
  to zero, so adaptation starts from exactly the pretrained function.
* **LoRA** (Hu et al., "LoRA: Low-Rank Adaptation of Large Language Models", ICLR 2022, Eq. 3): a
  frozen projection :math:`W_0` becomes :math:`W_0 x + \\frac{\\alpha}{r} B A x`, :math:`A\\in\\mathbb
  R^{r\\times k}` Kaiming-uniform, :math:`B\\in\\mathbb R^{d\\times r}` zero.

The backbone is M6-Fusion's item side (:mod:`m6rec_plugins.fusion`: ID embedding, the KG and text
content towers over the frozen PyKEEN / MiniLM vectors, the per-modality gate and modality
dropout) plus a user side that transfers between tasks whose users are disjoint: no user ID
embedding, but a projection of the user's history,

.. math::

    u = P\\Big(\\frac{1}{|H_u \\setminus \\{i\\}|}\\sum_{j\\in H_u\\setminus\\{i\\}} e_j\\Big),
    \\qquad \\hat y_{ui} = \\cos(u, e_i) / \\tau

with :math:`H_u` the user's training items, the positive :math:`i` left out during training (so a
user never sees the answer in its own vector) and :math:`e_j` the fused item vector. Loss: a softmax
over every item with training interactions, as M6-Fusion's default. The LightGCN graph modality of
M6-Fusion is **off**: its propagation is over one task's user-item graph, which a frozen backbone
could not carry to users it has never seen.

Modes (``mode``), all on the ``user-group`` protocol (:mod:`m6rec_bench.protocols.user_group`):

* ``adapter`` — pretrain the backbone on the source users' interactions (``source.inter``), freeze
  every backbone parameter and train only LoRA factors on the content towers' and the user
  projection's linear layers plus a bottleneck adapter on the user vector;
* ``full`` — the same pretrained backbone, every parameter fine-tuned on the target;
* ``scratch`` — no pretraining: the backbone trained on the target only.

Pretraining is a self-contained torch loop (``pretrain_epochs`` epochs, Adam, seeded, isolated
from the global RNGs) whose result is cached in ``cache_dir("pretrained")`` keyed by the source
file's sha256, the backbone and pretraining settings, the target's item catalogue and content
vectors, and the seed, so the ``adapter`` and ``full`` rows of one seed share one pretraining.
Source interactions with items the target split does not know (RecBole gives ids only to items of
``<split>.inter``) are left out of pretraining; their count is in the cache metadata.

Item degree features and the ID modality's availability follow the data the ID embedding learned
from: source interactions (pretraining, ``adapter``: the embedding is frozen), source + target
training interactions (``full``), target training interactions (``scratch``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field
from recbole.model.abstract_recommender import GeneralRecommender
from recbole.model.init import xavier_uniform_initialization
from recbole.utils import InputType
from torch import nn
from torch.nn import functional as F

from m6rec_bench.plugin_api import (
    DataError,
    Plugin,
    PluginConfig,
    UsageError,
    atomic_columns,
    atomic_path,
    cache_dir,
    file_checksum,
    protocol_inputs,
)
from m6rec_plugins import fusion
from m6rec_plugins.cards import ADAPTATION_COLUMNS
from m6rec_plugins.kg import isolated_rng
from m6rec_plugins.towers import DotScores

log = logging.getLogger(__name__)

#: Bump when :func:`pretrain_backbone` changes what it computes: old cache entries stop matching.
PRETRAIN_VERSION = 1

Mode = Literal["adapter", "full", "scratch"]


class AdaptConfig(PluginConfig):
    """Hyper-parameters of :class:`M6Adapt`.

    ``lora_rank`` / ``lora_alpha`` are LoRA's :math:`r` and :math:`\\alpha` (scale :math:`\\alpha/r`);
    ``adapter_dim`` the bottleneck width. ``pretrain_*`` fix the source-task training (and so the
    cache key); the target task trains with RecBole's own ``learning_rate`` / ``epochs``.
    """

    mode: Mode = "adapter"
    lora_rank: int = Field(4, ge=1)
    lora_alpha: float = Field(8.0, gt=0)
    adapter_dim: int = Field(8, ge=1)
    pretrain_epochs: int = Field(10, ge=1)
    pretrain_lr: float = Field(0.005, gt=0)
    pretrain_batch_size: int = Field(2048, ge=1)
    embedding_size: int = 64
    content_hidden: int = 128
    temperature: float = 0.2
    reg_weight: float = 1e-5
    use_kg: bool = True
    use_text: bool = True
    cold_dropout: float = 0.2
    content_dropout: float = 0.1


#: Fields that shape the backbone or its pretraining: part of the pretrained cache's key.
BACKBONE_FIELDS = ("embedding_size", "content_hidden", "use_kg", "use_text")
PRETRAIN_FIELDS = ("pretrain_epochs", "pretrain_lr", "pretrain_batch_size", "temperature", "reg_weight",
                   "cold_dropout", "content_dropout")


def search_space(trial: Any) -> dict[str, Any]:
    """Optuna search space of :class:`AdaptConfig` (``mode`` is the comparison, not searched)."""
    return {
        "lora_rank": trial.suggest_categorical("lora_rank", [2, 4, 8]),
        "lora_alpha": trial.suggest_float("lora_alpha", 1.0, 32.0, log=True),
        "adapter_dim": trial.suggest_categorical("adapter_dim", [4, 8, 16]),
        "temperature": trial.suggest_float("temperature", 0.05, 0.5, log=True),
        "learning_rate": trial.suggest_float("learning_rate", 1e-4, 3e-2, log=True),
    }


# ---------------------------------------------------------------- parameter-efficient modules


class LoRALinear(nn.Module):
    """A frozen ``nn.Linear`` plus LoRA's low-rank update :math:`\\frac{\\alpha}{r} B A x` (Hu et al., Eq. 3)."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float) -> None:
        super().__init__()
        self.base = base
        self.scale = alpha / rank
        self.lora_A = nn.Parameter(torch.empty(rank, base.in_features, device=base.weight.device))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, rank, device=base.weight.device))
        nn.init.kaiming_uniform_(self.lora_A, a=5**0.5)  # as nn.Linear (and LoRA's reference code)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + (x @ self.lora_A.T @ self.lora_B.T) * self.scale


class BottleneckAdapter(nn.Module):
    """Houlsby et al.'s residual bottleneck :math:`x + W_{up}\\,\\mathrm{GELU}(W_{down} x)`, up-projection zero."""

    def __init__(self, dim: int, bottleneck: int) -> None:
        super().__init__()
        self.down = nn.Linear(dim, bottleneck)
        self.up = nn.Linear(bottleneck, dim)
        nn.init.xavier_uniform_(self.down.weight)
        nn.init.zeros_(self.down.bias)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.up(F.gelu(self.down(x)))


# ---------------------------------------------------------------- the backbone


class Backbone(nn.Module):
    """M6-Fusion's item side (ID, KG and text towers, gate; no graph) and a history user projection."""

    def __init__(self, n_items: int, d: int, hidden: int, kg: np.ndarray | None, linked: np.ndarray | None,
                 text: np.ndarray | None) -> None:
        super().__init__()
        self.n_items = n_items
        self.item_embedding = nn.Embedding(n_items, d)
        self.towers = nn.ModuleDict()
        if kg is not None:
            self.towers["kg"] = fusion._ContentTower(kg, hidden, d)
            self.register_buffer("avail_kg", torch.from_numpy(linked & fusion._rows_present(kg)), persistent=False)
        if text is not None:
            self.towers["text"] = fusion._ContentTower(text, hidden, d)
            self.register_buffer("avail_text", torch.from_numpy(fusion._rows_present(text)), persistent=False)
        self.modalities = ["id", *self.towers.keys()]
        self.gate = nn.ModuleDict({m: nn.Linear(d + 1 + len(self.modalities), 1) for m in self.modalities})
        self.user_proj = nn.Linear(d, d)
        self.register_buffer("log_deg", torch.zeros(n_items), persistent=False)
        self.register_buffer("has_id", torch.zeros(n_items, dtype=torch.bool), persistent=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """M6-Fusion's initialisation: Xavier-uniform, every gate open (weight 0, bias 2)."""
        self.apply(xavier_uniform_initialization)
        for layer in self.gate.values():
            nn.init.zeros_(layer.weight)
            nn.init.constant_(layer.bias, 2.0)

    def set_id_degrees(self, deg: np.ndarray) -> None:
        """Degrees of the data the ID embedding learns from: the degree feature and ID availability."""
        deg = deg.astype(np.float32).copy()
        deg[0] = 0.0
        log_deg = np.log1p(deg) / max(float(np.log1p(deg.max())), 1.0)
        self.log_deg.copy_(torch.from_numpy(log_deg))
        self.has_id.copy_(torch.from_numpy(deg > 0))

    def items(self, drop: bool, cold_dropout: float = 0.0, content_dropout: float = 0.0) -> torch.Tensor:
        """Fused vectors of every item, ``[n_items, d]`` (M6-Fusion's gate, Eq. in its module doc)."""
        vecs = {"id": self.item_embedding.weight}
        avail = {"id": self.has_id}
        for name, tower in self.towers.items():
            vecs[name] = tower(None)
            avail[name] = getattr(self, f"avail_{name}")
        log_deg = self.log_deg
        if drop:  # modality dropout (DropoutNet-style), as M6-Fusion
            log_deg = fusion.drop_modalities(avail, log_deg, ["id"], list(self.towers), cold_dropout, content_dropout)
        a, h, z = fusion.modality_inputs(self.modalities, vecs, avail, log_deg)
        return (fusion.gate_weights(self.gate, self.modalities, z, a).unsqueeze(2) * h).sum(dim=1)


def history_matrix(users: np.ndarray, items: np.ndarray, n_users: int, n_items: int,
                   device: Any = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """The binary user × item history as a sparse CSR tensor, and each user's number of items."""
    pairs = np.unique(np.stack([users.astype(np.int64), items.astype(np.int64)]), axis=1)
    coo = torch.sparse_coo_tensor(torch.from_numpy(pairs), torch.ones(pairs.shape[1]), (n_users, n_items),
                                  check_invariants=True).coalesce()
    counts = torch.from_numpy(np.bincount(pairs[0], minlength=n_users).astype(np.float32))
    with warnings.catch_warnings():  # "sparse CSR support is in beta": products and their grads are stable
        warnings.simplefilter("ignore", UserWarning)
        return coo.to_sparse_csr().to(device), counts.to(device)


def history_means(hist: torch.Tensor, counts: torch.Tensor, item_vecs: torch.Tensor, users: torch.Tensor,
                  leave_out: torch.Tensor | None = None) -> torch.Tensor:
    """Mean fused vector of each user's history, ``leave_out`` (the positive) removed when given."""
    sums = torch.sparse.mm(hist, item_vecs).index_select(0, users)
    n = counts.index_select(0, users)
    if leave_out is not None:
        sums = sums - item_vecs.index_select(0, leave_out)
        n = n - 1
    return sums / n.clamp(min=1.0).unsqueeze(1)


def ranking_loss(item_vecs: torch.Tensor, user_vecs: torch.Tensor, pos: torch.Tensor, cand: torch.Tensor,
                 temperature: float) -> torch.Tensor:
    """Softmax over ``cand`` (the positive masked among them) of cosine similarities / temperature."""
    u_n = F.normalize(user_vecs, dim=1)
    e_n = F.normalize(item_vecs, dim=1)
    return fusion.softmax_loss(u_n, e_n.index_select(0, pos), e_n.index_select(0, cand), pos, cand, temperature)


# ---------------------------------------------------------------- source task: pretraining (cached)


def read_source(path: Path, item_ids: dict[str, int]) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Source interactions as (local user ids, target item ids, n users, n dropped for unknown items)."""
    with open(path, encoding="utf-8") as fh:
        names = atomic_columns(fh.readline())
        try:
            u_col, i_col = names.index("user_id"), names.index("item_id")
        except ValueError:
            raise DataError(f"{path} needs user_id and item_id columns (has {names})") from None
        rows = [line.rstrip("\r\n").split("\t") for line in fh if line.strip()]
    user_ids: dict[str, int] = {}
    users, items, dropped = [], [], 0
    for row in rows:
        item = item_ids.get(row[i_col])
        if item is None:
            dropped += 1
            continue
        users.append(user_ids.setdefault(row[u_col], len(user_ids)))
        items.append(item)
    if not users:
        raise DataError(f"{path}: no source interaction has an item of the target split — nothing to pretrain on")
    return np.asarray(users, dtype=np.int64), np.asarray(items, dtype=np.int64), len(user_ids), dropped


def pretrain_backbone(make: Callable[[], Backbone], users: np.ndarray, items: np.ndarray, n_users: int,
                      cfg: dict[str, Any], seed: int, device: Any) -> dict[str, torch.Tensor]:
    """Train a fresh backbone on the source interactions (softmax loss, Adam, seeded); return its state.

    Runs with the global RNGs saved and restored (``isolated_rng``), so a cache miss leaves the
    caller's random state as a cache hit would.
    """
    with isolated_rng():
        torch.manual_seed(seed)
        order = np.random.default_rng(seed)
        bb = make().to(device)  # initialised from the seed just set
        deg = np.bincount(items, minlength=bb.n_items)
        bb.set_id_degrees(deg)
        hist, counts = history_matrix(users, items, n_users, bb.n_items, device)
        warm = torch.from_numpy(np.flatnonzero(deg[1:] > 0) + 1).to(device)
        u_all, i_all = torch.from_numpy(users).to(device), torch.from_numpy(items).to(device)
        opt = torch.optim.Adam(bb.parameters(), lr=float(cfg["pretrain_lr"]))
        bs = int(cfg["pretrain_batch_size"])
        bb.train()
        for epoch in range(int(cfg["pretrain_epochs"])):
            perm = torch.from_numpy(order.permutation(len(users))).to(device)
            total = 0.0
            for start in range(0, len(perm), bs):
                batch = perm[start:start + bs]
                user, pos = u_all.index_select(0, batch), i_all.index_select(0, batch)
                e = bb.items(True, float(cfg["cold_dropout"]), float(cfg["content_dropout"]))
                u = bb.user_proj(history_means(hist, counts, e, user, leave_out=pos))
                loss = ranking_loss(e, u, pos, warm, float(cfg["temperature"]))
                loss = loss + float(cfg["reg_weight"]) * bb.item_embedding(pos).pow(2).sum() / len(pos)
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += loss.item() * len(batch)
            log.info("M6-Adapt pretraining epoch %d: loss %.4f", epoch, total / len(perm))
        return {k: v.detach().cpu().contiguous().clone() for k, v in bb.state_dict().items()}


def _digest(*arrays: np.ndarray | None) -> str:
    h = hashlib.sha256()
    for arr in arrays:
        if arr is None:
            h.update(b"none")
        else:
            a = np.ascontiguousarray(arr)
            h.update(f"{a.dtype}{a.shape}".encode())
            h.update(a.tobytes())
    return h.hexdigest()


def pretrained_path(key: dict[str, Any]) -> Path:
    """The cache file of one pretraining (``key``: what determines its result)."""
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
    return cache_dir("pretrained") / f"m6-adapt-{digest}.safetensors"


def load_or_pretrain(key: dict[str, Any], train: Callable[[], dict[str, torch.Tensor]],
                     info: dict[str, Any] | None = None) -> tuple[dict[str, torch.Tensor], dict[str, str], bool]:
    """The cached backbone state for ``key`` (training and caching it on a miss): (state, metadata, reused).

    The metadata holds the key, the measured ``pretrain_time_s`` and ``info`` (written on a miss).
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file, safe_open, save_file

    path = pretrained_path(key)
    if path.is_file():
        try:
            with safe_open(str(path), framework="pt") as fh:
                meta = fh.metadata() or {}
            if meta.get("key") == json.dumps(key, sort_keys=True):
                return load_file(str(path)), meta, True
            log.warning("pretrained cache %s has another key; retraining", path)
        except (SafetensorError, OSError, ValueError) as exc:
            log.warning("pretrained cache %s unreadable (%s); retraining", path, exc)
    t0 = time.perf_counter()
    state = train()
    meta = {**{k: str(v) for k, v in (info or {}).items()},
            "key": json.dumps(key, sort_keys=True), "pretrain_time_s": f"{time.perf_counter() - t0:.3f}"}
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata=meta)
    return state, meta, False


# ---------------------------------------------------------------- target task: the RecBole model


class M6Adapt(DotScores, GeneralRecommender):
    """M6-Fusion's item side + history user projection, pretrained on the source users; see the module doc."""

    input_type = InputType.PAIRWISE

    #: evaluation caches, rebuilt on demand: mid-cell checkpoints leave them out (plugin API, "cache_attributes")
    cache_attributes = ("_cache",)

    def __init__(self, config: Any, dataset: Any) -> None:
        super().__init__(config, dataset)
        self.source_file: Path | None = protocol_inputs(config["data_path"]).get("source")
        if self.source_file is None:
            raise UsageError(
                f"M6-Adapt pretrains on the source users of the user-group protocol, and {config['data_path']} is "
                "not a user-group split — run it with --protocol user-group"
            )
        self.mode: str = str(config["mode"])
        self.d = int(config["embedding_size"])
        self.temperature = float(config["temperature"])
        self.reg_weight = float(config["reg_weight"])
        self.cold_dropout = float(config["cold_dropout"])
        self.content_dropout = float(config["content_dropout"])
        cfg = {k: config[k] for k in (*BACKBONE_FIELDS, *PRETRAIN_FIELDS)}

        with isolated_rng():  # a content cache miss must not move the global RNGs (as M6-Fusion)
            kg, linked = fusion.kg_vectors(config, dataset) if config["use_kg"] else (None, None)
            text = fusion.text_vectors(config, dataset) if config["use_text"] else None
        for what, table in (("KG", kg), ("text", text)):
            if table is not None and table.shape[0] != self.n_items:
                raise DataError(f"M6-Adapt: {what} vectors cover {table.shape[0]} items, the dataset has {self.n_items}")

        def make() -> Backbone:
            return Backbone(self.n_items, self.d, int(config["content_hidden"]), kg, linked, text)

        self.backbone = make()

        inter = dataset.inter_matrix(form="coo")
        target_deg = np.bincount(inter.col, minlength=self.n_items)
        hist, counts = history_matrix(inter.row, inter.col, self.n_users, self.n_items)
        self.register_buffer("hist", hist, persistent=False)
        self.register_buffer("hist_count", counts, persistent=False)
        warm = np.flatnonzero(target_deg[1:] > 0) + 1
        if len(warm) == 0:
            raise DataError("M6-Adapt: the training data has no interactions")
        self.register_buffer("warm_items", torch.from_numpy(warm.astype(np.int64)), persistent=False)

        self.pretrain_time_s = 0.0
        self.pretrained_reused = False
        self.pretrained_path: Path | None = None
        self.n_source_interactions: int | None = None
        self.n_source_dropped: int | None = None
        source_deg = np.zeros(self.n_items, dtype=np.int64)
        if self.mode in ("adapter", "full"):
            source_file = self.source_file
            if not source_file.is_file():
                raise DataError(f"{source_file} not found — the user-group split is incomplete; delete its folder "
                                f"({Path(config['data_path']).parent}) and run again")
            item_ids = dict(dataset.field2token_id[dataset.iid_field])
            item_ids.pop("[PAD]", None)
            s_users, s_items, n_src_users, dropped = read_source(source_file, item_ids)
            source_deg = np.bincount(s_items, minlength=self.n_items)
            tokens = np.asarray(dataset.field2id_token[dataset.iid_field]).astype(str)
            key = {
                "version": PRETRAIN_VERSION, "source_sha256": file_checksum(source_file).partition(":")[2],
                "items": _digest(tokens), "content": _digest(kg, linked, text),
                "backbone": {k: cfg[k] for k in BACKBONE_FIELDS}, "pretrain": {k: cfg[k] for k in PRETRAIN_FIELDS},
                "seed": int(config["seed"]),
            }
            state, meta, reused = load_or_pretrain(
                key, lambda: pretrain_backbone(make, s_users, s_items, n_src_users, cfg, int(config["seed"]),
                                               config["device"]),
                info={"n_source_interactions": len(s_users), "n_source_users": n_src_users,
                      "n_source_dropped_unknown_items": dropped})
            self.backbone.load_state_dict(state)
            self.pretrain_time_s = float(meta.get("pretrain_time_s", 0.0))
            self.pretrained_reused = reused
            self.pretrained_path = pretrained_path(key)
            self.n_source_interactions, self.n_source_dropped = len(s_users), dropped

        self.adapter: nn.Module = nn.Identity()
        if self.mode == "adapter":
            self.backbone.set_id_degrees(source_deg)  # the frozen ID vectors know the source only
            self.backbone.requires_grad_(False)
            self._add_lora(int(config["lora_rank"]), float(config["lora_alpha"]))
            self.adapter = BottleneckAdapter(self.d, int(config["adapter_dim"]))
        else:
            self.backbone.set_id_degrees(source_deg + target_deg)
        self._cache: tuple[torch.Tensor, torch.Tensor] | None = None

    def _add_lora(self, rank: int, alpha: float) -> None:
        """Wrap the content towers' and the user projection's linear layers in :class:`LoRALinear`.

        The gates (``d + 1 + M`` → 1) stay frozen without LoRA: a rank-``r`` update of a one-output
        layer has more parameters than the layer itself.
        """
        targets = [(tower.mlp, str(i)) for tower in self.backbone.towers.values()
                   for i, layer in enumerate(tower.mlp) if isinstance(layer, nn.Linear)]
        targets.append((self.backbone, "user_proj"))
        for parent, name in targets:
            parent._modules[name] = LoRALinear(parent._modules[name], rank, alpha)

    # ------------------------------------------------------------ state views (tests, reports)

    def backbone_state(self) -> dict[str, torch.Tensor]:
        """The backbone's own tensors under their pretrained names (LoRA factors left out)."""
        return {k.replace(".base.", "."): v for k, v in self.backbone.state_dict().items() if "lora_" not in k}

    def trainable_share(self) -> float:
        """Trainable parameters / all parameters."""
        params = list(self.parameters())
        return sum(p.numel() for p in params if p.requires_grad) / max(1, sum(p.numel() for p in params))

    # ------------------------------------------------------------ RecBole API

    def _user_vectors(self, item_vecs: torch.Tensor, users: torch.Tensor,
                      leave_out: torch.Tensor | None = None) -> torch.Tensor:
        mean = history_means(self.hist, self.hist_count, item_vecs, users, leave_out)
        return self.adapter(self.backbone.user_proj(mean))

    def calculate_loss(self, interaction: Any) -> torch.Tensor:
        self._cache = None
        user, pos = interaction[self.USER_ID], interaction[self.ITEM_ID]
        e = self.backbone.items(True, self.cold_dropout, self.content_dropout)
        u = self._user_vectors(e, user, leave_out=pos)
        loss = ranking_loss(e, u, pos, self.warm_items, self.temperature)
        if self.backbone.item_embedding.weight.requires_grad:
            loss = loss + self.reg_weight * self.backbone.item_embedding(pos).pow(2).sum() / len(pos)
        return loss

    def _all_vectors(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._cache is None or self.training:
            e = self.backbone.items(False)
            users = torch.arange(self.n_users, device=e.device)
            cache = (F.normalize(self._user_vectors(e, users), dim=1), F.normalize(e, dim=1))
            if self.training:
                return cache
            self._cache = cache
        return self._cache



def adaptation_metrics(run: Any) -> dict[str, dict[str, float]]:
    """The ``adaptation`` column set: trainable share, target training time, source pretraining time."""
    model = run.model
    return {"adaptation": {
        "trainable_share": model.trainable_share(),
        "adapt_time_s": float(run.train_time),
        "pretrain_time_s": float(model.pretrain_time_s),
    }}


plugin = Plugin(
    name="M6-Adapt",
    family="adaptation",
    description="M6-Rec option tuning: fusion backbone pretrained on source users, LoRA + bottleneck adapter "
    "on target users (arXiv 2205.08084; Houlsby et al. ICML 2019; LoRA, ICLR 2022)",
    config_cls=AdaptConfig,
    model_cls=M6Adapt,
    needs=frozenset({"inter", "kg", "item_text"}),
    search_space=search_space,
    recbole_config={"learning_rate": 0.005},
    in_default_suite=False,
    ablations={"full fine-tune": {"mode": "full"}, "scratch": {"mode": "scratch"}},
    extra_metrics=adaptation_metrics,
    protocols=("user-group",),
    column_sets=(ADAPTATION_COLUMNS,),
)
