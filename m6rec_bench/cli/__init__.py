"""The ``m6bench`` command line: one Typer sub-app per file."""

from __future__ import annotations

import typer

from m6rec_bench.cli import datasets, leaderboard, models, plugins
from m6rec_bench.cli.explain import explain
from m6rec_bench.cli.help import Group
from m6rec_bench.cli.publish import publish
from m6rec_bench.cli.reproduce import reproduce
from m6rec_bench.cli.run import run
from m6rec_bench.cli.serve import serve
from m6rec_bench.cli.tune import tune

app = typer.Typer(
    name="m6bench",
    help="m6rec-bench: benchmark M6-Rec style plugins (KG, GNN, text, fusion) against RecBole baselines, "
    "fairly and reproducibly, and publish leaderboards.",
    no_args_is_help=True,
    cls=Group,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command("run")(run)
app.command("tune")(tune)
app.add_typer(datasets.app, name="datasets")
app.add_typer(models.app, name="models")
app.add_typer(plugins.app, name="plugins")
app.add_typer(leaderboard.app, name="leaderboard")
app.command("publish")(publish)
app.command("reproduce")(reproduce)
app.command("serve")(serve)
app.command("explain")(explain)
