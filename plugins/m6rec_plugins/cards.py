"""Cards of the built-in plugins: what ``m6bench models list`` shows, without importing torch.

The registry reads ``PLUGIN_CARDS`` from this package's ``__init__`` instead of importing each
plugin module (PyKEEN, PyG, sentence-transformers: seconds), and compares every card with its
``Plugin`` when the plugin is loaded: a card that disagrees marks that plugin broken, so change a
plugin's name, family, description, needs, model type, default-suite flag or protocols here and in
its module together (a plugin's column sets and fold-in rule name too: boards and ``serve`` read
them here). Keys are the entry-point names of ``plugins/pyproject.toml``. Import nothing heavy here.
"""

from __future__ import annotations

from m6rec_bench.plugin_api import Column, ColumnSet, PluginCard

#: M6-Fusion-MTL's ``rating`` group (``multitask.rating_metrics``) as board columns.
RATING_COLUMNS = ColumnSet(
    "rating",
    (Column("RMSE", "rmse", 4), Column("MAE", "mae", 4)),
    "*RMSE* / *MAE*: error of the predicted explicit rating on the test interactions (models with a rating head).",
    order=30,
)

#: M6-Adapt's ``adaptation`` group (``adapters.adaptation_metrics``) as board columns.
ADAPTATION_COLUMNS = ColumnSet(
    "adaptation",
    (Column("Trainable %", "trainable_share", 2, scale=100.0), Column("Adapt s", "adapt_time_s", 1),
     Column("Pretrain s", "pretrain_time_s", 1)),
    "*Trainable %*: share of the model's parameters the target task trains (adapters vs full fine-tuning vs "
    "scratch); *Adapt s*: training time on the target task; *Pretrain s*: source-task pretraining (cached, "
    "shared by the rows that start from it).",
    order=40,
)

TEXT = frozenset({"inter", "item_text"})
ALL = frozenset({"inter", "item_text", "kg"})

PLUGIN_CARDS: dict[str, PluginCard] = {
    "GNN-LightGCN": PluginCard("GNN-LightGCN", "gnn", "LightGCN on PyTorch Geometric (He et al., SIGIR 2020)"),
    "GNN-NGCF": PluginCard("GNN-NGCF", "gnn", "NGCF on PyTorch Geometric (Wang et al., SIGIR 2019)",
                           in_default_suite=False),
    "GenRec-TIGER": PluginCard(
        "GenRec-TIGER", "generative",
        "generative retrieval: a Transformer decodes the next item's residual-k-means semantic ID "
        "under a trie (TIGER, Rajput et al., NeurIPS 2023)",
        needs=TEXT, model_type="sequential", in_default_suite=False),
    "GenRec-TIGER-Cold": PluginCard(
        "GenRec-TIGER-Cold", "generative",
        "TIGER generative retrieval over training histories, for cold-item evaluation: cold items have "
        "text semantic IDs and can be generated (Rajput et al., NeurIPS 2023)",
        needs=TEXT, in_default_suite=False),
    "KG-TransE": PluginCard("KG-TransE", "kg",
                            "CKE-style BPR with PyKEEN TransE entity embeddings (Zhang et al., KDD 2016)",
                            needs=frozenset({"inter", "kg"})),
    "M6-Adapt": PluginCard(
        "M6-Adapt", "adaptation",
        "M6-Rec option tuning: fusion backbone pretrained on source users, LoRA + bottleneck adapter "
        "on target users (arXiv 2205.08084; Houlsby et al. ICML 2019; LoRA, ICLR 2022)",
        needs=ALL, in_default_suite=False, protocols=("user-group",), column_sets=(ADAPTATION_COLUMNS,)),
    "M6-Fusion": PluginCard(
        "M6-Fusion", "fusion",
        "M6-Rec style fusion of ID, LightGCN graph, PyKEEN KG and MiniLM text item vectors "
        "(arXiv 2205.08084; LightGCN; CKE)",
        needs=ALL, fold_in="M6-Fusion"),
    "M6-Fusion-MTL": PluginCard(
        "M6-Fusion-MTL", "fusion",
        "M6-Fusion encoder with jointly trained ranking and rating heads, fixed or uncertainty "
        "weighting (Kendall et al., CVPR 2018; arXiv 2205.08084)",
        needs=ALL, in_default_suite=False, column_sets=(RATING_COLUMNS,), fold_in="M6-Fusion"),
    "SeqGNN-GRU": PluginCard(
        "SeqGNN-GRU", "sequential",
        "gated-GNN session graph + GRU next-item model with item text "
        "(SR-GNN, Wu et al., AAAI 2019; GRU4Rec, Hidasi et al., ICLR 2016)",
        needs=TEXT, model_type="sequential"),
    "Text-Tower": PluginCard(
        "Text-Tower", "text",
        "BPR content tower over frozen Sentence-BERT item text (Reimers & Gurevych, EMNLP 2019)",
        needs=TEXT, fold_in="Text-Tower"),
    "Text-ZeroShot": PluginCard(
        "Text-ZeroShot", "text",
        "Zero-shot: user = mean Sentence-BERT vector of history items, cosine scores "
        "(Reimers & Gurevych, EMNLP 2019)",
        needs=TEXT, fold_in="Text-ZeroShot"),
}
