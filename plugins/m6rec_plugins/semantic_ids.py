r"""Semantic IDs: a short tuple of discrete codes per item, learned from its text, and a trie of them.

TIGER (Rajput et al., "Recommender Systems with Generative Retrieval", NeurIPS 2023) names every
item by a *semantic ID* — a tuple :math:`(c_1, \dots, c_L)` of codewords quantising the item's
content embedding coarse to fine — and lets a sequence model *generate* the next item's tuple.
TIGER learns the codebooks with an RQ-VAE; here the quantiser is **residual k-means** over the
frozen text vectors (the RQ-VAE's residual quantisation without the encoder, the "RQ-KMeans"
variant that later generative-retrieval work uses): with :math:`r^{(0)}_j = x_j / \lVert x_j \rVert`,

.. math::
    c_l(j) = \arg\min_k \lVert r^{(l-1)}_j - \mu^{(l)}_k \rVert^2, \qquad
    r^{(l)}_j = r^{(l-1)}_j - \mu^{(l)}_{c_l(j)}, \qquad l = 1, \dots, L

where :math:`\mu^{(l)}_1, \dots, \mu^{(l)}_K` are the k-means centroids of the level-:math:`l`
residuals. Items sharing a prefix are close in text space, so a model that has learned to generate
a prefix can complete it with an item it never saw in training (a cold item).

Two items may still share all :math:`L` codes (identical or near-identical texts). As in TIGER
(§3.1, "we append an extra token at the end of the ordered semantic codes to make them unique"),
a final level :math:`c_{L+1}` numbers the items of each collision group :math:`0, 1, \dots`
(closest to its level-:math:`L` centroid first, ties by item id); its size is the largest group.

k-means is plain numpy (k-means++ seeding, Arthur & Vassilvitskii, SODA 2007, then Lloyd
iterations), seeded by its own ``numpy.random.Generator``, so the same vectors and seed give the
same codes and the global RNGs are never touched.

:class:`Trie` is the prefix table of the valid code tuples: ``children[node, code]`` is the child
node (``-1`` where no item continues the prefix that way) and ``item_at[leaf]`` the item id. A
decoder constrained by it (:mod:`m6rec_plugins.generative`) can only produce real items.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from m6rec_bench.plugin_api import DataError

__all__ = ["SemanticIds", "Trie", "kmeans", "residual_kmeans"]


def _sq_dists(x: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """``[n, k]`` squared Euclidean distances (clipped at 0 against rounding)."""
    d = (x * x).sum(1, keepdims=True) - 2.0 * x @ centroids.T + (centroids * centroids).sum(1)[None, :]
    return np.maximum(d, 0.0)


def _kmeans_pp(x: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeding: each next centre drawn with probability ∝ squared distance to the nearest one."""
    centres = [x[int(rng.integers(len(x)))]]
    closest = _sq_dists(x, centres[0][None, :])[:, 0]
    for _ in range(1, k):
        total = closest.sum()
        if total <= 0:  # every point sits on a centre already
            idx = int(rng.integers(len(x)))
        else:
            idx = int(rng.choice(len(x), p=closest / total))
        centres.append(x[idx])
        closest = np.minimum(closest, _sq_dists(x, x[idx][None, :])[:, 0])
    return np.stack(centres)


def kmeans(x: np.ndarray, k: int, rng: np.random.Generator, n_iter: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """Lloyd's k-means on ``x`` (``[n, d]``) with k-means++ seeding; returns ``(centroids [k, d], codes [n])``.

    An emptied cluster is re-seeded with the point farthest from its centroid. Stops when no
    assignment changes or after ``n_iter`` iterations. ``k`` is capped at ``n``.
    """
    x = np.asarray(x, dtype=np.float64)
    if len(x) == 0:
        raise DataError("k-means needs at least one vector")
    k = max(1, min(int(k), len(x)))
    centroids = _kmeans_pp(x, k, rng)
    codes = np.full(len(x), -1, dtype=np.int64)
    for _ in range(max(1, n_iter)):
        dists = _sq_dists(x, centroids)
        new = dists.argmin(1)
        counts = np.bincount(new, minlength=k)
        for empty in np.flatnonzero(counts == 0):
            far = int(dists[np.arange(len(x)), new].argmax())
            new[far] = empty
            dists[far] = 0.0  # do not pick the same point twice
            counts = np.bincount(new, minlength=k)
        if np.array_equal(new, codes):
            break
        codes = new
        sums = np.zeros_like(centroids)
        np.add.at(sums, codes, x)
        centroids = sums / np.maximum(np.bincount(codes, minlength=k), 1)[:, None]
    return centroids, codes


@dataclass(frozen=True)
class SemanticIds:
    """The code tuple of every item and how well each level quantised the text.

    Attributes:
        codes: ``[n_items, n_levels + 1]`` codes per internal item id; the last column is the
            collision index. Row 0 (RecBole's padding item) is ``-1``.
        level_sizes: number of codes at each level (the last: the largest collision group).
        residual_mse: mean squared norm of the residual before level 1 (of the unit vectors:
            1.0 when every item has text) and after each k-means level (``n_levels + 1`` values).
        has_text: ``[n_items]`` items with a non-zero text vector (the ones a trie should hold).
    """

    codes: np.ndarray
    level_sizes: tuple[int, ...]
    residual_mse: tuple[float, ...]
    has_text: np.ndarray

    @property
    def n_levels(self) -> int:
        """Number of code tokens per item, the collision level included."""
        return len(self.level_sizes)

    def collision_share(self) -> float:
        """Share of items (with text) whose k-means codes alone are not unique."""
        real = self.codes[1:][self.has_text[1:]]
        if len(real) == 0:
            return 0.0
        _, inverse, counts = np.unique(real[:, :-1], axis=0, return_inverse=True, return_counts=True)
        return float((counts[inverse.reshape(-1)] > 1).mean())


def residual_kmeans(vectors: np.ndarray, n_levels: int = 3, n_codes: int = 32, seed: int = 0,
                    n_iter: int = 50) -> SemanticIds:
    """Semantic IDs of every item from its content vector (row 0 = padding) by residual k-means.

    Args:
        vectors: ``[n_items, d]`` content vectors per internal item id; all-zero rows are items
            without text (they get codes — they may occur in a history — but no trie entry).
        n_levels: k-means levels :math:`L` (the collision level comes on top).
        n_codes: centroids per level :math:`K` (capped by the number of items).
        seed: seed of the k-means generator.
        n_iter: Lloyd iterations per level at most.
    """
    vectors = np.asarray(vectors, dtype=np.float64)
    if vectors.ndim != 2 or len(vectors) < 2:
        raise DataError(f"semantic IDs need a [n_items, dim] matrix with real items; got shape {vectors.shape}")
    if n_levels < 1 or n_codes < 1:
        raise DataError(f"semantic IDs need n_levels >= 1 and n_codes >= 1 (got {n_levels}, {n_codes})")
    norms = np.linalg.norm(vectors, axis=1)
    has_text = norms > 0
    has_text[0] = False
    if not has_text.any():
        raise DataError("no item has a text vector, so no semantic ID can be learned — check the dataset's item text")
    unit = np.where(norms[:, None] > 0, vectors / np.maximum(norms, 1e-12)[:, None], 0.0)
    rng = np.random.default_rng(seed)
    residual = unit[1:].copy()
    codes = np.full((len(vectors), n_levels + 1), -1, dtype=np.int64)
    sizes: list[int] = []
    mse = [float((residual ** 2).sum(1).mean())]
    for level in range(n_levels):
        centroids, assign = kmeans(residual, n_codes, rng, n_iter=n_iter)
        codes[1:, level] = assign
        sizes.append(len(centroids))
        residual = residual - centroids[assign]
        mse.append(float((residual ** 2).sum(1).mean()))
    # collision level: number the items of each (c_1..c_L) group, closest to the centroid first
    rest = (residual ** 2).sum(1)
    order = np.lexsort((np.arange(len(rest)), rest))
    seen: dict[tuple[int, ...], int] = {}
    for row in order:
        key = tuple(codes[row + 1, :n_levels].tolist())
        codes[row + 1, n_levels] = seen.get(key, 0)
        seen[key] = seen.get(key, 0) + 1
    sizes.append(max(seen.values()))
    return SemanticIds(codes=codes, level_sizes=tuple(sizes), residual_mse=tuple(mse), has_text=has_text)


class Trie:
    """Prefix table of the valid code tuples, as dense tensors for batched constrained decoding.

    Node 0 is the root (the empty prefix); ``children[node, code]`` is the node of
    ``prefix + (code,)`` or ``-1``; ``item_at[node]`` is the item id of a full tuple (0 elsewhere).
    ``children`` has as many columns as the largest level; at level ``l`` only the first
    ``level_sizes[l]`` can be set.
    """

    def __init__(self, codes: np.ndarray, items: Iterable[int], level_sizes: Sequence[int]) -> None:
        self.level_sizes = tuple(int(s) for s in level_sizes)
        self.depth = len(self.level_sizes)
        items = sorted({int(i) for i in items})
        if not items:
            raise DataError("a trie needs at least one item")
        width = max(self.level_sizes)
        table: list[list[int]] = [[-1] * width]
        item_at = [0]
        self._items: dict[tuple[int, ...], int] = {}
        for item in items:
            path = tuple(int(c) for c in codes[item])
            if len(path) != self.depth or any(not 0 <= c < s for c, s in zip(path, self.level_sizes, strict=True)):
                raise DataError(f"item {item} has code tuple {path}, outside level sizes {self.level_sizes}")
            if path in self._items:
                raise DataError(f"items {self._items[path]} and {item} share the code tuple {path}: IDs must be unique")
            node = 0
            for code in path:
                if table[node][code] < 0:
                    table[node][code] = len(table)
                    table.append([-1] * width)
                    item_at.append(0)
                node = table[node][code]
            item_at[node] = item
            self._items[path] = item
        self.children = torch.tensor(table, dtype=torch.long)
        self.item_at = torch.tensor(item_at, dtype=torch.long)

    def __len__(self) -> int:
        """Number of items (full code tuples)."""
        return len(self._items)

    def __contains__(self, path: object) -> bool:
        return isinstance(path, tuple) and path in self._items

    def item(self, path: Sequence[int]) -> int | None:
        """The item id of a full code tuple, or ``None`` if no item has it."""
        return self._items.get(tuple(int(c) for c in path))

    def items(self) -> list[int]:
        """Every item id in the trie, ascending."""
        return sorted(self._items.values())

    def path_nodes(self, codes: Tensor) -> Tensor:
        """``[B, depth]`` node *before* each code of each tuple in ``codes`` (``[B, depth]``); -1 off the trie.

        Column 0 is the root; column ``l`` the node of the first ``l`` codes, whose children are
        the valid choices at level ``l``.
        """
        children = self.children.to(codes.device)
        nodes = torch.zeros_like(codes)
        node = torch.zeros(codes.shape[0], dtype=torch.long, device=codes.device)
        for level in range(self.depth):
            nodes[:, level] = node
            ok = (node >= 0) & (codes[:, level] >= 0)
            nxt = children[node.clamp(min=0), codes[:, level].clamp(min=0)]
            node = torch.where(ok, nxt, torch.full_like(node, -1))
        return nodes
