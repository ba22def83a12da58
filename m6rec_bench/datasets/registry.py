"""The dataset registry: ``datasets.yaml`` read into typed :class:`DatasetSpec` entries.

The registry is the top-level ``datasets.yaml`` of the repository: a source checkout and an
editable install read that file in place, and a built wheel carries a copy of it at
``m6rec_bench/datasets/datasets.yaml`` (written from the top-level file by ``setup.py``'s
``build_py``), so an installed ``m6bench`` finds it too. ``M6BENCH_DATASETS_YAML`` points at
another file (tests use this).
Names and aliases are matched case-insensitively; an unknown name gets the nearest suggestion.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from m6rec_bench.errors import UsageError
from m6rec_bench.lookup import Registry as Lookup
from m6rec_bench.untrusted import UntrustedInputError, compose_yaml, read_text
from m6rec_bench.names import is_slug, slug

ENV_VAR = "M6BENCH_DATASETS_YAML"
_CHECKOUT = Path(__file__).resolve().parents[2]
#: The top-level ``datasets.yaml`` of a source checkout (what an editable install reads).
SOURCE_YAML = _CHECKOUT / "datasets.yaml"
#: The copy of it inside an installed wheel.
WHEEL_YAML = Path(__file__).with_name("datasets.yaml")
#: The file read when ``M6BENCH_DATASETS_YAML`` is not set: the checkout's top-level file, else the wheel's copy.
PACKAGED_YAML = SOURCE_YAML if SOURCE_YAML.is_file() and (_CHECKOUT / "pyproject.toml").is_file() else WHEEL_YAML

_CHECKSUM_RE = re.compile(r"^(md5:[0-9a-f]{32}|sha256:[0-9a-f]{64})$")
#: ``datasets.load_dataset`` builders that read local ``data_files`` (anything else in ``path`` is a hub id).
LOCAL_BUILDERS = ("parquet", "csv", "json", "text", "arrow")


def _local_file_problem(value: str) -> str | None:
    """Why a local ``data_files`` entry may not be read, or None.

    A datasets.yaml can be handed to you, so it may only point at files beside it: a relative path
    without ``..``. A file elsewhere is the user's own choice on the command line (``m6bench run
    --dataset /some/folder``, a folder of atomic files), never the yaml's.
    """
    p = Path(value)
    if p.is_absolute() or value.startswith("~") or re.match(r"^[A-Za-z]:[\\/]", value):
        return f"{value!r} is absolute; a datasets.yaml may only name files under its own folder (give a relative path)"
    if ".." in re.split(r"[\\/]", value):
        return f"{value!r} leaves the yaml's folder ('..'); a datasets.yaml may only name files under its own folder"
    return None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ColumnMapping(_Strict):
    """How a tabular source (Hugging Face) maps onto RecBole atomic columns.

    ``user``/``item`` name the source columns holding ids; ``rating``/``timestamp`` are optional.
    ``item_text`` maps an output ``.item`` column name (``token_seq``) to a source column.
    """

    user: str
    item: str
    rating: str | None = None
    timestamp: str | None = None
    item_text: dict[str, str] = Field(default_factory=dict)


class Source(_Strict):
    """One place a dataset can come from; the first source of an entry is the default.

    - ``recbole-bundled``: the atomic files inside the RecBole wheel (ml-100k only; ``path`` may
      name the bundled folder, default: the entry's name).
    - ``url``: an archive (zip/tar) downloaded, verified against ``checksum`` and converted by
      ``converter`` (defaults to the entry's ``converter``).
    - ``huggingface``: ``datasets.load_dataset(path, name=config, data_files=…, split=…)`` and a
      ``columns`` mapping; a relative local ``data_files`` path is relative to the yaml file.
    """

    kind: Literal["recbole-bundled", "url", "huggingface"]
    url: str | None = None
    checksum: str | None = None
    format: str | None = None
    converter: str | None = None
    path: str | None = None
    config: str | None = None
    data_files: str | list[str] | dict[str, str | list[str]] | None = None
    split: str = "train"
    columns: ColumnMapping | None = None

    @field_validator("checksum")
    @classmethod
    def _checksum_form(cls, value: str | None) -> str | None:
        if value is not None and not _CHECKSUM_RE.match(value.lower()):
            raise ValueError(f"checksum {value!r} must look like 'md5:<32 hex>' or 'sha256:<64 hex>'")
        return value.lower() if value else value

    @model_validator(mode="after")
    def _paths_stay_home(self) -> Source:
        """Names that become paths are path names; local files stay under the yaml's folder."""
        if self.kind == "recbole-bundled" and self.path is not None:
            slug(self.path, "path (a folder of RecBole's dataset_example)")
        if self.kind == "huggingface" and self.path and self.path not in LOCAL_BUILDERS:
            parts = self.path.split("/")
            if len(parts) > 2 or not all(is_slug(p) for p in parts):
                raise ValueError(f"path {self.path!r} must be a hub id ('org/name') or one of {', '.join(LOCAL_BUILDERS)} "
                                 "with data_files; a local folder is given on the command line (m6bench run --dataset <folder>)")
        if self.kind == "huggingface" and self.path in LOCAL_BUILDERS and self.data_files is not None:
            files = self.data_files
            flat = [files] if isinstance(files, str) else list(files) if isinstance(files, list) else \
                [f for v in files.values() for f in ([v] if isinstance(v, str) else v)]
            for f in flat:
                problem = _local_file_problem(f)
                if problem:
                    raise ValueError(f"data_files: {problem}")
        return self

    @model_validator(mode="after")
    def _fields_for_kind(self) -> Source:
        if self.kind == "url":
            if not self.url:
                raise ValueError("a 'url' source needs 'url'")
            if not self.checksum:
                raise ValueError("a 'url' source needs 'checksum' (md5:… or sha256:…); downloads are always verified")
        if self.kind == "huggingface":
            if not self.path:
                raise ValueError("a 'huggingface' source needs 'path' (a hub id, or 'parquet'/'csv'/'json' with data_files)")
            if self.columns is None:
                raise ValueError("a 'huggingface' source needs 'columns' (at least user and item)")
        return self

    def describe(self) -> str:
        """One line for humans: where the data comes from."""
        if self.kind == "recbole-bundled":
            return "bundled with RecBole (no download)"
        if self.kind == "url":
            return f"{self.url} ({self.checksum})"
        files = f", data_files={self.data_files}" if self.data_files else ""
        return f"huggingface {self.path}{files} split={self.split}"


class Features(_Strict):
    """What a dataset offers beyond interactions (see :class:`~m6rec_bench.datasets.base.DatasetFeatures`)."""

    item_text: list[str] = Field(default_factory=list)
    kg: bool = False


class DatasetSpec(_Strict):
    """One entry of ``datasets.yaml``."""

    name: str
    aliases: list[str] = Field(default_factory=list)
    description: str = ""
    licence: str = ""
    citation: str = ""
    homepage: str = ""
    format: str = ""
    converter: str | None = None
    features: Features = Field(default_factory=Features)
    sources: list[Source] = Field(min_length=1)

    @field_validator("name")
    @classmethod
    def _name_form(cls, value: str) -> str:
        return slug(value, "name")  # a cache folder and the records' dataset folder

    @field_validator("aliases")
    @classmethod
    def _alias_form(cls, value: list[str]) -> list[str]:
        return [slug(a, "alias") for a in value]  # ``--dataset <alias>`` names a leaderboard folder too

    @model_validator(mode="after")
    def _converter_for_urls(self) -> DatasetSpec:
        from m6rec_bench.datasets.convert import CONVERTERS

        known = ", ".join(CONVERTERS.names())
        for i, src in enumerate(self.sources):
            conv = src.converter or self.converter
            if src.kind == "url" and not conv:
                raise ValueError(f"sources.{i}: a 'url' source needs a converter (on the source or the entry; known: {known})")
            for where, name in (("converter", self.converter), (f"sources.{i}.converter", src.converter)):
                if name and name not in CONVERTERS:
                    raise ValueError(f"{where}: {CONVERTERS.error(name, fix='')}")
        return self

    def source(self, kind: str | None = None) -> Source:
        """The first source, or the first of ``kind``; UsageError when the entry has none of that kind."""
        if kind is None:
            return self.sources[0]
        for src in self.sources:
            if src.kind == kind:
                return src
        kinds = ", ".join(s.kind for s in self.sources)
        raise UsageError(f"dataset '{self.name}' has no '{kind}' source (it has: {kinds})")

    def converter_for(self, src: Source) -> str | None:
        """The converter that turns ``src``'s raw files into atomic files."""
        return src.converter or self.converter


@dataclass(frozen=True)
class Registry:
    """The parsed registry: specs in file order, plus the file they came from."""

    specs: tuple[DatasetSpec, ...]
    path: Path

    def __iter__(self) -> Iterator[DatasetSpec]:
        return iter(self.specs)

    def __len__(self) -> int:
        return len(self.specs)

    @cached_property
    def _lookup(self) -> Lookup[DatasetSpec]:
        found: Lookup[DatasetSpec] = Lookup(
            "dataset", unknown="dataset '{name}' not found in " + self.path.name.replace("{", "{{").replace("}", "}}")
            + "{hint} (m6bench datasets list)")
        for spec in self.specs:
            found.register(spec.name, spec, aliases=spec.aliases)
        return found

    def names(self) -> list[str]:
        """Every name and alias, as written."""
        return self._lookup.all_names()

    def get(self, name: str) -> DatasetSpec:
        """The spec called ``name`` (or with that alias), case-insensitively; UsageError otherwise."""
        return self._lookup.get(name)


def registry_path() -> Path:
    """``$M6BENCH_DATASETS_YAML`` if set, else :data:`PACKAGED_YAML` (the top-level ``datasets.yaml``)."""
    env = os.environ.get(ENV_VAR)
    return Path(env).expanduser() if env else PACKAGED_YAML


def _compose(text: str, path: Path) -> tuple[Any, yaml.Node | None]:
    """Safe-load ``text`` keeping the node tree, so errors can name a line (:func:`compose_yaml`:
    nesting and alias expansion bounded)."""
    try:
        return compose_yaml(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = exc.problem or exc.context or "invalid YAML"
        raise UsageError(f"{path}{where}: malformed YAML: {problem} — fix the file and retry") from None
    except yaml.YAMLError as exc:
        raise UsageError(f"{path}: malformed YAML: {exc} — fix the file and retry") from None
    except UntrustedInputError as exc:
        raise UsageError(f"{path}: malformed YAML: {exc}; a dataset registry nests a few levels — fix the file "
                         "and retry") from None


def _entry_lines(node: yaml.Node | None) -> list[int]:
    """1-based line of each item of the top-level ``datasets`` sequence."""
    if not isinstance(node, yaml.MappingNode):
        return []
    for key, value in node.value:
        if isinstance(key, yaml.ScalarNode) and key.value == "datasets" and isinstance(value, yaml.SequenceNode):
            return [item.start_mark.line + 1 for item in value.value]
    return []


def _format_validation(exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"])
    msg = err["msg"].removeprefix("Value error, ")
    return f"{loc}: {msg}" if loc else msg


def parse_registry(text: str, path: Path) -> Registry:
    """Parse registry ``text`` (read from ``path``, named in errors) into a :class:`Registry`."""
    data, node = _compose(text, path)
    if not isinstance(data, dict) or not isinstance(data.get("datasets"), list):
        raise UsageError(
            f"{path}: expected a top-level 'datasets:' list of entries — "
            "see the comment at the top of the repository's datasets.yaml"
        )
    lines = _entry_lines(node)
    specs: list[DatasetSpec] = []
    seen: dict[str, str] = {}
    for i, entry in enumerate(data["datasets"]):
        line = f" line {lines[i]}" if i < len(lines) else ""
        label = f"'{entry.get('name')}'" if isinstance(entry, dict) and entry.get("name") else f"#{i + 1}"
        if not isinstance(entry, dict):
            raise UsageError(f"{path}{line}: entry {label} must be a mapping with at least name and sources")
        try:
            spec = DatasetSpec.model_validate(entry)
        except ValidationError as exc:
            raise UsageError(f"{path}{line}: entry {label}: {_format_validation(exc)}") from None
        for n in (spec.name, *spec.aliases):
            if n.lower() in seen:
                raise UsageError(f"{path}{line}: entry '{spec.name}': name '{n}' is already used by '{seen[n.lower()]}'")
            seen[n.lower()] = spec.name
        specs.append(spec)
    return Registry(specs=tuple(specs), path=path)


def load_registry(path: str | os.PathLike[str] | None = None) -> Registry:
    """Read the registry from ``path`` (default: :func:`registry_path`)."""
    p = Path(path).expanduser() if path is not None else registry_path()
    try:
        text = read_text(p, "dataset registry")
    except FileNotFoundError:
        hint = f" (set by {ENV_VAR})" if path is None and os.environ.get(ENV_VAR) else ""
        raise UsageError(f"dataset registry {p} not found{hint} — point {ENV_VAR} at an existing datasets.yaml") from None
    except OSError as exc:
        raise UsageError(f"dataset registry {p} cannot be read ({exc.strerror}) — point {ENV_VAR} at a readable "
                         "datasets.yaml") from None
    return parse_registry(text, p)


def get_spec(name: str, registry: Registry | None = None) -> DatasetSpec:
    """Look ``name`` up (name or alias, any case) in ``registry`` (default: :func:`load_registry`)."""
    return (registry or load_registry()).get(name)
