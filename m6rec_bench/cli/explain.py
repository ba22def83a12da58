"""``m6bench explain``: a user's top-k from a trained model, each item with its reasons.

The reasons (KG paths to the user's training items, text neighbours, fusion gates) and what they
follow are described in :mod:`m6rec_bench.explain`; this file resolves the model, prints the result.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from m6rec_bench.cli.common import friendly_errors
from m6rec_bench.errors import UsageError

FORMATS = ("markdown", "json")


def _is_record_ref(model: str) -> bool:
    """A record path or artifact folder, rather than a model name."""
    ref = model.rstrip("/")
    return ref.endswith((".json", ".artifact")) or Path(ref).exists()


def resolve_model(model: str, dataset: str | None, runs_dir: Path, protocol: str, seed: int | None) -> tuple[Path, Any]:
    """``(record path, prepared dataset or None)`` for ``--model`` (a record, its artifact, or a name)."""
    from m6rec_bench import artifacts, datasets

    ds = datasets.resolve(dataset, progress=False) if dataset is not None else None
    if _is_record_ref(model):
        path, record = artifacts.resolve_record(model.rstrip("/"))
        if ds is not None and record.dataset != ds.name:
            raise UsageError(f"{path} is a model of dataset '{record.dataset}', not of '{dataset}' ({ds.name}); "
                             "drop --dataset or give a record of that dataset")
        return path, ds
    if ds is None:
        raise UsageError(f"--model '{model}' is a model name: give --dataset to find its trained run in {runs_dir} "
                         "(or pass a record path, runs/<dataset>/<protocol>/<model>/seed*.json)")
    try:
        return artifacts.find_record(runs_dir, ds.name, model, protocol=protocol, seed=seed), ds
    except UsageError:
        from m6rec_bench.models import registry

        base = model.split(" ", 1)[0]  # a row label such as "M6-Fusion w/o KG" names its model first
        registry.get(base)  # an unknown name says so (with the nearest one) rather than "train it"
        seeds = "" if seed is None else f" seed {seed}"
        command = (f"m6bench run --dataset {dataset} --protocol {protocol} --models {base}"
                   f"{' --ablation' if base != model else ''}{'' if seed is None else f' --seeds {seed},'} --runs-dir {runs_dir}")
        raise UsageError(f"no trained '{model}'{seeds} on {ds.name}/{protocol} with an artifact under {runs_dir} — "
                         f"train one with `{command}` (or pass a record path as --model)") from None


@friendly_errors
def explain(
    model: Annotated[str, typer.Option("--model", "-m", help="A record JSON, its .artifact folder, or a model name (BPR, M6-Fusion).")],
    user: Annotated[str, typer.Option("--user", "-u", help="User id as in the dataset's .inter file (e.g. 196).")],
    dataset: Annotated[str | None, typer.Option("--dataset", "-d", help="Dataset name, alias or folder; needed when --model is a name.")] = None,
    k: Annotated[int, typer.Option("-k", "--top-k", min=1, help="How many recommendations to explain (default 10).")] = 10,
    paths: Annotated[int, typer.Option("--paths", min=0, help="KG paths per item, at most (default 3; 0: none).")] = 3,
    similar: Annotated[int, typer.Option("--similar", min=0, help="Text-similar history items per item, at most (default 3).")] = 3,
    fmt: Annotated[str, typer.Option("--format", "-f", metavar="markdown|json", help="Readable text (default) or JSON.")] = "markdown",
    runs_dir: Annotated[Path, typer.Option("--runs-dir", metavar="DIR", help="Where m6bench run kept records (default ./runs).")] = Path("runs"),
    protocol: Annotated[str, typer.Option("--protocol", "-p", help="With a model name: its protocol (default: default).")] = "default",
    seed: Annotated[int | None, typer.Option("--seed", help="With a model name: its seed (default: the newest run).")] = None,
) -> None:
    """Show a user's top-k recommendations with why: KG paths to their training items, text-similar
    training items, and (M6-Fusion) the modality weights of each item.

    --model takes a record (runs/<dataset>/<protocol>/<model>/seed*.json), its .artifact folder, or
    a model name (an ablation label such as "M6-Fusion w/o KG" too), whose newest run, or the run
    of --seed, is looked up in --runs-dir for --dataset and --protocol. Only the answer goes to
    stdout.
    """
    from m6rec_bench import artifacts
    from m6rec_bench.explain import explain_user, to_markdown

    fmt = fmt.lower()
    if fmt not in FORMATS:
        raise UsageError(f"--format must be one of {', '.join(FORMATS)}, got '{fmt}'")
    record_path, prepared = resolve_model(model, dataset, runs_dir, protocol, seed)
    loaded = artifacts.load(record_path, prepared=prepared)
    result = explain_user(loaded, user, k=k, n_paths=paths, n_similar=similar)
    if fmt == "json":
        typer.echo(json.dumps(result.to_dict(), indent=2, ensure_ascii=False))
    else:
        typer.echo(to_markdown(result), nl=False)
