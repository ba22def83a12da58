"""Defaults several layers share, defined once (and importable without the engine)."""

from __future__ import annotations

#: RecBole's default seed: seed 1 of every suite (2020, 2021, …), the seed of a tuning study's split,
#: model and sampler, and a cell's seed when none is given.
DEFAULT_SEED = 2020
