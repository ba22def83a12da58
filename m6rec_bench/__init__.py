"""m6rec-bench: fair, reproducible benchmarks of M6-Rec style components against RecBole baselines."""

__version__ = "0.1.0"
