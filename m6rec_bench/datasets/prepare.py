"""From a name or a path to a :class:`PreparedDataset`: look up, fetch, verify, convert, cache.

Converted data lives in ``cache_dir("datasets")/<name>/<converter>-v<version>/<name>/<name>.*``;
a ``prepared.json`` beside the ``<name>/`` folder marks it complete. Everything is built in a
temporary sibling and moved into place, so a failure leaves no half-converted dataset behind.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlparse

from m6rec_bench.datasets import huggingface
from m6rec_bench.datasets.atomic import checksum_of, has_kg, item_text_columns, validate_folder
from m6rec_bench.datasets.base import DatasetFeatures, PreparedDataset
from m6rec_bench.datasets.convert import get_converter
from m6rec_bench.datasets.fetch import download, file_checksum, parse_checksum, safe_extract
from m6rec_bench.datasets.local import prepare_local
from m6rec_bench.datasets.registry import DatasetSpec, Source, load_registry
from m6rec_bench.errors import DataError, UsageError
from m6rec_bench.io import atomic_write_json, file_lock
from m6rec_bench.names import is_slug
from m6rec_bench.paths import cache_dir

MARKER = "prepared.json"


def bundled_root() -> Path:
    """RecBole's ``dataset_example`` folder (holds ``ml-100k/``), found without importing RecBole."""
    spec = importlib.util.find_spec("recbole")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("RecBole is not installed, so its bundled ml-100k is missing — pip install recbole==1.2.1")
    return Path(next(iter(spec.submodule_search_locations))) / "dataset_example"


def looks_like_path(arg: str) -> bool:
    """True for arguments written as paths: ``./x``, ``../x``, ``/x``, ``~/x``, ``a/b``."""
    return arg in (".", "..") or arg.startswith(("./", "../", "/", "~", ".\\")) or "/" in arg or os.sep in arg


def dataset_root(spec: DatasetSpec, src: Source) -> Path:
    """Where ``src`` of ``spec`` is (or will be) prepared: the ``data_path`` RecBole gets."""
    if src.kind == "recbole-bundled":
        return bundled_root()
    base = cache_dir("datasets") / spec.name
    if src.kind == "url":
        conv = spec.converter_for(src)
        assert conv is not None  # DatasetSpec validation guarantees it
        return base / f"{conv}-v{get_converter(conv).CONVERTER_VERSION}"
    return base / f"hf-v{huggingface.CONVERTER_VERSION}-{huggingface.cache_key(src)}"


def _dataset_name(spec: DatasetSpec, src: Source) -> str:
    # A bundled source may name the bundled folder in ``path`` (default: the entry's name).
    return (src.path or spec.name) if src.kind == "recbole-bundled" else spec.name


def is_prepared(root: Path, name: str) -> bool:
    """True when ``root`` holds a complete prepared dataset ``name``."""
    return (root / MARKER).is_file() and (root / name / f"{name}.inter").is_file()


def cache_status(spec: DatasetSpec, kind: str | None = None) -> str:
    """``"bundled"``, ``"yes"`` or ``"no"``: whether resolving ``spec`` needs no work."""
    src = spec.source(kind)
    if src.kind == "recbole-bundled":
        return "bundled"
    return "yes" if is_prepared(dataset_root(spec, src), spec.name) else "no"


def _prune_empty(path: Path, stop: Path) -> None:
    """Remove ``path`` and its parents up to (not including) ``stop`` while they are empty."""
    while path != stop and stop in path.parents:
        try:
            path.rmdir()
        except OSError:
            return
        path = path.parent


def _without_temp_paths(exc: DataError, temps: dict[Path, str]) -> DataError:
    """``exc`` with each temporary folder's path (deleted when the error is shown) replaced by its label."""
    msg = str(exc)
    for path, label in temps.items():
        msg = msg.replace(f"{path}{os.sep}", label).replace(str(path), label.rstrip("/!"))
    return DataError(msg)


def _build(root: Path, name: str, build: Callable[[Path], None], meta: dict[str, object]) -> None:
    """Run ``build(folder)`` in a temporary sibling of ``root``, check it, then move it into place.

    A complete ``root`` is never removed (another process may be reading it): if one appeared
    meanwhile, ours is dropped. Only an incomplete one (a crash between marker and rename in an
    older version, a hand-deleted file) is replaced; callers hold :func:`_fetch_lock`.
    """
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.build-", dir=root.parent))
    try:
        try:
            build(tmp / name)
            validate_folder(tmp / name, name, content=True)
        except DataError as exc:  # name the converted file as the user knows it, not the build folder
            source = meta.get("source") if isinstance(meta.get("source"), str) else "its source"
            raise _without_temp_paths(exc, {tmp / name: f"{name} (converted from {source})/"}) from None
        atomic_write_json(tmp / MARKER, meta)
        if is_prepared(root, name):
            return  # someone else finished first: theirs is as good, and may be in use
        if root.exists():
            shutil.rmtree(root)
        try:
            os.replace(tmp, root)
        except OSError:
            if not is_prepared(root, name):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _fetch_lock(spec: DatasetSpec) -> contextlib.AbstractContextManager[None]:
    """One process at a time fetches and converts a dataset; the others wait, then find it prepared.

    Without it, twelve first runs racing on one dataset each built a copy and replaced the
    previous one, deleting files (``prepared.json``) a third process was reading. Kept outside
    the dataset's folder, which a failed fetch removes.
    """
    return file_lock(cache_dir("locks") / f"dataset-{spec.name}.lock")


def _fetch_url(spec: DatasetSpec, src: Source, root: Path, progress: bool) -> None:
    assert src.url and src.checksum
    conv = spec.converter_for(src)
    assert conv is not None
    converter = get_converter(conv)
    home = cache_dir("datasets")
    raw_dir = home / spec.name / "raw"
    # the url's last part names the download; one that is no plain name ("..", "%2e%2e") is not used
    url_name = Path(urlparse(src.url).path).name
    archive = raw_dir / (url_name if is_slug(url_name) else f"{spec.name}.zip")  # the format is sniffed, not named
    raw_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".work-", dir=raw_dir))  # private: concurrent runs don't collide
    extracted = work / "extracted"
    try:
        if archive.exists() and file_checksum(archive, parse_checksum(src.checksum)[0]) != src.checksum:
            archive.unlink()  # stale or damaged: fetch it again
        if not archive.exists():
            download(src.url, archive, src.checksum, progress=progress)
        try:
            safe_extract(archive, extracted, label=src.url)  # errors name the URL: the archive is deleted
        except DataError:
            archive.unlink(missing_ok=True)  # verified yet unusable: do not keep it
            raise
        meta = {
            "name": spec.name, "source": src.url, "checksum": src.checksum,
            "converter": conv, "converter_version": converter.CONVERTER_VERSION,
        }
        try:
            _build(root, spec.name, lambda out: converter.convert(extracted, out, spec.name), meta)
        except DataError as exc:  # the extracted files are deleted: name them inside the URL's archive
            raise _without_temp_paths(exc, {extracted: f"{src.url}!/"}) from None
    finally:
        shutil.rmtree(work, ignore_errors=True)
        _prune_empty(raw_dir, home)


def _fetch_hf(spec: DatasetSpec, src: Source, root: Path, base_dir: Path, progress: bool) -> None:
    cache = huggingface.hf_cache_dir(cache_dir("datasets") / spec.name)
    meta = {
        "name": spec.name, "source": src.model_dump(mode="json"),
        "converter": "huggingface", "converter_version": huggingface.CONVERTER_VERSION,
    }

    def build(out: Path) -> None:
        huggingface.convert(src, out, spec.name, base_dir=base_dir, cache=cache, progress=progress)

    try:
        _build(root, spec.name, build, meta)
    except Exception:
        _prune_empty(root.parent, cache_dir("datasets"))
        raise


def features_for(spec: DatasetSpec, folder: Path, name: str) -> DatasetFeatures:
    """The entry's declared features, kept only where the files back them up.

    Declared ``item_text`` columns missing from ``.item`` are dropped (an entry that declares none
    gets every text column of ``.item``); ``kg`` needs both ``.kg`` and ``.link``.
    """
    present = item_text_columns(validate_folder(folder, name))
    declared = spec.features.item_text
    item_text = tuple(c for c in declared if c in present) if declared else present
    return DatasetFeatures(item_text=item_text, kg=spec.features.kg and has_kg(folder, name))


def prepare(
    spec: DatasetSpec, *, source: str | None = None, progress: bool = True, base_dir: Path | None = None
) -> PreparedDataset:
    """Make ``spec`` ready (download/convert if needed) from its first source or its ``source`` kind."""
    src = spec.source(source)
    root = dataset_root(spec, src)
    name = _dataset_name(spec, src)
    if src.kind == "recbole-bundled":
        if not (root / name / f"{name}.inter").is_file():
            raise DataError(
                f"RecBole's bundled dataset '{name}' is not in {root} — RecBole bundles only ml-100k; "
                f"fix the datasets.yaml entry '{spec.name}'"
            )
    elif not is_prepared(root, name):
        with _fetch_lock(spec):
            if not is_prepared(root, name):  # re-checked under the lock: another process may have done it
                if src.kind == "url":
                    _fetch_url(spec, src, root, progress)
                else:
                    _fetch_hf(spec, src, root, base_dir or Path.cwd(), progress)
    folder = root / name
    try:
        features = features_for(spec, folder, name)
    except DataError as exc:
        if src.kind == "recbole-bundled":
            raise
        raise DataError(
            f"cached dataset '{spec.name}' is damaged: {exc} — delete {root} and run again to convert it afresh"
        ) from None
    described = src.url if src.kind == "url" else f"{src.kind}:{src.path or name}"
    return PreparedDataset(
        name=name,
        root=root,
        checksum=checksum_of(folder, name),
        features=features,
        source=described or src.kind,
    )


def resolve(name_or_path: str, *, progress: bool = True, source: str | None = None) -> PreparedDataset:
    """A registered dataset (name or alias, any case) or a folder of atomic files, ready to load.

    Path-like arguments (``./x``, ``/x``, ``~/x``, ``a/b``) are folders; other arguments are looked
    up in the registry first, then tried as a folder in the current directory. ``source`` picks a
    source kind (``url``, ``huggingface``…) other than the entry's first.
    """
    if looks_like_path(name_or_path):
        return prepare_local(name_or_path)
    registry = load_registry()
    try:
        spec = registry.get(name_or_path)
    except UsageError:
        if Path(name_or_path).is_dir():
            return prepare_local(name_or_path)
        raise
    return prepare(spec, source=source, progress=progress, base_dir=registry.path.parent)
