"""Records (one per cell) and their store."""

from m6rec_bench.results.record import Record
from m6rec_bench.results.store import RecordStore, load_record

__all__ = ["Record", "RecordStore", "load_record"]
