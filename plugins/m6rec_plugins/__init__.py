"""Built-in M6-Rec plugins for m6rec-bench (PyKEEN, PyTorch Geometric, sentence-transformers, fusion).

Each module exposes :class:`m6rec_bench.models.Plugin` objects named in this distribution's
``m6rec_bench.plugins`` entry points; nothing in ``m6rec_bench`` imports this package directly.
"""

from m6rec_plugins.cards import PLUGIN_CARDS

__all__ = ["PLUGIN_CARDS"]
