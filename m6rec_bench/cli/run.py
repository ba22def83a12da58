"""``m6bench run``: a thin wrapper over :func:`m6rec_bench.pipeline.pipeline` — options in, progress and a summary out."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.progress import Progress

from m6rec_bench.cli.common import console, friendly_errors, parse_seeds, split_csv
from m6rec_bench.errors import UsageError

if TYPE_CHECKING:
    from m6rec_bench.pipeline import PipelineResult


#: ``run --help`` groups its options in these panels, in this order.
DATA, MODELS, PROTOCOL, BUDGET, OUTPUT, SCALE_OUT = "Data", "Models", "Protocol", "Budget", "Output", "Scale-out"


@friendly_errors
def run(
    dataset: Annotated[list[str] | None, typer.Option("--dataset", "-d", metavar="NAME", rich_help_panel=DATA, help="Dataset name or alias (m6bench datasets list) or a folder of atomic files; repeatable.")] = None,
    config: Annotated[Path | None, typer.Option("--config", "-c", metavar="YAML", rich_help_panel=DATA, help="Suite file (datasets, protocols, models, seeds, overrides); options win.", exists=False)] = None,
    models: Annotated[str | None, typer.Option("--models", "-m", metavar="A,B", rich_help_panel=MODELS, help="Model names, comma-separated (m6bench models list). Default: the protocol's default suite.")] = None,
    ablation: Annotated[bool | None, typer.Option("--ablation/--no-ablation", rich_help_panel=MODELS, help="Add each plugin's ablation rows (e.g. M6-Fusion w/o KG, w/o text).")] = None,
    compress: Annotated[str | None, typer.Option("--compress", metavar="A,B", rich_help_panel=MODELS, help="Compressed twins of each plugin: int8 and/or prune:<ratio>.")] = None,
    rerank: Annotated[str | None, typer.Option("--rerank", metavar="A,B", rich_help_panel=MODELS, help="Re-ranked twins of each model: linucb[:<w>] and/or mmr[:<lambda>].")] = None,
    protocol: Annotated[list[str] | None, typer.Option("--protocol", "-p", metavar="NAME", rich_help_panel=PROTOCOL, help="default, cold-item, sequential or user-group; repeatable.")] = None,
    seeds: Annotated[str | None, typer.Option("--seeds", "-s", metavar="N|A,B", rich_help_panel=PROTOCOL, help="A count (3 → 2020, 2021, 2022) or a list (2020,2025); rows show mean ± std.")] = None,
    epochs: Annotated[int | None, typer.Option("--epochs", "-e", min=1, metavar="N", rich_help_panel=BUDGET, help="Max epochs per model (RecBole: 300, early-stopped).")] = None,
    device: Annotated[str | None, typer.Option("--device", metavar="cpu|cuda", rich_help_panel=BUDGET, help="Where models train.")] = None,
    tune_budget: Annotated[int | None, typer.Option("--tune-budget", min=1, metavar="N", rich_help_panel=BUDGET, help="Tune each model first: N Optuna trials (trial 0 = its defaults; Hyperband on epochs).")] = None,
    tune_timeout: Annotated[float | None, typer.Option("--tune-timeout", min=0.001, metavar="SECONDS", rich_help_panel=BUDGET, help="With --tune-budget: at most this long tuning each model.")] = None,
    tune_epochs: Annotated[int | None, typer.Option("--tune-epochs", min=1, metavar="N", rich_help_panel=BUDGET, help="With --tune-budget: cap epochs per trial (a short cap favours fast learners).")] = None,
    runs_dir: Annotated[Path | None, typer.Option("--runs-dir", metavar="DIR", rich_help_panel=OUTPUT, help="Where per-cell records are kept (default ./runs).")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", metavar="DIR", rich_help_panel=OUTPUT, help="Leaderboard root (default ./leaderboards); runs merge into the boards there.")] = None,
    resume: Annotated[bool | None, typer.Option("--resume/--no-resume", rich_help_panel=OUTPUT, help="Reuse records of finished cells with the same config hash (default on).")] = None,
    jobs: Annotated[int | None, typer.Option("--jobs", "-j", min=1, metavar="N", rich_help_panel=SCALE_OUT, help="Cells (and studies) run at once in workers; default: one per core.")] = None,
    executor: Annotated[str | None, typer.Option("--executor", metavar="local|dask", rich_help_panel=SCALE_OUT, help="Run cells on this machine (default) or on a Dask cluster.")] = None,
    scheduler: Annotated[str | None, typer.Option("--scheduler", metavar="tcp://HOST:PORT", rich_help_panel=SCALE_OUT, help="With --executor dask: the scheduler's address.")] = None,
    tune_storage: Annotated[str | None, typer.Option("--tune-storage", metavar="URL|FILE", rich_help_panel=SCALE_OUT, help="Optuna storage all workers reach: a database URL or a journal file.")] = None,
    engine: Annotated[str | None, typer.Option("--engine", metavar="NAME", rich_help_panel=BUDGET, help="replay (default), recbole, fast")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", rich_help_panel=OUTPUT, help="Print the plan and estimated time, then exit; runs and writes nothing.")] = False,
) -> None:
    """Run a benchmark suite and write its leaderboards.

    Every (dataset, protocol, model, seed) cell is trained and evaluated through RecBole's own
    trainer and evaluator; each leaves a JSON record under --runs-dir, and the leaderboards
    (<out>/<dataset>/<protocol>/leaderboard.md, .csv, .json) are aggregated from those records.
    Exits 1 if any cell failed (the others still run).

    Protocols: default (random 8:1:1, full ranking), cold-item (test items unseen in training),
    sequential (leave-one-out in time order, for GRU4Rec, SASRec, SRGNN and general references),
    user-group (target users of seeded occupation groups; the others are M6-Adapt's source task).

    Models: without --models, the default protocol runs Pop, ItemKNN, BPR, NeuMF, LightGCN,
    MultiVAE and every installed default plugin; sequential runs Pop, BPR, GRU4Rec, SASRec, SRGNN
    and the default sequential plugins. --compress int8 quantizes Linear/GRU layers and embedding
    tables, prune:0.5 prunes half the weights by global magnitude; each adds a row such as
    'M6-Fusion \\[int8]' with size, users/s and the NDCG@10 change, the model trained once. --rerank
    re-ranks each model's top-50 into a row such as 'BPR \\[linucb]' with coverage, novelty and
    diversity: linucb is a LinUCB bandit learned by replay on validation (linucb:<w> weighs
    novelty, default 1), mmr maximal marginal relevance (mmr:<lambda>, default 0.5).

    Budget and scale-out: --tune-budget gives every model the same number of trials; studies
    resume under --runs-dir and --tune-epochs allows a cheap low-fidelity search (default: --epochs). --executor dask needs
    pip install "m6rec-bench\\[dask]"; its workers must share --runs-dir and the dataset cache
    (M6BENCH_HOME), and --tune-storage may be a database URL (postgresql://user:pw@host/db) they all reach.

    It first prints the plan with an estimated time (--dry-run prints only that), and rewrites the
    boards as cells finish, titled partial until the suite completes.
    """
    names = split_csv(models)
    if names:  # a typo fails fast, before the engine (torch, RecBole) is imported
        from m6rec_bench.models import registry

        for name in names:
            registry.get(name)
    if engine is not None:  # before any worker starts: workers inherit the environment
        from m6rec_bench.engine.engines import set_engine

        set_engine(engine)
    cli = {
        "datasets": dataset or None, "protocols": protocol or None, "models": names,
        "seeds": parse_seeds(seeds), "epochs": epochs, "device": device, "ablation": ablation,
        "compress": split_csv(compress), "rerank": split_csv(rerank),
        "runs_dir": runs_dir, "leaderboard_dir": out, "resume": resume, "jobs": jobs,
        "tune_budget": tune_budget, "tune_timeout": tune_timeout, "tune_epochs": tune_epochs,
        "tune_storage": tune_storage, "executor": executor, "scheduler": scheduler,
    }
    from m6rec_bench.engine.executors import worker_ahead

    # the first worker starts importing torch and RecBole now, while the suite is planned here
    with worker_ahead(None if dry_run else (executor or "local")):
        result = _plan_and_run(cli, config, dry_run)
    if result is None:
        return
    for t in result.tuning:
        if not t.nothing_to_tune:
            best = f"best valid {t.metric} {t.best_value:.4f} (trial {t.best_trial})" if t.best_trial is not None else "no trial completed"
            console.print(f"tuned {t.model}: {t.n_trials}/{t.budget} trials, {best}; study {t.study_name}", highlight=False)
    for board, paths in result.boards:
        console.print(f"leaderboard [bold]{escape(f'{board.dataset}/{board.slug}')}[/bold]: {escape(str(paths['md']))}", highlight=False)
    done = len(result.records)
    console.print(f"{done} cells: {done - len(result.failed)} finished ({result.reused} reused), {len(result.failed)} failed")
    if result.failed:
        for rec in result.failed:
            console.print(f"  [red]✗[/red] {escape(f'{rec.label or rec.model} seed {rec.seed}: {rec.reason}')}", highlight=False)
        raise typer.Exit(1)


def _plan_and_run(cli: dict[str, Any], config: Path | None, dry_run: bool) -> PipelineResult | None:
    """Build the suite from the options (and ``--config``), print its plan, and run it (None: ``--dry-run``)."""
    from m6rec_bench.cli.progress import PlainListener, RichListener, plan_lines, resume_hint
    from m6rec_bench.engine.environment import command_line
    from m6rec_bench.engine.estimate import Forecast, estimate_suite
    from m6rec_bench.engine.suite import plan
    from m6rec_bench.pipeline import PipelineConfig, pipeline
    from m6rec_bench.engine.threads import default_jobs

    if config is not None:
        cfg = PipelineConfig.from_yaml(config, **cli)
    else:
        cfg = PipelineConfig.validated(**{k: v for k, v in cli.items() if v is not None})
    if cfg.datasets == []:
        raise UsageError("no dataset given: use --dataset movielens (m6bench datasets list)")

    cells = plan(cfg)
    estimate = estimate_suite(cells, jobs=cfg.jobs or default_jobs(len(cells)), tune_budget=cfg.tune_budget,
                              tune_epochs=cfg.tune_epochs)
    for line in plan_lines(estimate, cfg):
        typer.echo(line)
    if dry_run:
        typer.echo("dry run: nothing was run or written")
        return None
    forecast = Forecast(estimate)
    listener: PlainListener | RichListener | None = None
    try:
        if console.is_terminal:
            with Progress(*RichListener.columns(), console=console, transient=True) as progress:
                listener = RichListener(forecast, cfg.leaderboard_dir, progress)
                result = pipeline(cfg, listener=listener, command=command_line())
        else:  # a log file, CI, a Dask worker: plain lines while cells train, no ANSI codes
            listener = PlainListener(forecast, cfg.leaderboard_dir)
            result = pipeline(cfg, listener=listener, command=command_line())
    except KeyboardInterrupt as exc:
        if listener is not None and listener.finished:
            exc.add_note(resume_hint(cfg, len(listener.finished)))
        raise

    return result
