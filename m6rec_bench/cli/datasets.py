"""``m6bench datasets``: list the registry, show one entry, fetch and convert a dataset.

Bad input raises :class:`~m6rec_bench.errors.M6BenchError` subclasses; ``friendly_errors`` prints
them on one line and exits with their code (2 for usage errors, 1 for failures).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import (
    BarColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.markup import escape

from m6rec_bench.cli.common import console, friendly_errors
from m6rec_bench.cli.help import Group
from m6rec_bench.cli.tables import Col, Format, FormatOption, WideOption, render
from m6rec_bench.errors import UsageError
from m6rec_bench.names import check_slug, contained
from m6rec_bench.paths import cache_dir

app = typer.Typer(
    help="Datasets in the registry (datasets.yaml): list them, show one, fetch and convert one, "
    "or generate a synthetic one.",
    no_args_is_help=True,
    cls=Group,
)


def _features(item_text: list[str] | tuple[str, ...], kg: bool) -> str:
    parts = ["inter"]
    if item_text:
        parts.append(f"item_text({', '.join(item_text)})")
    if kg:
        parts.append("kg")
    return ", ".join(parts)


#: Columns in the order shown; the licence is cut, never a name or an alias.
COLUMNS = (
    Col("name"), Col("aliases", priority=1), Col("format", priority=4), Col("features", priority=5),
    Col("licence", priority=2, flex=True), Col("cached", priority=3),
)


@app.command("list")
@friendly_errors
def list_datasets(fmt: FormatOption = Format.table, wide: WideOption = False) -> None:
    """Show every registered dataset: name, aliases, format, features, licence, whether cached."""
    from m6rec_bench.datasets.prepare import cache_status

    from m6rec_bench.datasets.registry import load_registry

    registry = load_registry()
    rows = [
        {"name": spec.name, "aliases": ", ".join(spec.aliases), "format": spec.format,
         "features": _features(spec.features.item_text, spec.features.kg), "licence": spec.licence,
         "cached": cache_status(spec)}
        for spec in registry
    ]
    render(COLUMNS, rows, title=f"datasets in {registry.path}", fmt=fmt, wide=wide)


@app.command("info")
@friendly_errors
def info(
    name: Annotated[str, typer.Argument(help="Dataset name or alias (any case), e.g. ml-100k or movielens.")],
) -> None:
    """Show every field of one entry: description, licence, citation, sources and checksums."""
    from m6rec_bench.datasets.prepare import cache_status, dataset_root

    from m6rec_bench.datasets.registry import load_registry

    spec = load_registry().get(name)
    console.print(f"[bold]{escape(spec.name)}[/bold]" + escape(f"  (aliases: {', '.join(spec.aliases)})" if spec.aliases else ""),
                  highlight=False)
    rows = [
        ("description", spec.description),
        ("licence", spec.licence),
        ("citation", spec.citation),
        ("homepage", spec.homepage),
        ("format", spec.format),
        ("converter", spec.converter or ""),
        ("features", _features(spec.features.item_text, spec.features.kg)),
    ]
    for key, value in rows:
        if value:
            console.print(f"{key + ':':13} {value}", markup=False, highlight=False)
    for i, src in enumerate(spec.sources):
        tag = "source" if i == 0 else "alternative"
        console.print(f"{tag + ':':13} [{src.kind}] {src.describe()}", markup=False, highlight=False)
        if src.format:
            console.print(f"{'':13} format {src.format}", markup=False, highlight=False)
        console.print(f"{'':13} cached: {cache_status(spec, src.kind)}  ({dataset_root(spec, src)})", markup=False, highlight=False)


@app.command("fetch")
@friendly_errors
def fetch(
    name: Annotated[str, typer.Argument(help="Dataset name or alias, or a folder of atomic files (./path).")],
    source: Annotated[
        str | None,
        typer.Option("--source", help="Source kind to use instead of the entry's first: recbole-bundled, url or huggingface."),
    ] = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show a download progress bar.")] = True,
) -> None:
    """Download (verified), convert and cache a dataset; print its atomic-file folder and checksum."""
    from m6rec_bench.datasets.prepare import prepare, resolve

    if source is None:
        ds = resolve(name, progress=progress)
    else:
        from m6rec_bench.datasets.registry import load_registry

        registry = load_registry()
        ds = prepare(registry.get(name), source=source, progress=progress, base_dir=registry.path.parent)
    console.print(f"{ds.name}: {ds.folder}", markup=False, highlight=False)
    console.print(f"checksum: {ds.checksum}", markup=False, highlight=False)
    console.print(f"features: {_features(ds.features.item_text, ds.features.kg)}", markup=False, highlight=False)



@app.command("synth")
@friendly_errors
def synth(
    users: Annotated[int, typer.Option("--users", "-u", help="Number of users (each gets at least 5 interactions).")],
    items: Annotated[int, typer.Option("--items", "-i", help="Number of items in the catalogue.")],
    interactions: Annotated[int, typer.Option("--interactions", "-n", help="Exact number of interactions (no duplicate user-item pair).")],
    seed: Annotated[int, typer.Option("--seed", help="Seed (default 0): the same sizes and seed give the same files.")] = 0,
    name: Annotated[str | None, typer.Option("--name", help="Dataset name, written to <M6BENCH_HOME>/synth/<name>/ (default: from the sizes and seed).")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Dataset folder to write instead; its last part is the dataset name.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Regenerate even when the folder already holds this dataset.")] = False,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")] = True,
) -> None:
    """Generate a synthetic dataset (power-law popularity, item text, KG) as RecBole atomic files.

    Use the printed folder anywhere a dataset goes: m6bench run --dataset <folder>.
    """
    from m6rec_bench.datasets.local import prepare_local
    from m6rec_bench.datasets.synth import SynthSpec, default_name, synthesize

    spec = SynthSpec(n_users=users, n_items=items, n_interactions=interactions, seed=seed)
    spec.check()
    if out is not None and name is not None and out.name != name:
        raise UsageError(f"give --name or --out, not both: --out {out} names the dataset '{out.name}', --name says '{name}'")
    if out is not None:
        folder = out  # the user's own choice of folder; its last part is still checked as a name
    else:
        # --name is one folder under the synth cache, never a path (../x would write beside it)
        folder_name = check_slug(name or default_name(spec), "--name", hint="give a plain name, or --out <folder>")
        folder = contained(cache_dir("synth"), cache_dir("synth") / folder_name, what="--name")
    columns = (TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True, disable=not progress) as bar:
        task = bar.add_task(f"generating {interactions:,} interactions", total=interactions)
        folder, generated = synthesize(spec, folder, force=force, progress=lambda n: bar.advance(task, n))
    ds = prepare_local(folder)
    console.print(f"{ds.name}: {ds.folder}" + ("" if generated else "  (already generated)"), markup=False, highlight=False, soft_wrap=True)
    console.print(f"checksum: {ds.checksum}", markup=False, highlight=False, soft_wrap=True)
    console.print(f"features: {_features(ds.features.item_text, ds.features.kg)}", markup=False, highlight=False, soft_wrap=True)
    console.print(f"use it:   m6bench run --dataset {ds.folder}", markup=False, highlight=False, soft_wrap=True)
