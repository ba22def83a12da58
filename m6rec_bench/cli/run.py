"""``m6bench run``: plan a suite, run its cells with progress, write the leaderboards."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import Progress

from m6rec_bench.cli.common import console, friendly_errors, parse_seeds, split_csv
from m6rec_bench.cli.progress import PlainListener, RichListener, plan_lines, resume_hint, write_boards
from m6rec_bench.engine.environment import command_line
from m6rec_bench.engine.estimate import Forecast, estimate_suite
from m6rec_bench.engine.suite import SuiteConfig, plan, run_suite
from m6rec_bench.errors import UsageError


@friendly_errors
def run(
    dataset: Annotated[list[str] | None, typer.Option("--dataset", "-d", help="Dataset name or alias from datasets.yaml (e.g. movielens), or a folder of RecBole atomic files. Repeat for several.")] = None,
    protocol: Annotated[list[str] | None, typer.Option("--protocol", "-p", help="Evaluation protocol: default (random 8:1:1, full ranking), cold-item, sequential (leave-one-out in time order; runs sequential models such as GRU4Rec, SASRec, SRGNN and general references), or user-group (target users of seeded occupation groups split 8:1:1, the other users kept aside as a source task for M6-Adapt). Repeat for several.")] = None,
    models: Annotated[str | None, typer.Option("--models", "-m", help="Comma-separated model names (m6bench models list). Default: the RecBole baselines Pop, ItemKNN, BPR, NeuMF, LightGCN, MultiVAE plus every installed default plugin; under --protocol sequential Pop, BPR, GRU4Rec, SASRec, SRGNN plus the default sequential plugins.")] = None,
    seeds: Annotated[str | None, typer.Option("--seeds", "-s", help="Number of seeds (3 → 2020, 2021, 2022) or an explicit list (2020,2025). Rows report mean ± std.")] = None,
    epochs: Annotated[int | None, typer.Option("--epochs", "-e", min=1, help="Max training epochs for every model (RecBole default 300, with early stopping after 10 epochs without validation gain).")] = None,
    device: Annotated[str | None, typer.Option("--device", help="cpu or cuda.")] = None,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="Suite YAML: datasets, protocols, models, seeds, epochs, device, ablation, overrides (per-model settings). Command-line options win.", exists=False)] = None,
    ablation: Annotated[bool | None, typer.Option("--ablation/--no-ablation", help="Add each plugin's ablation rows (e.g. M6-Fusion w/o KG, w/o text, w/o graph).")] = None,
    compress: Annotated[str | None, typer.Option("--compress", help="Comma-separated post-training compressions of every plugin's trained model: int8 (dynamic quantization of Linear/GRU layers, int8 embedding and content tables) and/or prune:<ratio> (global magnitude pruning, e.g. prune:0.5). Each adds a row such as 'M6-Fusion \\[int8]' with model size, full-ranking users/s and the NDCG@10 change against the uncompressed model; the model is trained once.")] = None,
    rerank: Annotated[str | None, typer.Option("--rerank", help="Comma-separated re-rankers applied to every model's trained top-50 per test user, each adding a row such as 'BPR \\[linucb]' with the re-ranked top-10's metrics, coverage, novelty and intra-list diversity (the model is trained once): linucb (a LinUCB contextual bandit over relevance, novelty and diversity, learned offline by replay on simulated logs of the validation split; linucb:<w> sets the novelty weight of its reward, default 1) and/or mmr (maximal marginal relevance; mmr:<lambda>, default 0.5).")] = None,
    runs_dir: Annotated[Path | None, typer.Option("--runs-dir", help="Where per-cell records are kept (default ./runs).")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Leaderboard root (default ./leaderboards): writes <out>/<dataset>/<protocol>/leaderboard.{md,csv,json}, merged into the board already there (its other rows stay; m6bench leaderboard prune removes rows).")] = None,
    jobs: Annotated[int | None, typer.Option("--jobs", "-j", min=1, help="Run this many cells (and, with --tune-budget, model studies) at once in worker processes on this machine (each gets cores/jobs torch threads). RecBole's trainer is Python-bound, so 2 jobs on 2 cores finish a suite sooner than 1.")] = None,
    resume: Annotated[bool | None, typer.Option("--resume/--no-resume", help="Reuse records of finished cells with the same config hash (default on).")] = None,
    tune_budget: Annotated[int | None, typer.Option("--tune-budget", min=1, help="Tune every model first with this many Optuna trials on validation (the same budget for all; studies resume under --runs-dir), then run the best config on test over the seeds. Trial 0 is each model's defaults; trials train like the final runs (--epochs, the same early stopping) and Hyperband on epochs stops weak ones early; each record carries its study's trials, epochs and seconds.")] = None,
    tune_timeout: Annotated[float | None, typer.Option("--tune-timeout", min=0.001, help="With --tune-budget: at most this many seconds of tuning per model.")] = None,
    tune_epochs: Annotated[int | None, typer.Option("--tune-epochs", min=1, help="With --tune-budget: cap each tuning trial at this many epochs (default: --epochs, like the final runs). A cap shorter than the final runs favours fast learners (Hyperband already spends few epochs on weak trials); kept for cheap smoke runs. Part of the study name; recorded as m6_tune_epochs.")] = None,
    tune_storage: Annotated[str | None, typer.Option("--tune-storage", help="With --tune-budget: Optuna storage of the studies — a database URL (postgresql://user:pw@host/db) shared by workers on many machines, or a journal file (default <runs-dir>/tuning/optuna.journal).")] = None,
    executor: Annotated[str | None, typer.Option("--executor", help="Where cells and tuning studies run: local (this machine; --jobs worker processes) or dask (the workers of a Dask cluster, see --scheduler; needs pip install \"m6rec-bench\\[dask]\").")] = None,
    scheduler: Annotated[str | None, typer.Option("--scheduler", help="With --executor dask: the scheduler address, tcp://HOST:PORT. Workers must share --runs-dir and the dataset cache (M6BENCH_HOME) with this machine.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan (cells, models, seeds, protocols, estimated time, where records and boards go) and exit without running or writing anything.")] = False,
) -> None:
    """Run a benchmark suite and write its leaderboards.

    Every (dataset, protocol, model, seed) cell is trained and evaluated through RecBole's own
    trainer and evaluator; each leaves a JSON record under --runs-dir, and the leaderboards are
    aggregated from those records. Exits 1 if any cell failed (the others still run).
    It first prints the plan with an estimated time (--dry-run prints only that), and rewrites the
    boards as cells finish, titled partial until the suite completes.
    """
    cli = {
        "datasets": dataset or None, "protocols": protocol or None, "models": split_csv(models),
        "seeds": parse_seeds(seeds), "epochs": epochs, "device": device, "ablation": ablation,
        "compress": split_csv(compress), "rerank": split_csv(rerank),
        "runs_dir": runs_dir, "leaderboard_dir": out, "resume": resume, "jobs": jobs,
        "tune_budget": tune_budget, "tune_timeout": tune_timeout, "tune_epochs": tune_epochs,
        "tune_storage": tune_storage, "executor": executor, "scheduler": scheduler,
    }
    if config is not None:
        cfg = SuiteConfig.from_yaml(config, **cli)
    else:
        cfg = SuiteConfig.validated(**{k: v for k, v in cli.items() if v is not None})
    if cfg.datasets == []:
        raise UsageError("no dataset given: use --dataset movielens (m6bench datasets list)")

    estimate = estimate_suite(plan(cfg), jobs=cfg.jobs)
    for line in plan_lines(estimate, cfg):
        typer.echo(line)
    if dry_run:
        typer.echo("dry run: nothing was run or written")
        return
    forecast = Forecast(estimate)
    listener: PlainListener | RichListener | None = None
    try:
        if console.is_terminal:
            with Progress(*RichListener.columns(), console=console, transient=True) as progress:
                listener = RichListener(forecast, cfg.leaderboard_dir, progress)
                result = run_suite(cfg, listener, command=command_line())
        else:  # a log file, CI, a Dask worker: plain lines while cells train, no ANSI codes
            listener = PlainListener(forecast, cfg.leaderboard_dir)
            result = run_suite(cfg, listener, command=command_line())
    except KeyboardInterrupt as exc:
        if listener is not None and listener.finished:
            exc.add_note(resume_hint(cfg, len(listener.finished)))
        raise

    for t in result.tuning:
        if not t.nothing_to_tune:
            best = f"best valid {t.metric} {t.best_value:.4f} (trial {t.best_trial})" if t.best_trial is not None else "no trial completed"
            console.print(f"tuned {t.model}: {t.n_trials}/{t.budget} trials, {best}; study {t.study_name}", highlight=False)
    for board, paths in write_boards(result.records, cfg.leaderboard_dir, partial=False):
        console.print(f"leaderboard [bold]{board.dataset}/{board.slug}[/bold]: {paths['md']}")
    done = len(result.records)
    console.print(f"{done} cells: {done - len(result.failed)} finished ({result.reused} reused), {len(result.failed)} failed")
    if result.failed:
        for rec in result.failed:
            console.print(f"  [red]✗[/red] {escape(f'{rec.label or rec.model} seed {rec.seed}: {rec.reason}')}", highlight=False)
        raise typer.Exit(1)
