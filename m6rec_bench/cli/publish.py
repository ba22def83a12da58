"""``m6bench publish``: the static HTML site of every leaderboard (no network needed to view it)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from m6rec_bench.cli.common import LegacyDirOption, console, friendly_errors, leaderboard_root
from m6rec_bench.errors import UsageError


@friendly_errors
def publish(
    out: Annotated[Path | None, typer.Option("--out", "-o", metavar="DIR", help="Leaderboard root holding <dataset>/<protocol>/leaderboard.json (default ./leaderboards).")] = None,
    legacy_dir: LegacyDirOption = None,
    readme: Annotated[Path | None, typer.Option("--readme", help="Also regenerate the results block between <!-- leaderboards --> and <!-- /leaderboards --> in this Markdown file (e.g. README.md).")] = None,
) -> None:
    """Build index.html and a page per dataset/protocol: sortable tables, bar charts with error bars, a quality-vs-train-time plot; rows link their reproduction records."""
    from m6rec_bench.leaderboard.readme import update_readme
    from m6rec_bench.leaderboard.site import build_site

    out = leaderboard_root(out, legacy_dir)
    if not list(Path(out).glob("*/*/leaderboard.json")):
        raise UsageError(f"no leaderboard.json under {out}; run m6bench run first")
    pages = build_site(out)
    for page in pages:
        console.print(f"wrote {page}", markup=False, highlight=False)
    if readme is not None:
        update_readme(readme, out)
        console.print(f"updated the results block of {readme}", markup=False, highlight=False)
