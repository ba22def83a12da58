"""Real-time serving of trained artifacts: ``m6bench serve``.

:mod:`~m6rec_bench.serve.scoring` holds the fold-in adapters and the in-memory user state,
:mod:`~m6rec_bench.serve.app` the FastAPI app (:func:`~m6rec_bench.serve.app.create_app`). Import
them directly; this package imports nothing heavy so the CLI starts fast.
"""
