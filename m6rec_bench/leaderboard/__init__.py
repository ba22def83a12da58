"""Leaderboards: aggregate records, write md / csv / json into board folders that only grow."""

from m6rec_bench.leaderboard.aggregate import Leaderboard, Row, aggregate
from m6rec_bench.leaderboard.board import prune, write
from m6rec_bench.leaderboard.writers import WRITERS

__all__ = ["WRITERS", "Leaderboard", "Row", "aggregate", "prune", "write"]
