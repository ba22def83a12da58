"""Training batches at the limit: RecBole's own train loaders, replayed from tensors.

Why: RecBole's ``TrainDataLoader`` is a torch ``DataLoader`` over a Python list of row numbers.
Every batch turns 2,048 row numbers into a list, indexes each column of the ``Interaction`` with that
list (``Interaction.__getitem__`` calls ``tolist()``), joins the user and item features the same
way, and draws its negatives in ``Sampler.sample_by_key_ids``, which checks each drawn item against
the user's training positives in a Python loop over the batch. On ml-100k / BPR that is about half
of an epoch's CPU time (0.17-0.23 s of 0.37-0.44 s; the replay: 0.02-0.035 s), and an epoch through
the replay is 1.0-1.2x a bare torch loop over the same model (``benchmarks/limit.py``, RESULTS.md).

What :class:`FastTrainLoader` does instead, per epoch: one row permutation (a tensor), then per batch
one tensor index per column, the features joined by tensor index, and the negatives drawn as a
vector with the collisions (a user's training positives) found by one lookup in a table built once
(a dense ``users x items`` bit table when it fits in :data:`DENSE_CELLS`, else sorted
``user * n_items + item`` keys and ``searchsorted``) and redrawn, only those, until none is left.

It is a replay, not a re-implementation of the distribution: every random number comes from the
same generator, in the same order, as in RecBole's loader, so the batches are RecBole's own, bit for
bit, and a model trains to the same weights (``tests/test_fast_train.py`` compares the batches of
two epochs and the generator states after them):

* the order: the loader's own ``torch.Generator`` (RecBole seeds it with ``config["seed"]``) gives
  one 64-bit draw (the seed torch's ``DataLoader`` iterator takes), then ``randperm(n)``, then a
  second ``randperm(n)`` (``RandomSampler`` draws it for the ``num_samples % n`` tail), as torch's
  ``RandomSampler`` does under the ``DataLoader`` each epoch;
* the negatives: ``sampler.sampling(k)`` — RecBole's own draw (uniform: ``np.random.randint(1,
  n_items, k)`` on numpy's global generator; popularity: its alias table) — first for the whole
  batch, then for the collisions of the previous round, in their order, exactly the sequence of
  calls of ``sample_by_key_ids``. Hence the users' negatives are uniform over the items they did not
  interact with in training (RecBole's distribution; item 0, the padding, is never drawn).

What is supported (anything else keeps RecBole's loader, unchanged — :func:`wrap` says why):
``TrainDataLoader`` of general and context models with no negatives or with ``uniform`` /
``popularity`` negatives (point-wise and pair-wise, any ``sample_num``), not ``dynamic``, and the
auto-encoders' ``UserDataLoader`` (MultiVAE, MultiDAE, ...: shuffled user batches); one process,
no loader workers, no batch ``transform``. Knowledge-graph and sequential loaders stay RecBole's.

Engine switch (:mod:`m6rec_bench.engine.fast_eval`): ``replay``, the default, trains on these batches
and evaluates with RecBole's own batches; ``fast`` also evaluates in large batches; ``recbole``
(``m6bench run --engine recbole``) leaves RecBole's loader in place. The engine is recorded (``Record.conditions.engine``) but is no part of a cell's identity:
the batches, hence the trained weights, are the same.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from m6rec_bench import compat

#: Largest ``users x items`` table of training positives kept dense (1 byte a cell: 64 MiB); beyond,
#: sorted keys and a binary search.
DENSE_CELLS = 1 << 26


class UsedItems:
    """Each user's items that may not be drawn as a negative (RecBole's ``sampler.used_ids``: the
    training positives, plus what a protocol added, e.g. the cold items), as one lookup table."""

    def __init__(self, used_ids: Any, n_items: int) -> None:
        self.n_items = n_items
        lens = np.fromiter((len(s) for s in used_ids), dtype=np.int64, count=len(used_ids))
        users = np.repeat(np.arange(len(used_ids), dtype=np.int64), lens)
        items = np.fromiter((i for s in used_ids for i in s), dtype=np.int64, count=int(lens.sum()))
        if len(used_ids) * n_items <= DENSE_CELLS:
            self.dense: np.ndarray | None = np.zeros((len(used_ids), n_items), dtype=bool)
            self.dense[users, items] = True
            self.keys: np.ndarray | None = None
        else:
            self.dense = None
            self.keys = np.unique(users * n_items + items)

    def hit(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Boolean mask: ``items[j]`` is one of ``users[j]``'s used items."""
        if self.dense is not None:
            return self.dense[users, items]
        assert self.keys is not None
        keys = users * self.n_items + items
        pos = np.searchsorted(self.keys, keys)
        return self.keys[np.minimum(pos, len(self.keys) - 1)] == keys if len(self.keys) else np.zeros(len(keys), bool)


def sample_negatives(sampler: Any, used: UsedItems, users: np.ndarray, num: int) -> torch.Tensor:
    """``num`` negatives per user, laid out as ``Sampler.sample_by_key_ids`` returns them (the j-th
    round of every user, then the next round), from the same calls of ``sampler.sampling`` in the
    same order: all of them, then the collisions of each round until there are none."""
    key_ids = np.tile(users, num)
    values = np.asarray(sampler.sampling(len(key_ids)), dtype=np.int64)
    check = np.flatnonzero(used.hit(key_ids, values))
    while len(check):
        values[check] = sampler.sampling(len(check))
        check = check[used.hit(key_ids[check], values[check])]
    return torch.from_numpy(values)


def _join(dataset: Any, columns: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``Dataset.join`` by tensor index: the user's and the item's feature columns added (or
    overwritten, as ``Interaction.update`` does) in RecBole's order."""
    if dataset.user_feat is not None and dataset.uid_field in columns:
        index = columns[dataset.uid_field]
        for key, value in dataset.user_feat.interaction.items():
            columns[key] = value[index]
    if dataset.item_feat is not None and dataset.iid_field in columns:
        index = columns[dataset.iid_field]
        for key, value in dataset.item_feat.interaction.items():
            columns[key] = value[index]
    return columns


def _repeat(value: torch.Tensor, times: int) -> torch.Tensor:
    return value.repeat([times] + [1] * (value.dim() - 1)) if times != 1 else value


class FastTrainLoader:
    """A drop-in for RecBole's ``TrainDataLoader`` / ``UserDataLoader`` (see the module docstring):
    it yields RecBole's own batches, built from tensors. Every other attribute and method is the
    wrapped loader's (``_dataset``, ``_sampler``, ``generator``, ``get_model``, ``update_config`` …)."""

    def __init__(self, inner: Any) -> None:
        from recbole.data.dataloader.user_dataloader import UserDataLoader

        self.__dict__["_inner"] = inner
        self.__dict__["_users_only"] = isinstance(inner, UserDataLoader)
        self.__dict__["_used"] = None

    def __getattr__(self, name: str) -> Any:
        inner = self.__dict__.get("_inner")
        if inner is None:
            raise AttributeError(name)
        return getattr(inner, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self.__dict__["_inner"], name, value)

    def __len__(self) -> int:
        inner = self.__dict__["_inner"]
        return -(-inner.sample_size // inner.batch_size)

    def _order(self) -> torch.Tensor:
        """This epoch's row order, drawn from the loader's generator as torch's ``DataLoader`` does."""
        inner = self.__dict__["_inner"]
        n, generator = inner.sample_size, inner.generator
        torch.empty((), dtype=torch.int64).random_(generator=generator)  # _BaseDataLoaderIter._base_seed
        if not inner.shuffle:
            return torch.arange(n)
        order = torch.randperm(n, generator=generator)
        torch.randperm(n, generator=generator)  # RandomSampler's tail: randperm(n)[: num_samples % n]
        return order

    def __iter__(self) -> Iterator[Any]:
        from recbole.data.interaction import Interaction

        inner = self.__dict__["_inner"]
        order, step = self._order(), inner.batch_size  # the torch DataLoader's, fixed when it was made
        if self.__dict__["_users_only"]:
            uid_field = inner.uid_field
            for start in range(0, len(order), step):
                yield Interaction({uid_field: order[start : start + step]})
            return
        dataset = compat.loader_dataset(inner)
        feat = dataset.inter_feat.interaction
        for start in range(0, len(order), step):
            index = order[start : start + step]
            yield Interaction(self._batch({key: value[index] for key, value in feat.items()}))

    def _batch(self, columns: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """One batch as ``TrainDataLoader.collate_fn`` builds it (join, then negatives, if any)."""
        inner = self.__dict__["_inner"]
        dataset = compat.loader_dataset(inner)
        columns = _join(dataset, columns)
        args = inner.neg_sample_args
        if args["distribution"] == "none" or args["sample_num"] == "none":
            return columns
        if self.__dict__["_used"] is None:
            self.__dict__["_used"] = UsedItems(compat.loader_sampler(inner).used_ids, dataset.item_num)
        users = columns[inner.uid_field].numpy()
        negatives = sample_negatives(compat.loader_sampler(inner), self.__dict__["_used"], users, inner.neg_sample_num)
        times, n = inner.times, len(users)
        if inner.sampling_func == inner._neg_sample_by_pair_wise_sampling:
            columns = {key: _repeat(value, times) for key, value in columns.items()}
            negative = _join(dataset, {dataset.iid_field: negatives})
            columns.update({inner.neg_prefix + key: value for key, value in negative.items()})
            return columns
        columns = {key: _repeat(value, times) for key, value in columns.items()}  # point-wise
        columns[dataset.iid_field] = columns[dataset.iid_field].clone()
        columns[dataset.iid_field][n:] = negatives
        columns = _join(dataset, columns)
        labels = torch.zeros(n * times)
        labels[:n] = 1.0
        columns[inner.label_field] = labels
        return columns


def unsupported(loader: Any) -> str | None:
    """Why :class:`FastTrainLoader` cannot replay ``loader`` (None when it can)."""
    from recbole.data.dataloader.general_dataloader import TrainDataLoader
    from recbole.data.dataloader.user_dataloader import UserDataLoader
    from recbole.data.transform import Equal
    from recbole.utils import ModelType

    config = loader.config
    if type(loader) not in (TrainDataLoader, UserDataLoader):
        return f"its loader is {type(loader).__name__}"
    if not config["single_spec"] or config["worker"]:
        return "distributed training or loader workers"
    if not isinstance(loader.transform, Equal):
        return f"batch transform {config['transform']!r}"
    if type(loader) is UserDataLoader:
        return None
    if config["MODEL_TYPE"] not in (ModelType.GENERAL, ModelType.CONTEXT, ModelType.TRADITIONAL):
        return f"model type {config['MODEL_TYPE'].name}"
    args = loader.neg_sample_args
    if args["distribution"] == "none" or args["sample_num"] == "none":
        return None
    if args.get("dynamic", False):
        return "dynamic negative sampling"
    if args["distribution"] not in ("uniform", "popularity"):
        return f"negative distribution {args['distribution']!r}"
    if loader.sampling_func not in (loader._neg_sample_by_pair_wise_sampling, loader._neg_sample_by_point_wise_sampling):
        return "its own sampling function"
    return None


def wrap(loader: Any) -> Any:
    """``loader`` as a :class:`FastTrainLoader` when it can be replayed, else ``loader`` itself."""
    if isinstance(loader, FastTrainLoader) or unsupported(loader) is not None:
        return loader
    return FastTrainLoader(loader)


__all__ = ["DENSE_CELLS", "FastTrainLoader", "UsedItems", "sample_negatives", "unsupported", "wrap"]
