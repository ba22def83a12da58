"""The user-group protocol (``--protocol user-group``): a source task and a target task with disjoint users.

Built for task adaptation (M6-Rec's "option tuning", Cui et al., arXiv 2205.08084, Sec. 4: one
pretrained model, a few task-specific parameters per task): a model may pretrain on the *source*
users and is then adapted to, and evaluated on, the *target* users, who never appear in the source.

Split (seeded, by an attribute rather than at random, so the two tasks really differ):

* the distinct ``occupation`` values of the dataset's ``.user`` file are shuffled with the seed
  (``numpy.random.default_rng(seed).permutation`` of the sorted values) and given to the **target**
  group in that order until it holds at least 30 % of the users that have interactions; every other
  user is a **source** user (a user with interactions but no ``.user`` row counts as occupation
  ``""``, a group of its own);
* ``<split>.inter`` holds only the target users' interactions, byte for byte; RecBole splits them
  8:1:1 per user exactly as the default protocol does (the same ``eval_args``), so every model,
  baseline or plugin, trains, validates and is tested on the target users only;
* ``source.inter`` (same columns) holds the source users' interactions. RecBole never reads it (it
  loads ``<split>.inter`` only): it is there for models that pretrain, such as ``M6-Adapt``. The
  source task never sees a target user, so nothing of the target's valid/test reaches pretraining.

For a baseline this protocol is "training from scratch on the target task".

The derived folder lives in ``cache_dir("splits")/<name>-user-group-seed<seed>-<hash>/<name>-users-s<seed>/``
with ``.item``/``.kg``/``.link`` hard-linked (or copied), a ``.user`` reduced to the target users, and
the marker :data:`MARKER` (occupations and user / interaction counts of each group). As in the
cold-item protocol the split is not called ``ml-100k``: RecBole forces ``data_path`` to its bundled
copy for that name.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from m6rec_bench.datasets.atomic import header_names
from m6rec_bench.datasets.base import PreparedDataset
from m6rec_bench.errors import DataError, UsageError
from m6rec_bench.io import atomic_write_json
from m6rec_bench.paths import cache_dir
from m6rec_bench.protocols.base import Protocol, register
from m6rec_bench.protocols.default import DEFAULT
from m6rec_bench.protocols.split_files import link_side_files, materialize, read_inter, write_rows

#: Bump when the split algorithm changes: it is part of the split folder's hash.
SPLIT_VERSION = 1
#: The target group gets occupations until it holds at least this share of the users.
TARGET_FRACTION = 0.3
ATTRIBUTE = "occupation"
MARKER = "user_groups.json"
#: The source users' interactions, beside the target's ``.inter`` (RecBole does not read it).
SOURCE_FILE = "source.inter"
LINKED_SUFFIXES = ("item", "kg", "link", "net")


@dataclass(frozen=True)
class UserGroups:
    """The two groups: their occupations (in draw order for the target) and their users."""

    target_occupations: list[str]
    source_occupations: list[str]
    target_users: frozenset[str]
    source_users: frozenset[str]


def occupations_of(user_file: Path) -> dict[str, str]:
    """``user token -> occupation`` from a ``.user`` file; UsageError when there is no occupation column."""
    with open(user_file, encoding="utf-8", newline="") as fh:
        names = header_names(fh.readline())
        if "user_id" not in names or ATTRIBUTE not in names:
            raise UsageError(
                f"protocol 'user-group' splits users by their '{ATTRIBUTE}', and {user_file.name} has columns "
                f"{names} — add an {ATTRIBUTE}:token column, or use --protocol default"
            )
        u_col, a_col = names.index("user_id"), names.index(ATTRIBUTE)
        out: dict[str, str] = {}
        for line in fh:
            fields = line.rstrip("\r\n").split("\t")
            if len(fields) > max(u_col, a_col) and fields[u_col]:
                out[fields[u_col]] = fields[a_col]
    return out


def split_users(users: list[str], occupation: dict[str, str], seed: int,
                fraction: float = TARGET_FRACTION) -> UserGroups:
    """Assign whole occupations, in a seeded order, to the target group until it holds ``fraction`` of ``users``."""
    by_occ: dict[str, set[str]] = {}
    for user in users:
        by_occ.setdefault(occupation.get(user, ""), set()).add(user)
    values = sorted(by_occ)
    if len(values) < 2:
        raise DataError(f"protocol 'user-group' needs at least 2 distinct {ATTRIBUTE} values among the users "
                        f"(found {values})")
    need = math.ceil(fraction * len(users))
    order = [values[i] for i in np.random.default_rng(seed).permutation(len(values))]
    target: list[str] = []
    n_target = 0
    for value in order:
        if n_target >= need:
            break
        target.append(value)
        n_target += len(by_occ[value])
    source = sorted(set(values) - set(target))
    if not source:
        raise DataError(f"protocol 'user-group': the {ATTRIBUTE} values drawn with seed {seed} hold every user "
                        "and leave no source group — try another seed")
    t_users = frozenset(u for v in target for u in by_occ[v])
    return UserGroups(target, source, t_users, frozenset(users) - t_users)


def split_name(ds: PreparedDataset, seed: int) -> str:
    """The RecBole dataset name of the user-group split of ``ds`` with ``seed``."""
    return f"{ds.name}-users-s{seed}"


def split_root(ds: PreparedDataset, seed: int) -> Path:
    """The ``data_path`` of the user-group split of ``ds`` with ``seed`` (it may not exist yet)."""
    key = json.dumps({"checksum": ds.checksum, "version": SPLIT_VERSION, "fraction": TARGET_FRACTION,
                      "attribute": ATTRIBUTE}, sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    return cache_dir("splits") / f"{ds.name}-user-group-seed{seed}-{digest}"


def _write_split(ds: PreparedDataset, folder: Path, name: str, seed: int) -> dict[str, Any]:
    header, lines = read_inter(ds)
    names = header_names(header)
    if "user_id" not in names:
        raise DataError(f"an .inter file needs a user_id column; header is {header.strip()!r}")
    u_col = names.index("user_id")
    row_users = [line.rstrip("\r\n").split("\t")[u_col] for line in lines]
    users = sorted(set(row_users))
    groups = split_users(users, occupations_of(ds.atomic_file("user")), seed)
    target = [line for line, u in zip(lines, row_users, strict=True) if u in groups.target_users]
    source = [line for line, u in zip(lines, row_users, strict=True) if u not in groups.target_users]
    for fname, rows in ((f"{name}.inter", target), (SOURCE_FILE, source)):
        write_rows(folder / fname, header, rows)
    with open(ds.atomic_file("user"), encoding="utf-8", newline="") as fh:  # target users' rows only
        u_header = fh.readline()
        u_idx = header_names(u_header).index("user_id")
        kept = [line for line in fh if line.rstrip("\r\n").split("\t")[u_idx] in groups.target_users]
    write_rows(folder / f"{name}.user", u_header, kept)
    link_side_files(ds, folder, name, LINKED_SUFFIXES)
    meta = {
        "source": ds.name, "source_checksum": ds.checksum, "seed": seed, "version": SPLIT_VERSION,
        "attribute": ATTRIBUTE, "target_fraction": TARGET_FRACTION, "source_file": SOURCE_FILE,
        "target_occupations": groups.target_occupations, "source_occupations": groups.source_occupations,
        "n_users": {"target": len(groups.target_users), "source": len(groups.source_users)},
        "n_interactions": {"target": len(target), "source": len(source)},
    }
    atomic_write_json(folder / MARKER, meta)
    return meta


def prepare_split(ds: PreparedDataset, seed: int) -> PreparedDataset:
    """Write (or reuse) the user-group split of ``ds`` for ``seed`` and return it as a dataset."""
    if not ds.atomic_file("user").is_file():
        raise UsageError(
            f"protocol 'user-group' splits users by their '{ATTRIBUTE}', and dataset '{ds.name}' has no "
            f"{ds.atomic_file('user').name} — use a dataset with user attributes (e.g. ml-100k) or --protocol default"
        )
    if not ds.atomic_file("inter").is_file():
        raise DataError(f"{ds.atomic_file('inter')} not found — cannot build the user-group split")
    occupations_of(ds.atomic_file("user"))  # the column check, before anything is written
    root, name = split_root(ds, seed), split_name(ds, seed)
    materialize(ds, seed, root, name, MARKER, lambda folder: _write_split(ds, folder, name, seed))
    return PreparedDataset(
        name=name, root=root, checksum=ds.checksum, features=ds.features,
        source=f"user-group split of {ds.name} ({ds.checksum[:19]}), seed {seed}: target users only",
    )


def read_marker(folder: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The marker of a user-group split folder (a RecBole ``data_path``), or None when it is not one."""
    try:
        return json.loads((Path(folder) / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def protocol_inputs(data_path: str | os.PathLike[str]) -> dict[str, Path]:
    """Files the protocol of a split folder (a RecBole ``data_path``) left beside it for models, by name.

    A user-group split has ``"source"``: the source users' interactions (a RecBole atomic ``.inter``
    file, which a model may pretrain on; it may be missing if the split folder was damaged). Any
    other folder has none (``{}``). Public as :func:`m6rec_bench.plugin_api.protocol_inputs`, so a
    plugin never reads the marker's layout.
    """
    marker = read_marker(data_path)
    if marker is None:
        return {}
    return {"source": Path(data_path) / str(marker.get("source_file", SOURCE_FILE))}


class UserGroupProtocol(Protocol):
    """Target users only, 8:1:1 per user as ``default``; the source users wait in ``source.inter``."""

    def prepare(self, ds: PreparedDataset, seed: int) -> tuple[PreparedDataset, dict[str, Any]]:
        return prepare_split(ds, seed), {}


USER_GROUP = register(
    UserGroupProtocol(
        name="user-group",
        description="users split by seeded occupation groups: target (>= 30 % of users) split 8:1:1 per user "
        "as default; source users' interactions kept aside for pretraining (source.inter)",
        recbole={"eval_args": copy.deepcopy(DEFAULT.recbole["eval_args"])},
    )
)
