"""Leaderboards: aggregate records, write md / csv / json."""

from m6rec_bench.leaderboard.aggregate import Leaderboard, Row, aggregate
from m6rec_bench.leaderboard.writers import WRITERS, write

__all__ = ["WRITERS", "Leaderboard", "Row", "aggregate", "write"]
