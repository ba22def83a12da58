"""Models: RecBole baselines and entry-point plugins, in one registry."""

from m6rec_bench.models.plugin import Plugin, PluginCard, PluginConfig
from m6rec_bench.models.registry import ModelEntry, all_models, default_suite, get, plugins

__all__ = ["ModelEntry", "Plugin", "PluginCard", "PluginConfig", "all_models", "default_suite", "get", "plugins"]
