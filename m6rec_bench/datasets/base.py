"""What the rest of the workbench sees of a dataset once it is ready: RecBole atomic files on disk."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class DatasetFeatures:
    """What a dataset offers beyond interactions; plugins declare what they need against this.

    ``item_text`` names the ``.item`` columns that hold item text (title, year, genres…);
    ``kg`` is true when ``<name>.kg`` and ``<name>.link`` sit beside the atomic files.
    """

    item_text: tuple[str, ...] = ()
    kg: bool = False

    def provides(self) -> frozenset[str]:
        """The feature names this dataset provides: ``inter`` always, ``item_text``, ``kg``."""
        out = {"inter"}
        if self.item_text:
            out.add("item_text")
        if self.kg:
            out.add("kg")
        return frozenset(out)


@dataclass(frozen=True)
class PreparedDataset:
    """RecBole atomic files ready to load: ``<root>/<name>/<name>.inter`` (+ .item, .user, .kg, .link).

    ``root`` is what RecBole calls ``data_path`` and ``name`` its ``dataset``. ``checksum`` is
    ``sha256:<hex>`` over the atomic files (name and bytes), so a record names the exact data it saw.
    """

    name: str
    root: Path
    checksum: str
    features: DatasetFeatures = field(default_factory=DatasetFeatures)
    source: str = ""

    @property
    def folder(self) -> Path:
        """Directory that holds the atomic files."""
        return self.root / self.name

    def atomic_file(self, suffix: str) -> Path:
        """Path of one atomic file, e.g. ``atomic_file("item")`` → ``<folder>/<name>.item``."""
        return self.folder / f"{self.name}.{suffix}"
