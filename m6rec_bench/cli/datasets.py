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
from rich.table import Table

from m6rec_bench.cli.common import console, friendly_errors
from m6rec_bench.datasets import load_registry, resolve
from m6rec_bench.datasets.local import prepare_local
from m6rec_bench.datasets.prepare import cache_status, dataset_root, prepare
from m6rec_bench.errors import UsageError
from m6rec_bench.names import check_slug, contained
from m6rec_bench.paths import cache_dir

app = typer.Typer(
    help="Datasets in the registry (datasets.yaml): list them, show one, fetch and convert one, "
    "or generate a synthetic one.",
    no_args_is_help=True,
)


def _features(item_text: list[str] | tuple[str, ...], kg: bool) -> str:
    parts = ["inter"]
    if item_text:
        parts.append(f"item_text({', '.join(item_text)})")
    if kg:
        parts.append("kg")
    return ", ".join(parts)


@app.command("list")
@friendly_errors
def list_datasets() -> None:
    """Show every registered dataset: name, aliases, format, features, licence, whether cached."""
    registry = load_registry()
    table = Table(title=f"datasets in {registry.path}")
    for col in ("name", "aliases", "format", "features", "licence", "cached"):
        table.add_column(col, overflow="fold")
    for spec in registry:
        table.add_row(
            spec.name,
            ", ".join(spec.aliases),
            spec.format,
            _features(spec.features.item_text, spec.features.kg),
            spec.licence,
            cache_status(spec),
        )
    console.print(table)


@app.command("info")
@friendly_errors
def info(
    name: Annotated[str, typer.Argument(help="Dataset name or alias (any case), e.g. ml-100k or movielens.")],
) -> None:
    """Show every field of one entry: description, licence, citation, sources and checksums."""
    spec = load_registry().get(name)
    console.print(f"[bold]{spec.name}[/bold]" + (f"  (aliases: {', '.join(spec.aliases)})" if spec.aliases else ""))
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
    if source is None:
        ds = resolve(name, progress=progress)
    else:
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
    seed: Annotated[int, typer.Option("--seed", help="Seed: the same sizes and seed give the same files.")] = 0,
    name: Annotated[str | None, typer.Option("--name", help="Dataset name; written to <M6BENCH_HOME>/synth/<name>/ (default synth-u<users>-i<items>-n<interactions>-s<seed>).")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Dataset folder to write instead; its last part is the dataset name.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Regenerate even when the folder already holds this dataset.")] = False,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")] = True,
) -> None:
    """Generate a synthetic dataset (power-law popularity, item text, KG) as RecBole atomic files.

    Use the printed folder anywhere a dataset goes: m6bench run --dataset <folder>.
    """
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
