"""Records that travel: no path of the machine that made them, and a command a reader can run.

A record is published (a board's ``records/``) and read on other machines, so what only made sense
here is left out or rewritten — by one set of rules, used when a record is made and again when it
is published (which also cleans records written by older versions):

* ``resolved_config`` drops the RecBole settings that locate files here (:data:`LOCAL_PATH_KEYS`:
  ``data_path``, ``checkpoint_dir`` …). They are volatile — outside the cell hash — so the cell
  id does not change.
* ``command`` drops the options that only say where output goes or which machines run it
  (:data:`LOCATION_OPTIONS`: ``--out``, ``--runs-dir``, ``--tune-storage``, which may hold a
  database password, ``--scheduler``); the defaults (``./runs``, ``./leaderboards``) work anywhere.
* Any other absolute path (in the command, a failure reason, the spec's dataset folder when
  published) becomes relative when it lies under the current directory, and ``<dir>/<name>``
  otherwise: the reader sees which folder it was and fills in where theirs is.

``config`` is left alone: it is what the cell id was computed from.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # portable_record only annotates with it; record.py imports portable_path from here
    from m6rec_bench.results.record import Record

#: RecBole settings naming files or folders of this machine; never part of a record.
LOCAL_PATH_KEYS = frozenset({"data_path", "checkpoint_dir", "dataset_save_path", "dataloaders_save_path"})

#: Command-line options whose value only says where results go or which machines run the cells.
LOCATION_OPTIONS = frozenset({"--out", "-o", "--runs-dir", "--dir", "--tune-storage", "--storage", "--scheduler"})

#: Stands for a folder of the machine that made the record.
PLACEHOLDER = "<dir>"

# An absolute path inside free text: "/" (or "~/") not preceded by a word character, ":" or "/"
# (so "w/o", "1/2" and URLs are left alone), then path characters.
_ABS_IN_TEXT = re.compile(r"(?<![\w:/.<>-])~?/[\w.+@%=,-]+(?:/[\w.+@%=,-]*)*")


def portable_path(value: str, cwd: str | os.PathLike[str] | None = None) -> str:
    """``value`` when relative; relative to ``cwd`` when under it; else ``<dir>/<last part>``."""
    if not (value.startswith(("/", "~")) or re.match(r"^[A-Za-z]:[\\/]", value)):
        return value
    path = Path(os.path.normpath(os.path.expanduser(value)))
    base = Path(os.path.normpath(cwd if cwd is not None else os.getcwd()))
    if base != Path(base.anchor) and (path == base or base in path.parents):
        return path.relative_to(base).as_posix() or "."
    name = PurePosixPath(value.replace("\\", "/").rstrip("/")).name
    return f"{PLACEHOLDER}/{name}" if name and name not in ("~", "..") else PLACEHOLDER


def portable_text(text: str, cwd: str | os.PathLike[str] | None = None) -> str:
    """Free text (a failure reason) with every absolute path in it made portable."""
    return _ABS_IN_TEXT.sub(lambda m: portable_path(m.group(0), cwd), text)


def portable_command(argv: Iterable[str], cwd: str | os.PathLike[str] | None = None) -> str:
    """A shell command from ``argv``: location options dropped, paths made portable, tokens quoted."""
    args = list(argv)
    out: list[str] = []
    if args:
        prog = args.pop(0)
        out.append("m6bench" if prog.endswith(("m6bench", "__main__.py")) else PurePosixPath(prog).name or prog)
    skip = False
    for arg in args:
        if skip:
            skip = False
            continue
        option, eq, value = arg.partition("=")
        if option in LOCATION_OPTIONS:
            skip = not eq  # ``--out x``: x is the next token; ``--out=x`` is one token
            continue
        if arg[:2] in LOCATION_OPTIONS and not arg.startswith("--"):  # ``-o/x``: the value glued on
            continue
        out.append(f"{option}={portable_path(value, cwd)}" if eq and option.startswith("-") else portable_path(arg, cwd))
    return shlex.join(out)


def portable_command_text(command: str, cwd: str | os.PathLike[str] | None = None) -> str:
    """:func:`portable_command` of a command already written as text (an older record's)."""
    try:
        argv = shlex.split(command)
    except ValueError:  # unbalanced quotes: not a command we can take apart, clean it as text
        return portable_text(command, cwd)
    return portable_command(argv, cwd)


def portable_settings(settings: dict[str, Any], cwd: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """RecBole's final settings without :data:`LOCAL_PATH_KEYS`, other string values made portable."""
    return {k: portable_text(v, cwd) if isinstance(v, str) else v
            for k, v in settings.items() if k not in LOCAL_PATH_KEYS}


def portable_record(record: Record, cwd: str | os.PathLike[str] | None = None) -> Record:
    """A copy of ``record`` fit to publish: no absolute path of this machine (see the module docstring).

    Unlike a record in a runs folder, whose spec keeps the dataset folder as the user gave it (the
    artifacts beside it are loaded from there), a published spec names a local dataset folder
    relative to ``cwd`` or as ``<dir>/<name>``. The cell id and ``config`` are unchanged.
    """
    spec = dict(record.spec)
    if isinstance(spec.get("dataset"), str):
        spec["dataset"] = portable_path(spec["dataset"], cwd)
    return record.model_copy(update={
        "spec": spec,
        "resolved_config": portable_settings(record.resolved_config, cwd),
        "command": portable_command_text(record.command, cwd) if record.command else "",
        "reason": portable_text(record.reason, cwd) if record.reason else record.reason,
    })
