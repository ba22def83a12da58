"""A folder of RecBole atomic files given as a path: ``--dataset ./data/mydata``.

The folder's name is the dataset name: ``./data/mydata`` must hold ``mydata.inter`` (+ ``.item``,
``.user``, ``.kg``, ``.link``). Nothing is copied; RecBole reads the folder where it is.
"""

from __future__ import annotations

import os
from pathlib import Path

from m6rec_bench.datasets.atomic import checksum_of, has_kg, item_text_columns, validate_folder
from m6rec_bench.datasets.base import DatasetFeatures, PreparedDataset
from m6rec_bench.errors import DataError
from m6rec_bench.names import check_slug


def features_of(folder: Path, name: str) -> DatasetFeatures:
    """Features read off the files: text columns of ``.item``, KG when ``.kg`` and ``.link`` exist."""
    columns = validate_folder(folder, name, content=True)
    return DatasetFeatures(item_text=item_text_columns(columns), kg=has_kg(folder, name))


def prepare_local(path: str | os.PathLike[str]) -> PreparedDataset:
    """Validate the atomic-file folder at ``path`` and describe it as a :class:`PreparedDataset`."""
    folder = Path(path).expanduser()
    if not folder.exists():
        raise DataError(
            f"dataset folder {path} does not exist — give a folder holding <name>/<name>.inter, "
            "or a registered name (m6bench datasets list)"
        )
    if not folder.is_dir():
        raise DataError(f"dataset path {path} is a file, not a folder — give the folder that holds {folder.stem}.inter")
    folder = folder.resolve()
    # the name becomes the records' and boards' dataset folder: checked here, where it enters
    name = check_slug(folder.name, f"dataset folder name (of {path})", hint="rename the folder", error=DataError)
    features = features_of(folder, name)
    return PreparedDataset(
        name=name,
        root=folder.parent,
        checksum=checksum_of(folder, name),
        features=features,
        source=f"local:{folder}",
    )
